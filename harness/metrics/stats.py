"""Confidence intervals and paired tests for gating a model change on noisy scores.

- Wilson score interval for a proportion (accuracy-like scores).
- Exact two-sided McNemar test for paired right/wrong outcomes.
- Percentile bootstrap interval for any score computed from per-example values.
- Paired bootstrap test for the drop in a score between two runs on the same examples.

Every resampling function takes a seed, so a gate gives the same verdict on every rerun.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, norm

Statistic = Callable[[np.ndarray], float]


def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile: 1.959964 for 95%."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion of `successes` out of `total`.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0 and n.

    >>> [round(bound, 4) for bound in wilson_interval(80, 100)]
    [0.7112, 0.8666]
    >>> [round(bound, 4) for bound in wilson_interval(160, 200)]
    [0.7391, 0.8495]
    """
    if total <= 0:
        raise ValueError("a proportion needs at least one example")
    if not 0 <= successes <= total:
        raise ValueError(f"successes must be in [0, {total}], got {successes}")
    z = z_value(confidence)
    share = successes / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    # At 0 and n the bounds are exactly 0 and 1; rounding would leave them a hair inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == total else min(1.0, centre + half)
    return low, high


def mcnemar_exact(only_baseline: int, only_new: int) -> float:
    """Exact two-sided McNemar p-value from the two kinds of discordant pairs.

    `only_baseline` counts examples the baseline got right and the new run got wrong;
    `only_new` the reverse. Under no change each discordant pair is a fair coin flip.

    >>> round(mcnemar_exact(10, 2), 4)
    0.0386
    >>> mcnemar_exact(6, 5)
    1.0
    """
    if only_baseline < 0 or only_new < 0:
        raise ValueError("discordant counts cannot be negative")
    discordant = only_baseline + only_new
    if discordant == 0:
        return 1.0
    tail = float(binom.cdf(min(only_baseline, only_new), discordant, 0.5))
    return min(1.0, 2 * tail)


def _resample_indices(size: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, size, size=(resamples, size))


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    statistic: Statistic = np.mean,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over per-example `values`.

    `values` may be 2-D (one row per example, e.g. [score, gold] pairs for Spearman);
    rows are resampled together. Resamples whose statistic is undefined (NaN) are dropped.
    """
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        raise ValueError("a bootstrap interval needs at least one example")
    samples = np.array(
        [statistic(data[rows]) for rows in _resample_indices(len(data), resamples, seed)]
    )
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        raise ValueError("the statistic is undefined on every resample")
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedComparison:
    """A new run against a baseline on the same examples; `delta` is new minus baseline."""

    delta: float
    low: float
    high: float
    p_value: float


def paired_bootstrap(
    baseline: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    statistic: Statistic = np.mean,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap test of whether `new` scores lower than `baseline`.

    Examples are resampled in pairs. The p-value is one-sided, for "the new run is worse":
    the share of resampled drops at least twice the observed drop, which is the observed
    drop's tail under a null distribution shifted to zero (Berg-Kirkpatrick et al., 2012).
    The interval is the percentile interval of the delta.
    """
    base = np.asarray(baseline, dtype=float)
    fresh = np.asarray(new, dtype=float)
    if base.shape != fresh.shape or len(base) == 0:
        raise ValueError("a paired test needs the same non-empty set of examples in both runs")

    observed = statistic(fresh) - statistic(base)
    deltas = np.array(
        [
            statistic(fresh[rows]) - statistic(base[rows])
            for rows in _resample_indices(len(base), resamples, seed)
        ]
    )
    deltas = deltas[np.isfinite(deltas)]
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])

    drop = -observed
    if drop <= 0:
        p_value = 1.0
    else:
        p_value = float((np.sum(-deltas >= 2 * drop) + 1) / (len(deltas) + 1))
    return PairedComparison(
        delta=float(observed), low=float(low), high=float(high), p_value=p_value
    )
