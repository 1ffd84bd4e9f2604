"""Reruns of stochastic cases (`--clue-repeat N`): the spread of their scores and the pass rate.

A case is stochastic when it samples its generations (`sampling:` in the case). Repeat r
uses sampling seed `seed + r`, so repeat 0 is the run without --clue-repeat, and its
predictions and per-example values are the ones that reports and baselines keep. Every
repeat is checked against the thresholds and gates on its own; the case passes only when
every repeat passes.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any

from harness.cases import CaseConfig
from harness.results import CaseResult


def is_stochastic(case: CaseConfig) -> bool:
    """Tell whether a case samples its outputs, so that reruns can differ."""
    return case.options.get("sampling") is not None


def repeat_case(case: CaseConfig, repeat: int) -> CaseConfig:
    """Return the case for repeat `repeat`: sampling seed + repeat, and from repeat 1 on an id
    with a `.repeat<r>` suffix, so each repeat writes its own predictions file."""
    if repeat == 0:
        return case
    sampling = {**case.options["sampling"]}
    sampling["seed"] += repeat
    return dataclasses.replace(
        case, id=f"{case.id}.repeat{repeat}", options={**case.options, "sampling": sampling}
    )


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Return the values and their mean, minimum, maximum and sample standard deviation.

    >>> spread([0.5, 0.7, 0.6])["stdev"]
    0.1
    """
    finite = [value for value in values if math.isfinite(value)]
    summary: dict[str, Any] = {"values": [round(value, 6) for value in finite]}
    if finite:
        summary["mean"] = round(statistics.fmean(finite), 6)
        summary["min"] = round(min(finite), 6)
        summary["max"] = round(max(finite), 6)
    summary["stdev"] = round(statistics.stdev(finite), 6) if len(finite) > 1 else None
    return summary


def combine_repeats(results: Sequence[CaseResult], seeds: Sequence[int]) -> CaseResult:
    """Return repeat 0's result with `repeats` filled in and the other repeats' failures."""
    first = results[0]
    passed = [result.passed for result in results]
    names = list(first.metrics)
    first.repeats = {
        "count": len(results),
        "seeds": list(seeds),
        "passed": sum(passed),
        "pass_rate": sum(passed) / len(results),
        "metrics": {
            name: spread([result.metrics.get(name, math.nan) for result in results])
            for name in names
        },
        "predictions_files": [result.predictions_file for result in results[1:]],
    }
    for repeat, (result, seed) in enumerate(zip(results, seeds)):
        if repeat == 0 or result.passed:
            continue
        reasons = [result.error] if result.error else result.failures
        first.failures.append(f"repeat {repeat} (seed {seed}): " + "; ".join(reasons))
    return first
