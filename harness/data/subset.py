"""Seeded, label-stratified subsets for the smoke tier and for `limit`.

Every label keeps its share of the file (largest-remainder rounding), rows are drawn with
`random.Random(seed)`, and the chosen rows come back in file order, so the same file, size
and seed give the same ids on every machine and every xdist worker.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence


def stratified_subset(strata: Sequence[str | None], size: int, seed: int) -> list[int]:
    """Return the sorted indices of a stratified sample of `size` rows.

    `strata` holds each row's gold label; rows without one (None) form a stratum of their
    own, so unscorable rows keep their share too.

    >>> stratified_subset(["a", "a", "a", "b"], 2, seed=0)
    [0, 2]
    """
    if size < 0:
        raise ValueError(f"subset size must be >= 0, got {size}")
    total = len(strata)
    if size >= total:
        return list(range(total))

    groups: dict[str, list[int]] = defaultdict(list)
    for index, stratum in enumerate(strata):
        groups["" if stratum is None else f"={stratum}"].append(index)
    keys = sorted(groups)

    # Largest-remainder allocation: floors first, then the leftover rows go to the strata
    # with the largest fractional parts (ties to the earlier key, so the result is fixed).
    exact = {key: size * len(groups[key]) / total for key in keys}
    quota = {key: int(exact[key]) for key in keys}
    leftover = size - sum(quota.values())
    by_remainder = sorted(keys, key=lambda key: (-(exact[key] - quota[key]), key))
    for key in by_remainder[:leftover]:
        quota[key] += 1

    rng = random.Random(seed)
    chosen: list[int] = []
    for key in keys:
        members = list(groups[key])
        rng.shuffle(members)
        chosen.extend(members[: quota[key]])
    return sorted(chosen)
