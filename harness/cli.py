"""The `clue-harness` command: one-off chores around the pytest plugin.

clue-harness prepare [--model NAME]   convert packaged GGUF models into the cache now
clue-harness tasks                     list every task with its splits and submission files
clue-harness validate PATH --data DIR  check a submission zip or folder against the test files
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from harness.backends.packaged import PACKAGED
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        if args.command == "prepare":
            return prepare(args.model or [name for name, entry in PACKAGED.items() if entry.gguf])
        if args.command == "validate":
            return validate_submission(args.path, args.data)
        return list_tasks()
    except HarnessError as error:
        logger.error("error: %s", error)
        return 2


if __name__ == "__main__":
    sys.exit(main())
