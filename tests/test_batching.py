"""Tests for length-sorted batch planning and the batch-size search on out-of-memory."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.backends.batching import (
    is_out_of_memory,
    plan_batches,
    run_batches,
    threads_per_worker,
)

widths_lists = st.lists(st.integers(min_value=1, max_value=300), max_size=60)
item_limits = st.integers(min_value=1, max_value=16)
token_limits = st.integers(min_value=1, max_value=2000)


@st.composite
def widths_with_rows(draw):
    widths = draw(widths_lists)
    rows = draw(st.lists(st.integers(1, 5), min_size=len(widths), max_size=len(widths)))
    return widths, rows


def padded_cost(batch: list[int], widths: list[int], rows: list[int]) -> int:
    return max(widths[index] for index in batch) * sum(rows[index] for index in batch)


class FakeStep:
    """Record finished batches and raise a CUDA-style OOM for batches over `max_items`."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.finished: list[list[int]] = []
        self.failures = 0

    def __call__(self, batch: list[int]) -> None:
        if len(batch) > self.max_items:
            self.failures += 1
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.finished.append(batch)

    def counts(self) -> Counter:
        return Counter(index for batch in self.finished for index in batch)


# plan_batches


@given(widths_with_rows(), item_limits, token_limits)
def test_plan_covers_every_index_once(data, max_items, max_tokens):
    widths, rows = data

    batches = plan_batches(widths, max_items=max_items, max_tokens=max_tokens, rows=rows)

    assert sorted(index for batch in batches for index in batch) == list(range(len(widths)))


@given(widths_with_rows(), item_limits, token_limits)
def test_plan_respects_item_limit(data, max_items, max_tokens):
    widths, rows = data

    batches = plan_batches(widths, max_items=max_items, max_tokens=max_tokens, rows=rows)

    assert all(1 <= len(batch) <= max_items for batch in batches)


@given(widths_with_rows(), item_limits, token_limits)
def test_plan_over_tokens_only_alone(data, max_items, max_tokens):
    widths, rows = data

    batches = plan_batches(widths, max_items=max_items, max_tokens=max_tokens, rows=rows)

    for batch in batches:
        if padded_cost(batch, widths, rows) > max_tokens:
            assert len(batch) == 1, batch


@given(widths_lists, item_limits, token_limits)
def test_plan_puts_longest_first(widths, max_items, max_tokens):
    batches = plan_batches(widths, max_items=max_items, max_tokens=max_tokens)
    flat_widths = [widths[index] for batch in batches for index in batch]

    assert flat_widths == sorted(widths, reverse=True)


def test_plan_docstring_example():
    assert plan_batches([3, 10, 4, 9], max_items=2, max_tokens=100) == [[1, 3], [2, 0]]


def test_plan_token_limit_splits_batch():
    # Widths 10, 10, 10 cost 30 together, so with 25 tokens the third item starts a batch.
    assert plan_batches([10, 10, 10], max_items=8, max_tokens=25) == [[0, 1], [2]]


def test_plan_rows_multiply_cost():
    # Each item expands to 3 rows of width 10, so two items cost 60.
    batches = plan_batches([10, 10], max_items=8, max_tokens=50, rows=[3, 3])

    assert batches == [[0], [1]]


def test_plan_oversized_item_gets_own_batch():
    assert plan_batches([500, 5, 5], max_items=8, max_tokens=100) == [[0], [1, 2]]


def test_plan_empty_input_has_no_batches():
    assert plan_batches([], max_items=4, max_tokens=100) == []


def test_plan_zero_items_is_error():
    with pytest.raises(ValueError) as caught:
        plan_batches([1], max_items=0, max_tokens=10)

    assert str(caught.value) == "max_items must be >= 1, got 0"


# run_batches


def test_auto_batch_halves_on_oom():
    step = FakeStep(max_items=2)
    oom_calls = []

    run_batches(
        [5] * 10,
        step,
        batch_size="auto",
        max_batch_size=8,
        max_tokens=10_000,
        on_oom=lambda: oom_calls.append(1),
    )

    assert step.counts() == Counter({index: 1 for index in range(10)})
    assert max(len(batch) for batch in step.finished) == 2
    assert len(oom_calls) == 2


def test_auto_batch_keeps_finished_batches():
    # Batches [0, 1] and [2, 3] succeed and [4, 5] fails, so only items 4 and 5 are retried.
    finished: list[list[int]] = []

    def step(batch: list[int]) -> None:
        if 5 in batch and len(batch) > 1:
            raise RuntimeError("CUDA out of memory")
        finished.append(batch)

    run_batches([9, 8, 7, 6, 5, 4], step, batch_size="auto", max_batch_size=2, max_tokens=100)

    assert finished == [[0, 1], [2, 3], [4], [5]]


@given(
    widths_lists,
    st.integers(min_value=1, max_value=8),
    st.sampled_from([1, 2, 4, 32, 64]),
)
def test_auto_batch_finishes_every_item(widths, limit, max_batch_size):
    step = FakeStep(max_items=limit)

    run_batches(widths, step, batch_size="auto", max_batch_size=max_batch_size, max_tokens=10**6)

    assert step.counts() == Counter(range(len(widths)))
    assert all(len(batch) <= limit for batch in step.finished)


def test_fixed_batch_oom_propagates():
    step = FakeStep(max_items=2)

    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        run_batches([5] * 10, step, batch_size=4, max_batch_size=32, max_tokens=10_000)

    assert step.finished == []


def test_fixed_batch_size_is_used():
    step = FakeStep(max_items=3)

    run_batches([5] * 7, step, batch_size=3, max_batch_size=32, max_tokens=10_000)

    assert [len(batch) for batch in step.finished] == [3, 3, 1]


def test_auto_batch_other_error_propagates():
    def step(batch: list[int]) -> None:
        raise RuntimeError("device-side assert triggered")

    with pytest.raises(RuntimeError, match="device-side assert"):
        run_batches([5] * 4, step, batch_size="auto", max_batch_size=4, max_tokens=100)


def test_auto_batch_gives_up_at_one_item():
    step = FakeStep(max_items=0)

    with pytest.raises(RuntimeError, match="out of memory"):
        run_batches([5] * 3, step, batch_size="auto", max_batch_size=4, max_tokens=64)

    # The (items, tokens) limits go (4, 64), (2, 32), (1, 16), (1, 8), (1, 4), (1, 2), (1, 1),
    # and the first batch fails under each of them.
    assert step.failures == 7


# Helpers


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RuntimeError("CUDA out of memory. Tried to allocate"), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory"), True),
        (MemoryError(), True),
        (RuntimeError("shape mismatch"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_is_out_of_memory_cases(error, expected):
    assert is_out_of_memory(error) is expected


def test_threads_split_between_workers():
    assert threads_per_worker(2, cores=16) == 8
    assert threads_per_worker(3, cores=16) == 5
    assert threads_per_worker(4, cores=2) == 1
    assert threads_per_worker(0, cores=6) == 6
