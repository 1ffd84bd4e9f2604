"""Intervals and paired tests used by the regression gates."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest, spearmanr

from harness.metrics.stats import (
    bootstrap_interval,
    mcnemar_exact,
    paired_bootstrap,
    wilson_interval,
    z_value,
)


@pytest.mark.parametrize(
    ("successes", "total", "low", "high"),
    [(80, 100, 0.7112, 0.8666), (160, 200, 0.7391, 0.8495)],
)
def test_wilson_published_values(successes, total, low, high):
    interval = wilson_interval(successes, total)

    assert round(interval[0], 4) == low
    assert round(interval[1], 4) == high


def test_wilson_all_correct_reaches_one():
    low, high = wilson_interval(50, 50)

    assert high == 1.0
    assert round(low, 4) == 0.9287


def test_wilson_rejects_empty_sample():
    with pytest.raises(ValueError, match="at least one example"):
        wilson_interval(0, 0)


@given(st.integers(min_value=1, max_value=5000), st.data())
def test_wilson_contains_point_estimate(total, data):
    successes = data.draw(st.integers(min_value=0, max_value=total))

    low, high = wilson_interval(successes, total)

    assert 0.0 <= low <= successes / total <= high <= 1.0


def test_z_value_for_95_percent():
    assert round(z_value(0.95), 6) == 1.959964


def test_mcnemar_significant_drop():
    assert round(mcnemar_exact(10, 2), 4) == 0.0386


def test_mcnemar_balanced_discordance():
    assert mcnemar_exact(6, 5) == 1.0


def test_mcnemar_no_discordant_pairs():
    assert mcnemar_exact(0, 0) == 1.0


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=300))
def test_mcnemar_matches_binomial_test(only_baseline, only_new):
    expected = 1.0
    if only_baseline + only_new:
        expected = binomtest(only_baseline, only_baseline + only_new, 0.5).pvalue

    assert math.isclose(
        mcnemar_exact(only_baseline, only_new), expected, rel_tol=1e-9, abs_tol=1e-12
    )


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=300))
def test_mcnemar_is_symmetric(only_baseline, only_new):
    assert mcnemar_exact(only_baseline, only_new) == mcnemar_exact(only_new, only_baseline)


def test_bootstrap_interval_is_seeded():
    values = np.linspace(0, 1, 50)

    first = bootstrap_interval(values, seed=3)
    second = bootstrap_interval(values, seed=3)

    assert first == second


def test_bootstrap_interval_brackets_mean():
    values = np.r_[np.ones(70), np.zeros(30)]

    low, high = bootstrap_interval(values, resamples=1000, seed=1)

    assert low < 0.7 < high
    assert high - low < 0.25


def test_bootstrap_of_paired_statistic():
    rng = np.random.default_rng(0)
    gold = rng.normal(size=200)
    scores = gold + rng.normal(scale=0.5, size=200)

    def spearman(rows):
        return spearmanr(rows[:, 0], rows[:, 1]).statistic

    low, high = bootstrap_interval(np.c_[scores, gold], spearman, resamples=500, seed=0)
    point = spearman(np.c_[scores, gold])

    assert low < point < high


def test_paired_identical_runs_not_worse():
    values = np.r_[np.ones(40), np.zeros(10)]

    comparison = paired_bootstrap(values, values, resamples=500, seed=0)

    assert comparison.delta == 0.0
    assert comparison.p_value == 1.0


def test_paired_large_drop_is_significant():
    baseline = np.ones(200)
    new = np.r_[np.ones(150), np.zeros(50)]

    comparison = paired_bootstrap(baseline, new, resamples=1000, seed=0)

    assert comparison.delta == -0.25
    assert comparison.p_value < 0.01
    assert comparison.high < 0


def test_paired_rejects_mismatched_examples():
    with pytest.raises(ValueError, match="same non-empty set"):
        paired_bootstrap([1.0, 0.0], [1.0])
