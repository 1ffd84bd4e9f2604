"""Gates: whether a case's scores pass, judged with confidence intervals and paired tests.

A gate checks one metric of a case:

- `min`: the score must reach `threshold` (the `thresholds:` key of a case).
- `lower_bound`: the lower end of the metric's confidence interval at `confidence` must
  reach `threshold`. The interval is Wilson's for accuracy-like proportions and a
  percentile bootstrap for every other metric.
- `no_regression`: compared with the baseline on the same examples, the case fails only
  when the drop is significant (p < `alpha`) and larger than `min_effect`, in the metric's
  units. Right/wrong outcomes use the exact two-sided McNemar test, and other scores a
  one-sided paired bootstrap test. A baseline recorded on another data file (sha256) or on
  other example ids is an error, not a comparison.

Every checked metric gets an outcome in `CaseResult.gates`: the score, its interval, and,
when the case has a comparable baseline entry, the baseline score, the delta (new minus
baseline) with its interval and the p-value. Cases without gates or thresholds get an
outcome of kind "none" for their main metric. Resampling is seeded with the case's seed, so
a rerun gives the same verdict.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.baseline import aligned_order, comparison_problem, load_baseline
from harness.cases import GATE_KINDS, GateConfig, SpecChecker
from harness.errors import HarnessError
from harness.metrics.per_example import is_binary_metric, metric_rows, statistic_of
from harness.metrics.stats import (
    bootstrap_interval,
    mcnemar_exact,
    paired_bootstrap,
    wilson_interval,
)
from harness.results import CaseResult

logger = logging.getLogger(__name__)

GATE_KEYS = ("kind", "metric", "threshold", "confidence", "min_effect", "alpha", "resamples")
KEYS_BY_KIND = {
    "min": ("kind", "metric", "threshold"),
    "lower_bound": ("kind", "metric", "threshold", "confidence", "resamples"),
    "no_regression": ("kind", "metric", "min_effect", "alpha", "confidence", "resamples"),
}


# Spec validation ----------------------------------------------------------------------


def _open_unit(check: SpecChecker, value: Any, key: tuple) -> float:
    number = check.number(value, key)
    if not 0 < number < 1:
        raise check.fail(key, f"expected a number between 0 and 1 (exclusive), found {value!r}")
    return number


def validate_gates(
    check: SpecChecker,
    key: tuple,
    raw: Any,
    *,
    task: Any,
    labelled: bool,
    thresholds: dict[str, float],
    scales: Mapping[str, float],
) -> tuple[dict[str, float], tuple[GateConfig, ...]]:
    """Validate a case's `gate:` value (one mapping or a list of them).

    Returns the thresholds with every `min` gate added, and the other gates.
    """
    if raw is None:
        return thresholds, ()
    if not labelled:
        raise check.fail(
            key,
            "the split has hidden labels, so no score can be gated",
            "Remove the gate, or score a labelled split such as dev",
        )
    if isinstance(raw, list):
        if not raw:
            raise check.fail(key, "expected a gate or a non-empty list of gates")
        items = [(key + (index,), item) for index, item in enumerate(raw)]
    else:
        items = [(key, raw)]

    thresholds = dict(thresholds)
    gates: list[GateConfig] = []
    seen: set[tuple[str, str]] = set()
    for item_key, item in items:
        check.mapping(item, item_key, GATE_KEYS)
        if "kind" not in item:
            raise check.fail(item_key, "missing key 'kind'", f"Use one of: {', '.join(GATE_KINDS)}")
        kind = check.choice(item["kind"], item_key + ("kind",), GATE_KINDS)
        for name in item:
            if name not in KEYS_BY_KIND[kind]:
                raise check.fail(
                    item_key + (name,),
                    f"does not apply to a {kind} gate",
                    f"Keys of a {kind} gate: {', '.join(KEYS_BY_KIND[kind])}",
                )
        metric = check.choice(
            item.get("metric", task.main_metric), item_key + ("metric",), tuple(task.metrics)
        )
        if (kind, metric) in seen or (kind == "min" and metric in thresholds):
            raise check.fail(item_key, f"a {kind} gate on {metric} is given twice")
        seen.add((kind, metric))
        scale = scales[metric]

        threshold = None
        if kind in ("min", "lower_bound"):
            if "threshold" not in item:
                raise check.fail(item_key, f"missing key 'threshold' (a number in [0, {scale:g}])")
            threshold = check.number(item["threshold"], item_key + ("threshold",), 0, scale)
        if kind == "min":
            thresholds[metric] = threshold
            continue

        gates.append(
            GateConfig(
                kind=kind,
                metric=metric,
                threshold=threshold,
                confidence=_open_unit(
                    check, item.get("confidence", 0.95), item_key + ("confidence",)
                ),
                min_effect=check.number(
                    item.get("min_effect", 0.0), item_key + ("min_effect",), 0, scale
                ),
                alpha=_open_unit(check, item.get("alpha", 0.05), item_key + ("alpha",)),
                resamples=check.integer(
                    item.get("resamples", 2000), item_key + ("resamples",), 100
                ),
            )
        )
    return thresholds, tuple(gates)


# Evaluation ---------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _interval(
    data: dict[str, Any], metric: str, confidence: float, resamples: int, seed: int
) -> tuple[float | None, float | None, str | None]:
    """Return the metric's confidence interval and the method used, or Nones."""
    statistic, compute = statistic_of(data, metric)
    rows = metric_rows(data, metric)
    if statistic.interval == "wilson":
        scale = float(data["metrics"][metric].get("scale", 1.0))
        low, high = wilson_interval(int(rows[:, 0].sum()), len(rows), confidence)
        return scale * low, scale * high, "wilson"
    try:
        low, high = bootstrap_interval(
            rows, compute, confidence=confidence, resamples=resamples, seed=seed
        )
    except ValueError as error:
        logger.warning("no interval for %s: %s", metric, error)
        return None, None, None
    return low, high, "bootstrap"


def _compare(
    baseline_data: dict[str, Any],
    data: dict[str, Any],
    metric: str,
    order: list[int],
    confidence: float,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Compare a metric with the baseline on paired examples: delta, interval, p-value."""
    _, compute = statistic_of(data, metric)
    new_rows = metric_rows(data, metric)
    base_rows = metric_rows(baseline_data, metric)[order]
    delta = compute(new_rows) - compute(base_rows)
    if not math.isfinite(delta):
        return {"delta": None, "delta_low": None, "delta_high": None, "p_value": None, "test": None}

    comparison = paired_bootstrap(
        base_rows, new_rows, compute, confidence=confidence, resamples=resamples, seed=seed
    )
    if is_binary_metric(data, metric) and is_binary_metric(baseline_data, metric):
        # A metric that averages right/wrong outcomes is compared with McNemar's test.
        only_baseline = int(np.sum((base_rows[:, 0] == 1) & (new_rows[:, 0] == 0)))
        only_new = int(np.sum((base_rows[:, 0] == 0) & (new_rows[:, 0] == 1)))
        p_value, test = mcnemar_exact(only_baseline, only_new), "mcnemar"
    else:
        p_value, test = comparison.p_value, "paired_bootstrap"
    return {
        "delta": delta,
        "delta_low": _finite(comparison.low),
        "delta_high": _finite(comparison.high),
        "p_value": p_value,
        "test": test,
    }


def _planned(
    result: CaseResult, gates: tuple[GateConfig, ...]
) -> list[tuple[str, str, GateConfig | None]]:
    """Return (kind, metric, gate) for each threshold and gate, or the main metric alone."""
    planned = [("min", metric, None) for metric in result.thresholds]
    planned += [(gate.kind, gate.metric, gate) for gate in gates]
    return planned or [("none", result.main_metric, None)]


def _outcome(kind: str, metric: str, gate: GateConfig | None, result: CaseResult) -> dict[str, Any]:
    """Start the outcome of one checked metric, with its gate's settings filled in."""
    threshold = result.thresholds[metric] if kind == "min" else None
    if gate is not None:
        threshold = gate.threshold
    regression = kind == "no_regression"
    return {
        "kind": kind,
        "metric": metric,
        "score": _finite(result.metrics.get(metric)),
        "threshold": threshold,
        "confidence": 0.95 if gate is None else gate.confidence,
        "low": None,
        "high": None,
        "interval": None,
        "baseline": None,
        "delta": None,
        "delta_low": None,
        "delta_high": None,
        "p_value": None,
        "test": None,
        "min_effect": gate.min_effect if regression else None,
        "alpha": gate.alpha if regression else None,
        "passed": True,
        "message": None,
        "note": None,
    }


def _judge(outcome: dict[str, Any]) -> None:
    """Set `passed` and `message` of an outcome from its numbers."""
    kind, metric, score = outcome["kind"], outcome["metric"], outcome["score"]
    if kind == "min":
        outcome["passed"] = score is not None and score >= outcome["threshold"]
    elif kind == "lower_bound":
        low = outcome["low"]
        outcome["passed"] = low is not None and low >= outcome["threshold"]
        if not outcome["passed"]:
            low_text = "undefined" if low is None else f"{low:.4f}"
            level = f"{outcome['confidence']:.0%}"
            score_text = "undefined" if score is None else f"{score:.4f}"
            outcome["message"] = (
                f"{metric} {score_text}: its {level} lower bound {low_text} is below threshold "
                f"{outcome['threshold']:.4f} (lower_bound gate)"
            )
    elif kind == "no_regression" and outcome["delta"] is not None:
        drop = -outcome["delta"]
        significant = outcome["p_value"] < outcome["alpha"]
        outcome["passed"] = not (drop > 0 and significant and drop > outcome["min_effect"])
        if not outcome["passed"]:
            outcome["message"] = (
                f"{metric} dropped from baseline {outcome['baseline']:.4f} to {score:.4f} "
                f"(delta {outcome['delta']:+.4f}, {outcome['confidence']:.0%} interval "
                f"[{outcome['delta_low']:+.4f}, {outcome['delta_high']:+.4f}], "
                f"{outcome['test']} p = {outcome['p_value']:.4g} < alpha {outcome['alpha']:g}, "
                f"drop > min_effect {outcome['min_effect']:g}) (no_regression gate)"
            )
    elif kind == "no_regression":
        outcome["passed"] = False
        outcome["message"] = f"{metric}: the change from the baseline is undefined"


def _baseline_entry(
    result: CaseResult, baseline_file: Path | None, case_id: str
) -> tuple[dict[str, Any] | None, str | None]:
    """Return the case's baseline entry, or None and why there is none."""
    if baseline_file is None:
        return None, (
            f"case {case_id} has a no_regression gate but no baseline file is set; add "
            "`baseline: FILE` to the spec or pass --clue-baseline FILE"
        )
    try:
        data = load_baseline(baseline_file)
    except HarnessError as error:
        return None, str(error)
    entry = None if data is None else data["cases"].get(case_id)
    if entry is None:
        return None, (
            f"case {case_id} has no entry in baseline {baseline_file}; record one with "
            "--update-baseline"
        )
    return entry, None


def apply_gates(
    result: CaseResult,
    gates: tuple[GateConfig, ...],
    baseline_file: Path | None,
    *,
    case_id: str | None = None,
    recording: bool = False,
) -> None:
    """Check a result's thresholds and gates, filling `result.gates` and the failures.

    `case_id` names the baseline entry (default: the result's own id). With `recording`
    (a run with --update-baseline), a missing baseline entry is noted, not an error.
    A baseline that cannot be compared sets `result.error` for `no_regression` gates.
    """
    if result.error or not result.metrics:
        return
    case_id = case_id or result.case_id
    data = result.per_example
    needs_baseline = any(gate.kind == "no_regression" for gate in gates)

    entry, missing = None, None
    if baseline_file is not None or needs_baseline:
        entry, missing = _baseline_entry(result, baseline_file, case_id)
    problem = None if entry is None else comparison_problem(entry, result, baseline_file)
    if needs_baseline and (problem or (missing and not recording)):
        result.error = problem or missing
        return
    if problem:
        logger.info("baseline not compared: %s", problem)
    comparable = entry is not None and problem is None and data is not None
    baseline_data = entry.get("per_example") if comparable else None
    order = aligned_order(baseline_data["ids"], data["ids"]) if baseline_data else []

    outcomes = []
    for kind, metric, gate in _planned(result, gates):
        outcome = _outcome(kind, metric, gate, result)
        resamples = gate.resamples if gate is not None else 2000

        if data is not None and metric in data["metrics"]:
            low, high, method = _interval(
                data, metric, outcome["confidence"], resamples, result.seed
            )
            outcome.update(low=_finite(low), high=_finite(high), interval=method)
        elif kind != "min":
            outcome["note"] = f"{metric} has no per-example values"

        if problem:
            outcome["note"] = "baseline not comparable: data file or example ids differ"
        if (
            baseline_data is not None
            and metric in baseline_data["metrics"]
            and metric in data["metrics"]
        ):
            outcome["baseline"] = _finite(entry["metrics"].get(metric))
            outcome.update(
                _compare(
                    baseline_data,
                    data,
                    metric,
                    order,
                    outcome["confidence"],
                    resamples,
                    result.seed,
                )
            )
        elif kind == "no_regression" and missing:
            outcome["note"] = "no baseline yet: this run records one"
        elif kind == "no_regression":
            result.error = (
                f"case {case_id}: {metric} has no per-example values in baseline "
                f"{baseline_file} or in this run, so no paired test is possible"
            )
            return

        if not (kind == "no_regression" and missing):
            _judge(outcome)
        if outcome["message"]:
            result.failures.append(outcome["message"])
        outcomes.append(outcome)
    result.gates = outcomes
