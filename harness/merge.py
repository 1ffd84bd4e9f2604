"""Merging the output folders of sharded runs (`--clue-shard I/N`) into one (`clue-harness merge`).

Each shard folder must contain the report.json that its run wrote. Before anything is
written, the reports are checked against each other. They must record the same spec files
with the same sha256, the same shard count N and distinct shard numbers. Every shard of N
must be there unless `allow_partial` is set. A case that two folders both report must
have the same result in both: the same scores, counts, failures, gate outcomes, error and
data file sha256. Timings and the prediction-cache count may differ, so they are not
compared.

The merged folder gets what one unsharded run would have written: `cases/<case>.json`,
the files under `predictions/` and `submission/` (the same path in two folders must have
the same bytes), the submission zips (rebuilt by harness.reports.bundle_submissions), and
the reports with rows in spec order. The predictions and submission file paths inside the
case results are rewritten to point into the merged folder. Submission files are checked
again against the test files when those exist on this machine; otherwise the shards' own
findings are kept.

NOTE: other paths that a case result may carry (the predictions files of repeated runs in
`repeats`) still point into the shard folders.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from harness.errors import HarnessError
from harness.outputs import inside, write_json
from harness.reports import bundle_submissions, write_reports
from harness.results import CaseResult
from harness.submission import validate_outputs

logger = logging.getLogger(__name__)

# The fields that make up a case's outcome. Two shards that report the same case must
# agree on all of them.
OUTCOME_FIELDS = (
    "task",
    "split",
    "model",
    "method",
    "tier",
    "shots",
    "seed",
    "metrics",
    "thresholds",
    "failures",
    "error",
    "n_rows",
    "n_selected",
    "n_scored",
    "n_skipped",
    "data_sha256",
    "checks",
    "gates",
)
COPIED_FOLDERS = ("predictions", "submission")


class MergeError(HarnessError):
    """Shard outputs that cannot be merged: missing, from different specs, or conflicting."""


@dataclass
class ShardOutput:
    """One shard's output folder and the report its run wrote there."""

    folder: Path
    report: dict[str, Any]
    results: list[CaseResult]

    @property
    def label(self) -> str:
        shard = (self.report.get("run") or {}).get("shard")
        return (
            f"{self.folder} (shard {shard['index']}/{shard['count']})"
            if shard
            else str(self.folder)
        )


@dataclass
class MergeSummary:
    """Outcome of a merge: the merged results, the copied files and the report paths."""

    out: Path
    results: list[CaseResult]
    shards: list[str]
    missing_shards: list[int] = field(default_factory=list)
    files_copied: int = 0
    archives: list[Path] = field(default_factory=list)
    report_paths: tuple[Path, Path] | None = None

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)


def read_shard(folder: Path) -> ShardOutput:
    """Read a shard folder's report.json; raise MergeError naming the file when it fails."""
    path = folder / "report.json"
    if not path.is_file():
        raise MergeError(
            f"{path} not found: pass the --clue-output folder of a finished sharded run"
        )
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        results = [CaseResult.from_dict(data) for data in report["cases"]]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise MergeError(f"{path}: not a report written by clue-harness ({error})") from None
    return ShardOutput(folder, report, results)


def check_runs(shards: Sequence[ShardOutput], allow_partial: bool = False) -> list[int]:
    """Check that the shards come from one sharded run; return the missing shard numbers."""
    first = shards[0]
    for shard in shards:
        run = shard.report.get("run")
        if not run or not run.get("shard"):
            raise MergeError(
                f"{shard.folder / 'report.json'} records no shard: merge only combines the "
                "outputs of runs with --clue-shard I/N"
            )

    expected_specs = _spec_digests(first)
    for shard in shards[1:]:
        specs = _spec_digests(shard)
        if specs != expected_specs:
            raise MergeError(
                f"{first.label} and {shard.label} were run from different specs: "
                f"{_describe_difference(expected_specs, specs)}. Merge the outputs of one run "
                "of the same specs only"
            )

    count = first.report["run"]["shard"]["count"]
    seen: dict[int, ShardOutput] = {}
    for shard in shards:
        info = shard.report["run"]["shard"]
        if info["count"] != count:
            raise MergeError(
                f"{first.label} and {shard.label} split the cases into different numbers of shards"
            )
        if info["index"] in seen:
            raise MergeError(
                f"shard {info['index']}/{count} is given twice: {seen[info['index']].folder} and {shard.folder}"
            )
        seen[info["index"]] = shard

    missing = [index for index in range(1, count + 1) if index not in seen]
    if missing and not allow_partial:
        names = ", ".join(f"{index}/{count}" for index in missing)
        raise MergeError(
            f"shards {names} are missing: pass their output folders too, or --allow-partial "
            "to merge without them"
        )
    return missing


def _spec_digests(shard: ShardOutput) -> dict[str, str]:
    return {spec["path"]: spec["sha256"] for spec in shard.report["run"].get("specs", [])}


def _describe_difference(first: dict[str, str], second: dict[str, str]) -> str:
    for path in sorted(set(first) | set(second)):
        if path not in second:
            return f"{path} is only in the first"
        if path not in first:
            return f"{path} is only in the second"
        if first[path] != second[path]:
            return f"{path} has sha256 {first[path]} in the first and {second[path]} in the second"
    return "the spec lists differ"


def _output_relative(path: str | None, folder_name: str, depth: int) -> PurePath | None:
    """Return a file's path relative to its output folder, from the last `depth` parts of
    the absolute path a shard recorded (`predictions/<case>.jsonl`,
    `submission/<benchmark>-<model>/<file>`), so that moved shard folders still merge."""
    if not path:
        return None
    parts = PurePath(path).parts[-depth:]
    if len(parts) != depth or parts[0] != folder_name:
        raise MergeError(f"unexpected output path {path}: expected .../{folder_name}/...")
    return PurePath(*parts)


def _relocated(result: CaseResult, out: Path) -> CaseResult:
    data = result.to_dict()
    for key, folder_name, depth in (
        ("predictions_file", "predictions", 2),
        ("submission_file", "submission", 3),
    ):
        relative = _output_relative(data.get(key), folder_name, depth)
        data[key] = None if relative is None else str(out.joinpath(*relative.parts))
    return CaseResult.from_dict(data)


def _spec_path_resolver(shards: Sequence[ShardOutput]):
    """Map each spec path a shard recorded to the first shard's path of the same spec.

    Shards that ran on different machines may have had the checkout in different places.
    The reports order rows by spec path, so all shards must use the same one.
    """
    relative_paths = sorted(_spec_digests(shards[0]), key=len, reverse=True)
    canonical: dict[str, str] = {}

    def resolve(spec_path: str) -> str:
        posix = PurePath(spec_path).as_posix()
        relative = next((path for path in relative_paths if posix.endswith("/" + path)), None)
        if relative is None:
            return spec_path
        return canonical.setdefault(relative, spec_path)

    return resolve


def merge_results(shards: Sequence[ShardOutput], out: Path) -> list[CaseResult]:
    """Return every case once, with paths inside `out`; raise MergeError on a conflict."""
    merged: dict[str, tuple[CaseResult, ShardOutput]] = {}
    resolve_spec = _spec_path_resolver(shards)
    for shard in shards:
        for result in shard.results:
            relocated = _relocated(result, out)
            relocated.spec_path = resolve_spec(relocated.spec_path)
            if result.case_id not in merged:
                merged[result.case_id] = (relocated, shard)
                continue
            earlier, source = merged[result.case_id]
            differing = [
                name
                for name in OUTCOME_FIELDS
                if getattr(earlier, name, None) != getattr(relocated, name, None)
            ]
            if differing:
                raise MergeError(
                    f"case {result.case_id} has different results in {source.label} and "
                    f"{shard.label} (fields: {', '.join(differing)}); merge the outputs of "
                    "one run only"
                )
            logger.info(
                "case %s is in %s and %s with the same result",
                result.case_id,
                source.folder,
                shard.folder,
            )
    return [result for result, _ in merged.values()]


def copy_outputs(shards: Sequence[ShardOutput], out: Path) -> int:
    """Copy the predictions and submission files into `out`; return how many.

    All files are compared before the first copy, so a conflict (the same path in two
    folders with different bytes) raises MergeError with nothing copied.
    """
    sources: dict[Path, Path] = {}
    for shard in shards:
        for folder_name in COPIED_FOLDERS:
            root = shard.folder / folder_name
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if not path.is_file():
                    continue
                target = inside(out, *path.relative_to(shard.folder).parts)
                earlier = sources.setdefault(target, path)
                if earlier != path and earlier.read_bytes() != path.read_bytes():
                    raise MergeError(
                        f"{earlier} and {path} differ, and both would be merged into {target}"
                    )

    for target, path in sources.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return len(sources)


def _submission_problems(
    shards: Sequence[ShardOutput], archives: list[Path], results: list[CaseResult]
) -> list[dict[str, Any]]:
    data_files = [
        Path(result.data_file) for result in results if result.submission_file and result.data_file
    ]
    if all(path.is_file() for path in data_files):
        return validate_outputs(archives, results)
    logger.warning(
        "some test files are not on this machine; keeping the submission checks of the shard runs"
    )
    return [problem for shard in shards for problem in shard.report.get("submission_problems", [])]


def merge_outputs(
    out: Path, folders: Sequence[Path], *, allow_partial: bool = False
) -> MergeSummary:
    """Merge shard output folders into the new or empty folder `out`; raise MergeError."""
    if not folders:
        raise MergeError("no shard folders given")
    out = Path(out).resolve()
    shards = [read_shard(Path(folder).resolve()) for folder in folders]
    for shard in shards:
        if out == shard.folder or shard.folder in out.parents:
            raise MergeError(
                f"the merged folder {out} must not be inside the shard folder {shard.folder}"
            )
    if out.exists() and any(out.iterdir()):
        raise MergeError(f"{out} is not empty: merge into a new or empty folder")

    missing = check_runs(shards, allow_partial)
    results = merge_results(shards, out)

    out.mkdir(parents=True, exist_ok=True)
    copied = copy_outputs(shards, out)
    for result in results:
        write_json(inside(out, "cases", f"{result.case_id}.json"), result.to_dict())
    archives = bundle_submissions(out)
    problems = _submission_problems(shards, archives, results)
    expected = shards[0].report["run"].get("cases_total")
    if not missing and expected is not None and len(results) != expected:
        logger.warning(
            "the shards report %d cases, but their runs selected %d; a case without a "
            "result did not run to the end (see the shard runs' pytest output)",
            len(results),
            expected,
        )
    run = dict(shards[0].report["run"])
    run["shard"] = None
    run["merged_shards"] = sorted(shard.report["run"]["shard"]["index"] for shard in shards)
    run["missing_shards"] = missing
    report_paths = write_reports(results, out, archives, problems, run=run)

    return MergeSummary(
        out,
        results,
        [shard.label for shard in shards],
        missing,
        copied,
        archives,
        report_paths,
    )
