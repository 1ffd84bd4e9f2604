"""Length-sorted batching with dynamic padding, and batch-size search on out-of-memory.

Items are sorted longest first, so a batch that does not fit in memory fails at the start
of a case rather than at the end, and neighbours in a batch have similar lengths, which
keeps padding small.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)


def plan_batches(
    widths: Sequence[int],
    *,
    max_items: int,
    max_tokens: int,
    rows: Sequence[int] | None = None,
) -> list[list[int]]:
    """Group item indices, longest first, into batches that respect both limits.

    The cost of a batch is its padded size: the widest item's width times the number of
    rows the batch expands to (`rows[i]` per item, 1 by default). A single item that is
    over `max_tokens` on its own still gets a batch of its own.

    >>> plan_batches([3, 10, 4, 9], max_items=2, max_tokens=100)
    [[1, 3], [2, 0]]
    """
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    order = sorted(range(len(widths)), key=lambda index: (-widths[index], index))
    row_counts = rows if rows is not None else [1] * len(widths)

    batches: list[list[int]] = []
    current: list[int] = []
    current_rows = 0
    current_width = 0
    for index in order:
        width = max(current_width, widths[index])
        total_rows = current_rows + row_counts[index]
        fits = len(current) < max_items and width * total_rows <= max_tokens
        if current and not fits:
            batches.append(current)
            current, current_rows, current_width = [], 0, 0
            width, total_rows = widths[index], row_counts[index]
        current.append(index)
        current_rows = total_rows
        current_width = width
    if current:
        batches.append(current)
    return batches


def is_out_of_memory(error: BaseException) -> bool:
    """Tell whether an exception is an accelerator or host out-of-memory error."""
    if isinstance(error, MemoryError):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in message or "can't allocate memory" in message
    )


def run_batches(
    widths: Sequence[int],
    step: Callable[[list[int]], None],
    *,
    batch_size: int | str,
    max_batch_size: int,
    max_tokens: int,
    rows: Sequence[int] | None = None,
    on_oom: Callable[[], None] | None = None,
) -> None:
    """Call `step` on every batch; with batch_size "auto", halve the limits on OOM.

    A fixed batch size is used as given: an out-of-memory error then propagates, because
    silently running a smaller batch than the spec asks for would change the benchmark.
    """
    automatic = batch_size == "auto"
    max_items = max_batch_size if automatic else int(batch_size)
    pending = list(range(len(widths)))

    while pending:
        sub_widths = [widths[index] for index in pending]
        sub_rows = [rows[index] for index in pending] if rows is not None else None
        batches = plan_batches(
            sub_widths, max_items=max_items, max_tokens=max_tokens, rows=sub_rows
        )
        done = 0
        try:
            for batch in batches:
                step([pending[position] for position in batch])
                done += 1
        except Exception as error:
            if not automatic or not is_out_of_memory(error) or (max_items == 1 and max_tokens <= 1):
                raise
            if on_oom is not None:
                on_oom()
            max_items = max(1, max_items // 2)
            max_tokens = max(1, max_tokens // 2)
            logger.warning(
                "out of memory; retrying with at most %d items and %d tokens per batch",
                max_items,
                max_tokens,
            )
            finished = {pending[position] for batch in batches[:done] for position in batch}
            pending = [index for index in pending if index not in finished]
            continue
        pending = []


def available_cores() -> int:
    """Count the CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Split the cores among pytest-xdist workers so that they do not oversubscribe.

    >>> threads_per_worker(2, cores=16)
    8
    >>> threads_per_worker(4, cores=2)
    1
    """
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, workers))
