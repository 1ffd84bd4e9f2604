"""The plugin's side of gating: baseline files, the terminal table and JUnit properties.

Workers check the gates (harness.gates, called by the runner). The controller, after every
case has reported, records a baseline under --update-baseline (harness.baseline) and writes
the short table of gates into pytest's terminal summary.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.baseline import BaselineUpdate, update_baseline
from harness.plugin.options import Settings
from harness.results import CaseResult
from harness.spec import Spec

logger = logging.getLogger(__name__)


def baseline_file(settings: Settings, spec: Spec) -> Path | None:
    """Return the baseline a spec's cases use: --clue-baseline, else the spec's `baseline:`."""
    return settings.baseline_option or spec.baseline


def record_baselines(results: Sequence[CaseResult], settings: Settings) -> list[BaselineUpdate]:
    """Write each baseline file that this run's results belong to (--update-baseline)."""
    by_file: dict[str, list[CaseResult]] = defaultdict(list)
    unplaced = []
    for result in results:
        if result.baseline_file:
            by_file[result.baseline_file].append(result)
        elif result.metrics:
            unplaced.append(result.case_id)

    updates = [
        update_baseline(Path(path), members, force=settings.force_baseline)
        for path, members in sorted(by_file.items())
    ]
    if unplaced:
        updates.append(
            BaselineUpdate(
                Path("-"),
                written=False,
                changes=[
                    f"no baseline file for {', '.join(unplaced)}: add `baseline: FILE` to the "
                    "spec or pass --clue-baseline FILE"
                ],
            )
        )
    for update in updates:
        for line in update.changes:
            logger.info("baseline %s: %s", update.path, line)
    return updates


def _number(value: float | None, digits: int = 4, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _gate_text(row: dict[str, Any]) -> str:
    """Describe a row's gate: `min 0.5000`, `lower_bound 0.5000` or `no_regression 0.01`."""
    gate = row.get("gate") or ("min" if row["threshold"] is not None else "none")
    if gate in ("min", "lower_bound") and row["threshold"] is not None:
        return f"{gate} {row['threshold']:.4f}"
    if gate == "no_regression":
        return f"no_regression {row.get('min_effect') or 0:g}"
    return gate


def table_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Return the terminal table: case, metric, score, interval, gate, baseline, delta, p, result."""
    header = (
        "case",
        "metric",
        "score",
        "interval",
        "gate",
        "baseline",
        "delta",
        "p",
        "result",
        "n",
    )
    table = [header]
    for row in rows:
        interval = (
            f"[{_number(row.get('low'))}, {_number(row.get('high'))}]"
            if row.get("low") is not None
            else "—"
        )
        table.append(
            (
                row["case"],
                row["metric"],
                _number(row["score"]),
                interval,
                _gate_text(row),
                _number(row.get("baseline")),
                _number(row.get("delta"), signed=True),
                _number(row.get("p_value")),
                row["status"].upper(),
                str(row["examples_scored"] or row["examples"]),
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table
    ]


def repeat_lines(results: Sequence[CaseResult]) -> list[str]:
    """Describe the reruns of stochastic cases: the spread of the main metric, the pass rate."""
    lines = []
    for result in results:
        if not result.repeats:
            continue
        spread = result.repeats["metrics"].get(result.main_metric, {})
        lines.append(
            f"{result.case_id}: {result.repeats['count']} repeats, {result.main_metric} mean "
            f"{_number(spread.get('mean'))} (min {_number(spread.get('min'))}, max "
            f"{_number(spread.get('max'))}, stdev {_number(spread.get('stdev'))}), passed "
            f"{result.repeats['passed']} of {result.repeats['count']} "
            f"({result.repeats['pass_rate']:.0%})"
        )
    return lines


def gate_properties(result: CaseResult) -> list[tuple[str, str]]:
    """Return JUnit properties of a case's gates: one per gate, named by kind and metric."""
    properties = []
    for outcome in result.gates:
        parts = [f"score {_number(outcome['score'], 6)}"]
        if outcome["low"] is not None:
            parts.append(f"interval [{_number(outcome['low'], 6)}, {_number(outcome['high'], 6)}]")
        if outcome["baseline"] is not None:
            parts.append(f"baseline {_number(outcome['baseline'], 6)}")
        if outcome["delta"] is not None:
            parts.append(f"delta {_number(outcome['delta'], 6, signed=True)}")
        if outcome["p_value"] is not None:
            parts.append(f"p {_number(outcome['p_value'], 6)}")
        parts.append("pass" if outcome["passed"] else "fail")
        properties.append((f"clue.gate.{outcome['kind']}.{outcome['metric']}", "; ".join(parts)))
    return properties
