"""Tests for seeded, label-stratified subsets."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.data.subset import stratified_subset

strata_lists = st.lists(st.one_of(st.none(), st.sampled_from(["0", "1", "2", "neutral"])))
sizes = st.integers(min_value=0, max_value=60)
seeds = st.integers(min_value=0, max_value=2**32)


@given(strata_lists, sizes, seeds)
def test_subset_size_is_capped(strata, size, seed):
    chosen = stratified_subset(strata, size, seed)

    assert len(chosen) == min(size, len(strata))


@given(strata_lists, sizes, seeds)
def test_subset_indices_sorted_unique(strata, size, seed):
    chosen = stratified_subset(strata, size, seed)

    assert chosen == sorted(set(chosen))
    assert all(0 <= index < len(strata) for index in chosen)


@given(strata_lists, sizes, seeds)
def test_subset_same_seed_same_rows(strata, size, seed):
    assert stratified_subset(strata, size, seed) == stratified_subset(list(strata), size, seed)


@given(strata_lists, sizes, seeds)
def test_subset_strata_keep_share(strata, size, seed):
    chosen = stratified_subset(strata, size, seed)
    total = Counter(strata)
    picked = Counter(strata[index] for index in chosen)
    expected_size = min(size, len(strata))

    for stratum, count in total.items():
        share = expected_size * count / len(strata)
        assert abs(picked[stratum] - share) < 1, stratum


def test_subset_none_is_own_stratum():
    strata = [None] * 5 + ["0"] * 5

    chosen = stratified_subset(strata, 4, seed=3)

    assert sum(1 for index in chosen if strata[index] is None) == 2
    assert sum(1 for index in chosen if strata[index] == "0") == 2


def test_subset_none_differs_from_empty_label():
    strata = [None] * 4 + [""] * 4

    chosen = stratified_subset(strata, 2, seed=0)

    assert sorted(strata[index] is None for index in chosen) == [False, True]


def test_subset_docstring_example():
    assert stratified_subset(["a", "a", "a", "b"], 2, seed=0) == [0, 2]


def test_subset_larger_than_file_keeps_all():
    assert stratified_subset(["a", "b", "a"], 10, seed=1) == [0, 1, 2]


def test_subset_zero_size_is_empty():
    assert stratified_subset(["a", "b"], 0, seed=1) == []


def test_subset_negative_size_is_error():
    with pytest.raises(ValueError) as caught:
        stratified_subset(["a"], -1, seed=0)

    assert str(caught.value) == "subset size must be >= 0, got -1"


def test_subset_seed_changes_rows():
    strata = ["0"] * 100

    draws = {tuple(stratified_subset(strata, 10, seed)) for seed in range(5)}

    assert len(draws) == 5


def test_subset_remainder_goes_to_largest_fraction():
    # Shares of 3 rows: a 7/10 * 3 = 2.1, b 2/10 * 3 = 0.6, c 1/10 * 3 = 0.3, so b gets the
    # leftover row.
    strata = ["a"] * 7 + ["b"] * 2 + ["c"]

    chosen = stratified_subset(strata, 3, seed=0)

    assert Counter(strata[index] for index in chosen) == Counter({"a": 2, "b": 1})
