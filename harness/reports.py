"""The threshold report (Markdown, JSON and HTML) and the submission zips, from case results.

One report row per checked metric and gate of a case (harness.gates): the metrics that have
thresholds or gates, or the case's main metric when it has neither. Rows follow the spec's
case order, never the order in which xdist workers finished.
"""

from __future__ import annotations

import datetime
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.html_report import write_html_report
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


GATE_FIELDS = (
    "low",
    "high",
    "confidence",
    "interval",
    "baseline",
    "delta",
    "delta_low",
    "delta_high",
    "p_value",
    "test",
    "min_effect",
    "alpha",
    "note",
)


def _gate_columns(result: CaseResult, outcome: dict[str, Any] | None) -> dict[str, Any]:
    """Return a row's gate fields: the gate kind, interval, baseline, delta and p-value."""
    if outcome is None:
        return {"gate": None, **dict.fromkeys(GATE_FIELDS)}
    return {"gate": outcome["kind"], **{name: outcome.get(name) for name in GATE_FIELDS}}


def report_rows(results: Sequence[CaseResult]) -> list[dict[str, Any]]:
    """Return one row per checked metric and gate (harness.gates), in spec order."""
    rows = []
    for result in ordered(results):
        if result.gates and not result.error:
            sources = [(outcome["metric"], outcome) for outcome in result.gates]
        else:
            sources = [(metric, None) for metric in list(result.thresholds) or [result.main_metric]]
        for metric, outcome in sources:
            score = result.metrics.get(metric)
            threshold = result.thresholds.get(metric)
            if outcome is not None:
                threshold = outcome["threshold"]
            if result.error:
                status = "error"
            elif score is None and threshold is None and not result.failures:
                status = "predicted"
            elif outcome is not None and outcome["kind"] != "none":
                status = "pass" if outcome["passed"] else "fail"
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
                    "examples_cached": result.n_cached,
                    "model": result.model,
                    "data_file": result.data_file,
                    "data_sha256": result.data_sha256,
                    "error": result.error,
                    **_gate_columns(result, outcome),
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


def _gate_cell(row: dict[str, Any]) -> str | None:
    gate = row.get("gate")
    if gate == "no_regression":
        return f"no_regression (min effect {row['min_effect']:g}, alpha {row['alpha']:g})"
    if gate == "lower_bound":
        return f"lower_bound ({row['confidence']:.0%})"
    return gate if gate != "none" else None


def _interval_cell(
    low: float | None, high: float | None, method: str | None, signed: bool = False
) -> str | None:
    if low is None or high is None:
        return None
    form = "+.4f" if signed else ".4f"
    text = f"[{low:{form}}, {high:{form}}]"
    return f"{text} {method}" if method else text


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
        "| case | metric | gate | score | interval | threshold | result | baseline | delta "
        "| delta interval | p | examples scored | rows skipped | model | data sha256 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(
                _cell(value)
                for value in (
                    row["case"],
                    row["metric"],
                    _gate_cell(row),
                    row["score"],
                    _interval_cell(row.get("low"), row.get("high"), row.get("interval")),
                    row["threshold"],
                    row["status"].upper(),
                    row.get("baseline"),
                    None if row.get("delta") is None else f"{row['delta']:+.4f}",
                    _interval_cell(row.get("delta_low"), row.get("delta_high"), None, signed=True),
                    None if row.get("p_value") is None else f"{row['p_value']:.4g}",
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
    noted = [row for row in rows if row.get("note")]
    if noted:
        lines += ["", "## Notes", ""]
        lines += [f"- `{row['case']}` {row['metric']}: {row['note']}" for row in noted]
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
    run: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write report.json, report.md and report.html; `submission_problems` come from
    harness.submission, `run` (shard, case count, spec digests; harness.plugin.sharding)
    goes into report.json."""
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
        "run": run,
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
    write_html_report(ordered(results), rows, output_dir)
    return json_path, markdown_path
