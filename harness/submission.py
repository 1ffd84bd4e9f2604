"""Checking a CLUE or FewCLUE submission (a zip or a folder) against the test files.

What is checked, per file:
- The name is a known submission name: the CLUE 1.1 and 1.0 files (afqmc, tnews11/10,
  iflytek, cmnli, ocnli_50k, cluewsc11/10, csl, cmrc2018, chid11/10, c311/10, cluener,
  diagnostics) and the FewCLUE files. Names that older baselines wrote, such as
  wsc_predict.json, are errors with the expected name as hint.
- JSON-lines files have one object per test row, in test-file order: a missing, extra,
  repeated or misplaced id is reported at its line. An id of the other JSON type than the
  test file's (the string "0" for 0) is a warning, because submissions of both kinds have
  been scored.
- Labels: the task's label strings for classification, an option index for C3, a
  candidate index for FewCLUE ChID, and for CLUENER entities whose inclusive offsets cut
  the entity out of the test text.
- JSON-object files (cmrc2018, chid11/10) hold exactly one key per test question or
  blank, with a string answer (CMRC2018) or a candidate index (ChID).

Every problem names the file and, where there is one, the line. A problem repeated on many
lines is listed for the first few lines and then counted.
"""

from __future__ import annotations

import difflib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from harness.data.layout import locate_file
from harness.errors import HarnessError
from harness.submission_checks import Problem, check_file
from harness.tasks import TASKS

# Names that baselines or older rules used, with the names the leaderboard expects.
RENAMED = {
    "wsc_predict.json": "cluewsc11_predict.json (CLUE 1.1) or cluewsc10_predict.json (1.0)",
    "cluewsc2020_predict.json": "cluewsc11_predict.json (CLUE 1.1) or cluewsc10_predict.json",
    "tnews_predict.json": "tnews11_predict.json (CLUE 1.1) or tnews10_predict.json (1.0)",
    "ocnli_predict.json": "ocnli_50k_predict.json",
    "c3_predict.json": "c311_predict.json (CLUE 1.1) or c310_predict.json (1.0)",
    "chid_predict.json": "chid11_predict.json (CLUE 1.1) or chid10_predict.json (1.0)",
}


@dataclass
class Report:
    """The outcome of checking one submission: files checked and problems found."""

    source: str
    checked: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"source": self.source, **asdict(problem)} for problem in self.problems]


def submission_names() -> dict[str, tuple[Any, str]]:
    """Map every known submission file name to its (task, split name)."""
    names = {}
    for task in TASKS.values():
        for split in task.splits:
            if split.submission:
                names[split.submission] = (task, split.name)
    return names


def _members(path: Path) -> tuple[list[tuple[str, bytes]], list[Problem]]:
    """Return (name, bytes) of each file in a zip or folder, and layout problems."""
    problems = []
    members = []
    if path.is_dir():
        for item in sorted(path.rglob("*")):
            if item.is_file():
                relative = item.relative_to(path).as_posix()
                members.append((relative, item.read_bytes()))
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    members.append((info.filename, archive.read(info)))
    else:
        raise HarnessError(f"{path} is neither a zip archive nor a folder")

    for name, _ in members:
        if "/" in name:
            problems.append(
                Problem(
                    name,
                    None,
                    "not at the top level; it is checked, but the scorer may not find it there",
                    "warning",
                )
            )
    return members, problems


def validate(
    path: str | Path,
    data_root: Path | None = None,
    test_files: Mapping[str, Path] | None = None,
) -> Report:
    """Check a submission zip or folder; `test_files` maps a file name to its test file and
    takes precedence over locating the test file under `data_root`."""
    path = Path(path)
    report = Report(str(path))
    members, layout = _members(path)
    report.problems.extend(layout)
    known = submission_names()
    benchmarks = set()

    for member, raw in members:
        name = PurePosixPath(member).name
        if name not in known:
            report.problems.append(_unknown_name(member, name, known))
            continue
        task, split = known[name]
        benchmarks.add(task.benchmark)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            report.problems.append(Problem(member, None, f"not UTF-8 (byte {error.start})"))
            continue
        if text.startswith("\ufeff"):
            report.problems.append(Problem(member, 1, "starts with a byte order mark", "warning"))
            text = text[1:]
        test_path = _test_file(name, task, split, data_root, test_files)
        if isinstance(test_path, Problem):
            report.problems.append(Problem(member, None, test_path.message))
            continue
        report.checked.append(member)
        report.problems.extend(check_file(member, text, task, split, test_path))

    if len(benchmarks) > 1:
        report.problems.append(
            Problem(
                str(path),
                None,
                "mixes CLUE and FewCLUE files; each leaderboard takes its own archive",
                "warning",
            )
        )
    return report


def _unknown_name(member: str, name: str, known: Mapping[str, Any]) -> Problem:
    if name in RENAMED:
        return Problem(member, None, f"unknown file name; the leaderboard expects {RENAMED[name]}")
    if name.endswith("_predict.json"):
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return Problem(member, None, f"unknown submission file name{hint}")
    return Problem(member, None, "not a submission file (expected <task>_predict.json)", "warning")


def _test_file(
    name: str,
    task: Any,
    split: str,
    data_root: Path | None,
    test_files: Mapping[str, Path] | None,
) -> Path | Problem:
    if test_files and name in test_files:
        return Path(test_files[name])
    filename = task.split(split).filename
    try:
        return locate_file(data_root, task.directory, filename)
    except HarnessError as error:
        return Problem(name, None, f"not checked: {error}")


def validate_outputs(archives: Iterable[Path], results: Iterable[Any]) -> list[dict[str, Any]]:
    """Check the archives a run wrote against the test files its cases read."""
    test_files = {
        Path(result.submission_file).name: Path(result.data_file)
        for result in results
        if result.submission_file and result.data_file
    }
    problems: list[dict[str, Any]] = []
    for archive in archives:
        try:
            problems.extend(validate(archive, test_files=test_files).to_dicts())
        except (HarnessError, OSError, zipfile.BadZipFile) as error:
            problems.append(
                {
                    "source": str(archive),
                    **asdict(Problem(archive.name, None, f"not checked: {error}")),
                }
            )
    return problems


def format_report(report: Report) -> str:
    """Render a report as text: one line per problem and a summary line."""
    lines = [str(problem) for problem in report.problems]
    errors = len(report.errors)
    warnings = len(report.problems) - errors
    lines.append(
        f"{report.source}: {len(report.checked)} files checked, {errors} errors, {warnings} warnings"
    )
    return "\n".join(lines) + "\n"
