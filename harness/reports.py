"""The threshold report (Markdown and JSON) and the submission zips, built from case results.

One report row per checked metric of a case: the metrics that have thresholds, or the
case's main metric when it has none. Rows follow the spec's case order, never the order in
which xdist workers finished.
"""

from __future__ import annotations

import datetime
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.metrics.classification import classification_average
from harness.outputs import inside, write_atomic, write_json, zip_folder
from harness.results import CaseResult
from harness.tasks.base import FEWCLUE
from harness.tasks.clue import CLASSIFICATION_1_0
from harness.tasks.clue import TASKS as CLUE_TASKS

BOARD_TASKS = {
    CLASSIFICATION_1_0: [task.name for task in CLUE_TASKS if CLASSIFICATION_1_0 in task.boards]
}


def ordered(results: Sequence[CaseResult]) -> list[CaseResult]:
    return sorted(results, key=lambda result: (result.spec_path, result.spec_index, result.case_id))


def report_rows(results: Sequence[CaseResult]) -> list[dict[str, Any]]:
    rows = []
    for result in ordered(results):
        metrics = list(result.thresholds) or [result.main_metric]
        for metric in metrics:
            score = result.metrics.get(metric)
            threshold = result.thresholds.get(metric)
            if result.error:
                status = "error"
            elif score is None and threshold is None and not result.failures:
                status = "predicted"
            elif threshold is None:
                status = "pass" if not result.failures else "fail"
            else:
                status = (
                    "pass"
                    if score is not None and math.isfinite(score) and score >= threshold
                    else "fail"
                )
            rows.append(
                {
                    "case": result.case_id,
                    "metric": metric,
                    "score": score,
                    "threshold": threshold,
                    "status": status,
                    "examples": result.n_selected,
                    "examples_scored": result.n_scored,
                    "rows_skipped": result.n_skipped,
                    "model": result.model,
                    "data_file": result.data_file,
                    "data_sha256": result.data_sha256,
                    "error": result.error,
                }
            )
    return rows


def board_averages(results: Sequence[CaseResult]) -> list[dict[str, Any]]:
    """Return the CLUE 1.0 classification average per model and split, where all 6 tasks ran.

    Only full-tier runs count: a smoke subset is not the number the leaderboard reports.
    """
    scores: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for result in results:
        if result.tier == "full" and result.score is not None and result.benchmark == "clue":
            scores[(result.model, result.split)][result.task] = result.score
    averages = []
    for (model, split), by_task in sorted(scores.items()):
        for board, tasks in BOARD_TASKS.items():
            value = classification_average(by_task, tasks)
            if value is not None:
                averages.append(
                    {
                        "board": board,
                        "model": model,
                        "split": split,
                        "average": value,
                        "tasks": tasks,
                    }
                )
    return averages


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def markdown(
    rows: Sequence[dict[str, Any]],
    averages: Sequence[dict[str, Any]],
    zips: Sequence[str],
    checks: Sequence[tuple[str, dict[str, Any]]] = (),
) -> str:
    """Render the report; `checks` are (case id, check) pairs from `CaseResult.checks`."""
    lines = [
        "# CLUE threshold report",
        "",
        "| case | metric | score | threshold | result | examples scored | rows skipped | model | data sha256 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(
                _cell(value)
                for value in (
                    row["case"],
                    row["metric"],
                    row["score"],
                    row["threshold"],
                    row["status"].upper(),
                    row["examples_scored"],
                    row["rows_skipped"],
                    row["model"],
                    row["data_sha256"][:12] or None,
                )
            )
            + " |"
        )
    if checks:
        lines += [
            "",
            "## Checks",
            "",
            "| case | check | value | bound | result |",
            "|---|---|---|---|---|",
        ]
        for case_id, item in checks:
            cells = (case_id, item["name"], item["value"], item["bound"])
            status = "PASS" if item["passed"] else "FAIL"
            lines.append("| " + " | ".join(_cell(value) for value in cells) + f" | {status} |")
    errors = [row for row in rows if row["error"]]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- `{row['case']}`: {row['error']}" for row in errors]
    if averages:
        lines += [
            "",
            "## Board averages",
            "",
            "| board | model | split | average |",
            "|---|---|---|---|",
        ]
        for item in averages:
            lines.append(
                f"| {item['board']} | {item['model']} | {item['split']} | {item['average']:.4f} |"
            )
    if zips:
        lines += ["", "## Submission archives", ""] + [f"- `{path}`" for path in zips]
    return "\n".join(lines) + "\n"


def bundle_submissions(output_dir: Path) -> list[Path]:
    """Zip each model's submission folder; name the archive submit.zip when unambiguous.

    Folders are `submission/<benchmark>-<model>/`. With one model per benchmark the archives
    are `submit.zip` (CLUE) and `fewclue_submit.zip`; with several, the model's name is
    appended (`submit_<model>.zip`), because the leaderboard takes one model per upload.
    """
    root = output_dir / "submission"
    if not root.is_dir():
        return []
    folders = sorted(path for path in root.iterdir() if path.is_dir() and any(path.iterdir()))
    by_benchmark: dict[str, list[Path]] = defaultdict(list)
    for folder in folders:
        benchmark = folder.name.split("-", 1)[0]
        by_benchmark[benchmark].append(folder)

    archives = []
    for benchmark, members in sorted(by_benchmark.items()):
        prefix = "fewclue_submit" if benchmark == FEWCLUE else "submit"
        for folder in members:
            model = folder.name.split("-", 1)[1]
            name = f"{prefix}.zip" if len(members) == 1 else f"{prefix}_{model}.zip"
            archive = inside(output_dir, name)
            zip_folder(folder, archive)
            archives.append(archive)
    return archives


def write_reports(
    results: Sequence[CaseResult],
    output_dir: Path,
    archives: Sequence[Path],
    submission_problems: Sequence[dict[str, Any]] = (),
) -> tuple[Path, Path]:
    """Write report.json and report.md; `submission_problems` come from harness.submission."""
    rows = report_rows(results)
    averages = board_averages(results)
    zips = [str(path) for path in archives]
    summary = {
        "harness_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "passed": all(result.passed for result in results),
        "rows": rows,
        "averages": averages,
        "submission_archives": zips,
        "submission_problems": list(submission_problems),
        "cases": [result.to_dict() for result in ordered(results)],
    }
    json_path = inside(output_dir, "report.json")
    markdown_path = inside(output_dir, "report.md")
    write_json(json_path, summary)
    checks = [(result.case_id, item) for result in ordered(results) for item in result.checks]
    text = markdown(rows, averages, zips, checks)
    if submission_problems:
        text += "\n## Submission problems\n\n" + "".join(
            f"- {item['severity']}: `{item['file']}`"
            + (f" line {item['line']}" if item["line"] else "")
            + f": {item['message']}\n"
            for item in submission_problems
        )
    write_atomic(markdown_path, text)
    return json_path, markdown_path
