"""CLUENER2020 metrics: the official per-type and macro F1, and span-level micro-F1.

Both take one entity mapping per line, `{type: {entity string: [(start, end), ...]}}`,
with gold and predicted lines paired in order.

The official figure (CLUENER2020's `score.py`) compares per line and per type the *sets of
entity strings*. Offsets are ignored, and an entity found twice in a line counts once. A
predicted string that is in the gold set is a true positive, any other predicted string is
a false positive, and a gold string that was not predicted is a false negative. The counts
are summed over lines for each type, F1 is computed per type, and "Overall@Macro" is the
plain mean over the fixed list of types.

Limitations:
- The official script divides by zero when a type has no predicted or no gold entity. Here
  precision, recall and F1 are 0 whenever their denominator is 0, so a type that is only
  predicted, or only in gold, scores 0. A type with neither a gold nor a predicted entity in
  the scored lines has no defined F1 and is left out of the macro mean (and listed in
  `absent_types`); every type occurs in the full dev and test files, so there the mean is
  over all 10 types, as in the official script.
- Span micro-F1 is the figure the PyTorch baseline reports on dev: (type, start, end)
  triples, counts summed over every line and type. It is not a leaderboard number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EntityLine = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class TypeScore:
    """Counts and scores of one entity type, summed over lines."""

    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class NerScores:
    """Per-type scores and their macro mean over the fixed type list."""

    per_type: dict[str, TypeScore]
    macro_f1: float
    absent_types: tuple[str, ...] = ()


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def prf(true_positives: int, false_positives: int, false_negatives: int) -> tuple[float, ...]:
    """Return precision, recall and F1, each 0 when its denominator is 0.

    >>> prf(1, 1, 0)
    (0.5, 1.0, 0.6666666666666666)
    >>> prf(0, 0, 0)
    (0.0, 0.0, 0.0)
    """
    precision = _ratio(true_positives, true_positives + false_positives)
    recall = _ratio(true_positives, true_positives + false_negatives)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _check_lengths(gold: Sequence[Any], predicted: Sequence[Any]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold lines but {len(predicted)} predicted lines")


def official_scores(
    gold: Sequence[EntityLine], predicted: Sequence[EntityLine], types: Sequence[str]
) -> NerScores:
    """Score entity strings per type as CLUENER2020's score.py does, and average over `types`.

    >>> gold = [{"name": {"张伟": [(9, 10)]}, "company": {"星河公司": [(0, 3)]}}]
    >>> predicted = [{"name": {"张伟": [(0, 1)], "李雷": [(3, 4)]}}]
    >>> scores = official_scores(gold, predicted, ["name", "company"])
    >>> round(scores.per_type["name"].f1, 4), scores.per_type["company"].f1
    (0.6667, 0.0)
    >>> round(scores.macro_f1, 4)
    0.3333
    >>> official_scores(gold, gold, ["name", "company", "scene"]).absent_types
    ('scene',)
    """
    _check_lengths(gold, predicted)
    per_type = {}
    for kind in types:
        true_positives = false_positives = false_negatives = 0
        for gold_line, predicted_line in zip(gold, predicted):
            gold_set = set(gold_line.get(kind, {}))
            predicted_set = set(predicted_line.get(kind, {}))
            true_positives += len(predicted_set & gold_set)
            false_positives += len(predicted_set - gold_set)
            false_negatives += len(gold_set - predicted_set)
        precision, recall, f1 = prf(true_positives, false_positives, false_negatives)
        per_type[kind] = TypeScore(
            true_positives, false_positives, false_negatives, precision, recall, f1
        )
    absent = tuple(
        kind
        for kind, score in per_type.items()
        if not (score.true_positives or score.false_positives or score.false_negatives)
    )
    scored = [score.f1 for kind, score in per_type.items() if kind not in absent]
    macro = sum(scored) / len(scored) if scored else 0.0
    return NerScores(per_type=per_type, macro_f1=macro, absent_types=absent)


def spans(line: EntityLine) -> set[tuple[str, int, int]]:
    """Return the (type, start, end) triples of one line's entities.

    >>> sorted(spans({"name": {"李雷": [[0, 1], [6, 7]]}}))
    [('name', 0, 1), ('name', 6, 7)]
    """
    triples = set()
    for kind, by_entity in line.items():
        for offsets in by_entity.values():
            for start, end in offsets:
                triples.add((kind, int(start), int(end)))
    return triples


def span_micro_f1(gold: Sequence[EntityLine], predicted: Sequence[EntityLine]) -> float:
    """Micro-F1 over (type, start, end) spans; 0 when there is no span at all.

    >>> span_micro_f1([{"name": {"张伟": [(9, 10)]}}], [{"name": {"张伟": [(0, 1)]}}])
    0.0
    """
    _check_lengths(gold, predicted)
    true_positives = false_positives = false_negatives = 0
    for gold_line, predicted_line in zip(gold, predicted):
        gold_spans = spans(gold_line)
        predicted_spans = spans(predicted_line)
        true_positives += len(predicted_spans & gold_spans)
        false_positives += len(predicted_spans - gold_spans)
        false_negatives += len(gold_spans - predicted_spans)
    return prf(true_positives, false_positives, false_negatives)[2]
