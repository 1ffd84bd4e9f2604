"""The `clue-harness` command: one-off chores around the pytest plugin.

clue-harness prepare [--model NAME]   convert packaged GGUF models into the cache now
clue-harness tasks                     list every task with its splits and submission files
clue-harness validate PATH --data DIR  check a submission zip or folder against the test files
clue-harness download [TASK ...]       fetch, check and unpack the official CLUE zips
clue-harness merge OUT SHARD_DIR ...   merge the output folders of sharded runs into one
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from pathlib import Path

from harness.backends.packaged import PACKAGED
from harness.data.download import ARCHIVE_NAMES, BASE_URL_ENV, DEFAULT_BASE_URL, RECORD_NAME
from harness.errors import HarnessError

logger = logging.getLogger("harness.cli")


def prepare(models: list[str]) -> int:
    """Convert packaged GGUF models once, so the first evaluation does not wait for it."""
    import transformers

    from harness.backends.base import ModelConfig
    from harness.backends.loading import converted_gguf_folder, default_cache_root

    for name in models:
        if not PACKAGED[name].gguf:
            logger.info("%s needs no conversion", name)
            continue
        config = ModelConfig(name=name, backend="hf-causal", packaged=name)
        folder, digest = converted_gguf_folder(
            config, transformers.AutoModelForCausalLM, default_cache_root()
        )
        logger.info("%s ready in %s (GGUF sha256 %s)", name, folder, digest)
    return 0


def list_tasks() -> int:
    from harness.tasks import TASKS

    for task in TASKS.values():
        splits = ", ".join(
            split.name + (f" -> {split.submission}" if split.submission else "")
            for split in task.splits
        )
        sys.stdout.write(
            f"{task.name:<18} {len(task.labels):>3} labels  {task.directory:<18} {splits}\n"
        )
    return 0


def validate_submission(path: str, data: str | None) -> int:
    """Print every problem of a submission; exit 1 when there is an error, else 0."""
    from harness.data.layout import resolve_data_root
    from harness.submission import format_report, validate

    report = validate(Path(path), resolve_data_root(data, None))
    sys.stdout.write(format_report(report))
    return 1 if report.errors else 0


def download(args: argparse.Namespace) -> int:
    """Download the archives; print one line per archive and a count line; exit 1 on a failure."""
    from harness.data.download import Downloader
    from harness.data.layout import DATA_ENV

    dest = args.dest or os.environ.get(DATA_ENV)
    if not dest:
        raise HarnessError(
            f"No destination: pass --dest DIR or set the {DATA_ENV} environment variable"
        )
    unknown = [name for name in args.tasks if name not in ARCHIVE_NAMES]
    if unknown:
        raise HarnessError(
            f"unknown archive {', '.join(unknown)}; known: {', '.join(ARCHIVE_NAMES)}"
        )
    downloader = Downloader(
        Path(dest).expanduser(),
        args.base_url,
        force=args.force,
        keep_zip=args.keep_zip,
        timeout=args.timeout,
        attempts=args.retries + 1,
    )
    outcomes = downloader.download_all(args.tasks or ARCHIVE_NAMES, keep_going=True)

    width = max(len(outcome.name) for outcome in outcomes)
    for outcome in outcomes:
        line = f"{outcome.name:<{width}}  {outcome.status}"
        if outcome.status == "downloaded":
            line += (
                f"  {outcome.size} bytes  sha256 {outcome.sha256}  -> {outcome.folder} "
                f"({outcome.files} files); checked: {'; '.join(outcome.verified)}"
            )
        elif outcome.status == "present":
            line += f"  {outcome.folder}"
        elif outcome.error:
            line = f"{outcome.name:<{width}}  failed: {outcome.error}"
        sys.stdout.write(line + "\n")
    counts = Counter(outcome.status for outcome in outcomes)
    sys.stdout.write(
        f"{counts['downloaded']} downloaded, {counts['present']} already present, "
        f"{counts['failed']} failed"
        + (f", {counts['not tried']} not tried" if counts["not tried"] else "")
        + "\n"
    )
    return 1 if counts["failed"] else 0


def add_download_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "download",
        help="fetch, check and unpack the official CLUE zips",
        description=(
            "Download <base URL>/<name>_public.zip for each TASK (default: all), check it and "
            "unpack it into DEST/<name>/. The received length must equal the Content-Length. "
            "Where the packaged manifest lists a size or sha256 (of the zip, or of a file in "
            "it), they must match. The harness knows no sha256 of the official zips, so the first "
            f"download of each zip records its size and sha256 in DEST/{RECORD_NAME}, and "
            "later downloads (--force, or after the folder was removed) must match that "
            "record. A download that stopped part-way resumes from its .part file under "
            "DEST/.downloads/. Offline, download the zips elsewhere and unzip each into "
            "DEST/<name>/ by hand."
        ),
    )
    parser.add_argument(
        "tasks",
        nargs="*",
        metavar="TASK",
        help=f"archive names: {', '.join(ARCHIVE_NAMES)} (default: all)",
    )
    parser.add_argument(
        "--dest",
        metavar="DIR",
        help="data root to unpack into (default: the CLUE_DATA_DIR environment variable)",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=f"URL of the folder that contains the zips (default: ${BASE_URL_ENV}, then {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="download and unpack again even where DEST/<name>/ already contains files",
    )
    parser.add_argument(
        "--keep-zip", action="store_true", help="keep the zips in DEST/.downloads/ after unpacking"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="limit for connecting and for each network read, in seconds (default: 60)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="retries after a failed attempt; each resumes where the last stopped (default: 3)",
    )


def merge(args: argparse.Namespace) -> int:
    """Merge shard output folders; exit 0 when every case passed, 1 when one did not."""
    from harness.merge import merge_outputs

    summary = merge_outputs(
        Path(args.out), [Path(folder) for folder in args.shards], allow_partial=args.allow_partial
    )
    failed = [result.case_id for result in summary.results if not result.passed]
    sys.stdout.write(
        f"merged {len(summary.results)} cases from {len(summary.shards)} shard folders into "
        f"{summary.out}: {'passed' if not failed else f'{len(failed)} failed'}\n"
    )
    if summary.missing_shards:
        sys.stdout.write(f"missing shards: {', '.join(map(str, summary.missing_shards))}\n")
    if summary.report_paths is not None:
        json_path, markdown_path = summary.report_paths
        sys.stdout.write(f"reports: {markdown_path} and {json_path}\n")
    for archive in summary.archives:
        sys.stdout.write(f"submission archive: {archive}\n")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clue-harness", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_parser = commands.add_parser(
        "prepare", help="convert packaged GGUF models into the cache"
    )
    prepare_parser.add_argument(
        "--model",
        action="append",
        choices=sorted(PACKAGED),
        help="packaged model to prepare (repeatable; default: every installed GGUF model)",
    )
    commands.add_parser("tasks", help="list the tasks, their splits and submission file names")
    validate_parser = commands.add_parser(
        "validate", help="check a submission zip or folder against the test files"
    )
    validate_parser.add_argument("path", help="submit.zip or a folder of *_predict.json files")
    validate_parser.add_argument(
        "--data",
        metavar="DIR",
        help="data root holding the test files, laid out as for --clue-data "
        "(default: the CLUE_DATA_DIR environment variable)",
    )
    add_download_parser(commands)
    merge_parser = commands.add_parser(
        "merge",
        help="merge the output folders of sharded runs (--clue-shard I/N) into one",
        description=(
            "Merge the --clue-output folders of the shards of one run into OUT: reports, "
            "cases/, predictions/, submission/ and the submission zips. Rejects folders "
            "from different specs, two results of one case that differ, and missing "
            "shards (unless --allow-partial). Exit status: 0 when every case passed, 1 "
            "when one did not, 2 when the folders cannot be merged."
        ),
    )
    merge_parser.add_argument(
        "out", metavar="OUT", help="new or empty folder for the merged output"
    )
    merge_parser.add_argument(
        "shards", nargs="+", metavar="SHARD_DIR", help="output folder of one shard"
    )
    merge_parser.add_argument(
        "--allow-partial", action="store_true", help="merge even when some shards are missing"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        if args.command == "prepare":
            return prepare(args.model or [name for name, entry in PACKAGED.items() if entry.gguf])
        if args.command == "validate":
            return validate_submission(args.path, args.data)
        if args.command == "download":
            return download(args)
        if args.command == "merge":
            return merge(args)
        return list_tasks()
    except HarnessError as error:
        logger.error("error: %s", error)
        return 2


if __name__ == "__main__":
    sys.exit(main())
