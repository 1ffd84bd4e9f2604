"""Metrics of embedding similarity: cosine, correlations, pair classification, token matching.

Every value is computed in float64 and is finite. A cosine is clipped to [-1, 1], and a
zero vector gets cosine 0.0 with a logged warning. A metric that is undefined for its input
raises `UndefinedMetric` instead of returning NaN.

- `spearman` and `pearson` correlate cosines with gold scores as MTEB's `cosine_spearman`
  and `cosine_pearson` do (scipy.stats on the raw values).
- `best_accuracy` and `best_f1` search every threshold between two adjacent distinct
  cosines, as MTEB's pair classification does for its max accuracy and max F1. Tied cosines
  are never split, because no threshold can split them, and predicting every pair positive
  or every pair negative are candidates too.
- `greedy_match` is BERTScore's greedy matching of token embeddings, without idf weights
  and without baseline rescaling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


class UndefinedMetric(ValueError):
    """Raised when a metric has no value for its input, such as a correlation with a
    constant series."""


@dataclass(frozen=True)
class ThresholdScore:
    """A pair-classification score at the best threshold: predict positive when
    cosine >= threshold."""

    value: float
    threshold: float


@dataclass(frozen=True)
class TokenMatch:
    """Greedy token-matching precision, recall and F1 of one candidate against one reference."""

    precision: float
    recall: float
    f1: float


def _scaled_rows(vectors: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Scale each row of a 2-D float64 array by its largest absolute value.

    Returns the scaled rows and a mask of the zero rows, which are logged as a warning.
    Scaling keeps squared norms far from overflow and underflow and does not change any
    cosine.
    """
    largest = np.abs(vectors).max(axis=1) if vectors.shape[1] else np.zeros(len(vectors))
    zero = largest == 0.0
    if zero.any():
        logger.warning(
            "%d of %d %s are zero vectors; their cosine with anything is set to 0.0",
            int(zero.sum()),
            len(largest),
            what,
        )
    return vectors / np.where(zero, 1.0, largest)[:, None], zero


def _cosine_table(left: np.ndarray, right: np.ndarray, what: str, *, paired: bool) -> np.ndarray:
    """Return cosines of paired rows (paired=True) or of every left row with every right row.

    The form dot(a, b) / sqrt(dot(a, a) * dot(b, b)) gives exactly 1.0 for a vector with
    itself: in binary floating point, the correctly rounded square root of a correctly
    rounded square x * x is x again.
    """
    left, left_zero = _scaled_rows(left, what)
    right, right_zero = _scaled_rows(right, what)
    left_squares = np.einsum("ij,ij->i", left, left)
    right_squares = np.einsum("ij,ij->i", right, right)
    if paired:
        products = np.einsum("ij,ij->i", left, right)
        norms = np.sqrt(left_squares * right_squares)
        zero = left_zero | right_zero
    else:
        products = left @ right.T
        norms = np.sqrt(np.outer(left_squares, right_squares))
        zero = left_zero[:, None] | right_zero[None, :]
    cosines = products / np.where(zero, 1.0, norms)
    return np.clip(np.where(zero, 0.0, cosines), -1.0, 1.0)


def cosine_similarities(first: Sequence, second: Sequence) -> np.ndarray:
    """Return the cosine of each row of `first` with the same row of `second`.

    Inputs of any float dtype are converted to float64 and results are clipped to [-1, 1],
    so a vector with itself gives exactly 1.0. A zero vector gives 0.0 and a warning.

    >>> cosine_similarities([[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]).round(6).tolist()
    [0.707107, 0.0]
    """
    left = np.asarray(first, dtype=np.float64)
    right = np.asarray(second, dtype=np.float64)
    if left.ndim != 2 or left.shape != right.shape:
        raise ValueError(
            f"expected two arrays of the same (rows, dimensions) shape, got {left.shape} "
            f"and {right.shape}"
        )
    return _cosine_table(left, right, "vectors", paired=True)


def _check_correlation_input(scores: np.ndarray, gold: np.ndarray) -> None:
    if scores.shape != gold.shape or scores.ndim != 1:
        raise ValueError(f"expected two series of one length, got {scores.shape} and {gold.shape}")
    if len(scores) < 2:
        raise UndefinedMetric(f"correlation undefined: {len(scores)} pair, at least 2 are needed")
    if not (np.isfinite(scores).all() and np.isfinite(gold).all()):
        raise UndefinedMetric("correlation undefined: the input has NaN or infinite values")
    if np.ptp(scores) == 0.0:
        raise UndefinedMetric(
            f"correlation undefined: every cosine is {scores[0]:.6f}, so the scores have no "
            "order to compare with the gold scores"
        )
    if np.ptp(gold) == 0.0:
        raise UndefinedMetric(
            f"correlation undefined: every gold score is {gold[0]:g}; score a data set whose "
            "gold scores differ"
        )


def spearman(scores: Sequence[float], gold: Sequence[float]) -> float:
    """Return Spearman's rank correlation of `scores` with `gold`; tied values share ranks.

    Raises UndefinedMetric when either series is constant or has fewer than 2 values.

    >>> round(spearman([0.10, 0.40, 0.35, 0.80], [0, 0, 1, 1]), 4)
    0.4472
    """
    from scipy.stats import spearmanr

    left = np.asarray(scores, dtype=np.float64)
    right = np.asarray(gold, dtype=np.float64)
    _check_correlation_input(left, right)
    return float(spearmanr(left, right).statistic)


def pearson(scores: Sequence[float], gold: Sequence[float]) -> float:
    """Return Pearson's linear correlation of `scores` with `gold`.

    Raises UndefinedMetric when either series is constant or has fewer than 2 values.

    >>> round(pearson([0.1, 0.2, 0.4], [1, 2, 4]), 6)
    1.0
    """
    from scipy.stats import pearsonr

    left = np.asarray(scores, dtype=np.float64)
    right = np.asarray(gold, dtype=np.float64)
    _check_correlation_input(left, right)
    return float(np.clip(pearsonr(left, right).statistic, -1.0, 1.0))


def normalise_scores(gold: Sequence[float], low: float, high: float) -> np.ndarray:
    """Map gold scores from [low, high] onto [0, 1].

    Correlations do not change under this map; it makes gold scores of different data sets
    comparable in the predictions files.

    >>> normalise_scores([0, 2.5, 5], 0, 5).tolist()
    [0.0, 0.5, 1.0]
    """
    if not high > low:
        raise ValueError(f"score range [{low}, {high}] is empty")
    return (np.asarray(gold, dtype=np.float64) - low) / (high - low)


def _binary(labels: Sequence[int | bool]) -> np.ndarray:
    values = np.asarray(labels)
    if not np.isin(values, (0, 1)).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    return values.astype(bool)


@dataclass(frozen=True)
class _Cuts:
    """Confusion counts for each threshold between groups of equal scores, highest first.

    Cut k predicts the k highest score groups positive; cut 0 predicts no pair positive.
    """

    thresholds: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    positives: int
    negatives: int


def _cuts(scores: Sequence[float], labels: Sequence[int | bool]) -> _Cuts:
    values = np.asarray(scores, dtype=np.float64)
    gold = _binary(labels)
    if values.shape != gold.shape or values.ndim != 1 or len(values) == 0:
        raise ValueError("expected one score per label and at least one pair")
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite")

    order = np.argsort(-values, kind="stable")
    sorted_values = values[order]
    sorted_gold = gold[order]
    # The last index of each run of equal scores: a threshold can cut only after it.
    group_ends = np.flatnonzero(np.append(sorted_values[1:] != sorted_values[:-1], True))
    true_positives = np.concatenate(([0], np.cumsum(sorted_gold)[group_ends]))
    false_positives = np.concatenate(([0], np.cumsum(~sorted_gold)[group_ends]))

    group_values = sorted_values[group_ends]
    thresholds = [float(np.nextafter(group_values[0], np.inf))]
    for upper, lower in zip(group_values[:-1], group_values[1:]):
        middle = (upper + lower) / 2.0
        # Midpoints of adjacent floats round onto the lower score, which would then count
        # as positive; the upper score itself separates the groups as well.
        thresholds.append(float(upper if middle <= lower else middle))
    thresholds.append(float(group_values[-1]))

    return _Cuts(
        thresholds=np.asarray(thresholds),
        true_positives=true_positives,
        false_positives=false_positives,
        positives=int(gold.sum()),
        negatives=int((~gold).sum()),
    )


def best_accuracy(scores: Sequence[float], labels: Sequence[int | bool]) -> ThresholdScore:
    """Return the highest accuracy of any threshold on `scores`, and that threshold.

    Pairs with cosine >= threshold are predicted positive (label 1). Among thresholds with
    the same accuracy the highest wins. The result is never below the majority-class rate,
    because predicting every pair positive or every pair negative is a candidate.

    >>> best_accuracy([0.875, 0.75, 0.625, 0.5, 0.375, 0.25], [1, 1, 0, 1, 0, 0])
    ThresholdScore(value=0.8333333333333334, threshold=0.6875)
    """
    cuts = _cuts(scores, labels)
    correct = cuts.true_positives + (cuts.negatives - cuts.false_positives)
    best = int(np.argmax(correct))
    total = cuts.positives + cuts.negatives
    return ThresholdScore(float(correct[best] / total), float(cuts.thresholds[best]))


def best_f1(scores: Sequence[float], labels: Sequence[int | bool]) -> ThresholdScore:
    """Return the highest F1 (positive class) of any threshold on `scores`, and that threshold.

    Raises UndefinedMetric when no pair is positive. Among thresholds with the same F1
    the highest wins.

    >>> best_f1([0.875, 0.75, 0.625, 0.5, 0.375, 0.25], [1, 1, 0, 1, 0, 0])
    ThresholdScore(value=0.8571428571428571, threshold=0.4375)
    """
    cuts = _cuts(scores, labels)
    if cuts.positives == 0:
        raise UndefinedMetric("F1 undefined: no pair is labelled positive")
    predicted = cuts.true_positives + cuts.false_positives
    # F1 = 2 TP / (predicted positives + gold positives); the denominator is never 0 here.
    f1 = 2.0 * cuts.true_positives / (predicted + cuts.positives)
    best = int(np.argmax(f1))
    return ThresholdScore(float(f1[best]), float(cuts.thresholds[best]))


def average_precision(scores: Sequence[float], labels: Sequence[int | bool]) -> float:
    """Return the average precision of ranking pairs by score (scikit-learn's definition).

    Raises UndefinedMetric when no pair is positive.

    >>> round(average_precision([0.875, 0.75, 0.625, 0.5, 0.375, 0.25], [1, 1, 0, 1, 0, 0]), 6)
    0.916667
    """
    from sklearn.metrics import average_precision_score

    gold = _binary(labels)
    if not gold.any():
        raise UndefinedMetric("average precision undefined: no pair is labelled positive")
    values = np.asarray(scores, dtype=np.float64)
    return float(average_precision_score(gold, values))


def greedy_match(candidate: np.ndarray, reference: np.ndarray) -> TokenMatch:
    """Match each token embedding to its most similar token on the other side (BERTScore).

    Precision averages, over candidate tokens, the best cosine with any reference token;
    recall does the same over reference tokens; F1 is their harmonic mean. With no idf
    weights and no baseline rescaling, unrelated texts still score well above 0.
    A side without tokens gives 0.0 for all three, and so does F1 when precision or recall
    is not positive, where the harmonic mean is undefined.

    >>> greedy_match(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0]]))
    TokenMatch(precision=0.5, recall=1.0, f1=0.6666666666666666)
    """
    left = np.asarray(candidate, dtype=np.float64)
    right = np.asarray(reference, dtype=np.float64)
    if len(left) == 0 or len(right) == 0:
        logger.warning("greedy matching of a text without tokens; its scores are set to 0.0")
        return TokenMatch(0.0, 0.0, 0.0)

    similarity = _cosine_table(left, right, "token vectors", paired=False)
    precision = float(similarity.max(axis=1).mean())
    recall = float(similarity.max(axis=0).mean())
    if precision <= 0.0 or recall <= 0.0:
        return TokenMatch(precision, recall, 0.0)
    f1 = 2.0 * precision * recall / (precision + recall)
    return TokenMatch(precision, recall, f1)
