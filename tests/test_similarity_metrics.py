"""Similarity metrics: cosine, correlations, best-threshold pair classification, token matching.

Golden values are worked by hand in the comments; property tests cover the invariants.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import spearmanr

from harness.metrics.similarity import (
    UndefinedMetric,
    average_precision,
    best_accuracy,
    best_f1,
    cosine_similarities,
    greedy_match,
    normalise_scores,
    pearson,
    spearman,
)

# Six pairs ranked by cosine; positives at ranks 1, 2 and 4. The scores are binary
# fractions, so the midpoints between them are exact.
RANKED_SCORES = [0.875, 0.75, 0.625, 0.5, 0.375, 0.25]
RANKED_LABELS = [1, 1, 0, 1, 0, 0]


# Cosine


def test_cosine_of_vector_with_itself_is_one():
    vector = np.full(3, 0.1, dtype=np.float32)
    naive = np.dot(vector, vector) / (np.linalg.norm(vector) * np.linalg.norm(vector))

    assert naive.dtype == np.float32
    assert naive > 1.0  # float32 arithmetic gives 1.0000001 for this vector
    assert cosine_similarities([vector], [vector])[0] == 1.0


def test_cosine_opposite_vectors_is_minus_one():
    assert cosine_similarities([[0.3, -0.7]], [[-0.3, 0.7]])[0] == -1.0


def test_cosine_orthogonal_vectors_is_zero():
    assert cosine_similarities([[1.0, 0.0]], [[0.0, 2.0]])[0] == 0.0


def test_cosine_zero_vector_gives_zero(caplog):
    with caplog.at_level(logging.WARNING, logger="harness.metrics.similarity"):
        values = cosine_similarities([[0.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [2.0, 2.0]])

    assert values[0] == 0.0
    assert values[1] == 1.0
    assert "1 of 2 vectors are zero vectors" in caplog.text


def test_cosine_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same"):
        cosine_similarities([[1.0, 0.0]], [[1.0, 0.0, 0.0]])


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(finite, finite, finite, finite, finite, finite), min_size=1, max_size=8))
def test_cosine_stays_in_unit_range(rows):
    first = [row[:3] for row in rows]
    second = [row[3:] for row in rows]

    values = cosine_similarities(first, second)

    assert np.isfinite(values).all()
    assert (values >= -1.0).all()
    assert (values <= 1.0).all()


@given(
    st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=16).filter(lambda row: any(row))
)
def test_cosine_self_is_exactly_one(row):
    vector = np.array(row, dtype=np.float32)

    assert cosine_similarities([vector], [vector])[0] == 1.0


# Correlations


def test_spearman_with_ties_matches_scipy():
    scores = [0.10, 0.40, 0.35, 0.80]
    gold = [0, 0, 1, 1]

    value = spearman(scores, gold)

    # Ranks: gold (1.5, 1.5, 3.5, 3.5), scores (1, 3, 2, 4); r = 2 / sqrt(4 * 5).
    assert round(value, 4) == 0.4472
    assert value == pytest.approx(2 / math.sqrt(20), abs=1e-12)
    assert value == spearmanr(scores, gold).statistic


def test_spearman_constant_scores_undefined():
    with pytest.raises(UndefinedMetric, match="correlation undefined: every cosine is 0.500000"):
        spearman([0.5, 0.5, 0.5], [0, 1, 2])


def test_spearman_constant_gold_undefined():
    with pytest.raises(UndefinedMetric, match="correlation undefined: every gold score is 3"):
        spearman([0.1, 0.2, 0.3], [3, 3, 3])


def test_spearman_single_pair_undefined():
    with pytest.raises(UndefinedMetric, match="at least 2"):
        spearman([0.1], [1])


def test_pearson_constant_scores_undefined():
    with pytest.raises(UndefinedMetric, match="correlation undefined"):
        pearson([0.5, 0.5, 0.5], [0, 1, 2])


def test_pearson_linear_scores_is_one():
    assert pearson([0.1, 0.2, 0.4], [1, 2, 4]) == pytest.approx(1.0, abs=1e-12)


def test_normalise_scores_maps_range():
    assert normalise_scores([0, 2.5, 5], 0, 5).tolist() == [0.0, 0.5, 1.0]


@given(
    st.lists(st.tuples(st.integers(-50, 50), st.integers(0, 5)), min_size=3, max_size=30).filter(
        lambda rows: len({s for s, _ in rows}) > 1 and len({g for _, g in rows}) > 1
    )
)
def test_spearman_invariant_under_monotone_map(rows):
    scores = np.array([score / 50 for score, _ in rows])
    gold = [value for _, value in rows]
    # Strictly increasing on [-1, 1], and distinct inputs 0.02 apart stay distinct.
    mapped = scores**3 + 2 * scores

    assert spearman(mapped, gold) == pytest.approx(spearman(scores, gold), abs=1e-12)


# Pair classification


def test_best_accuracy_golden_value():
    result = best_accuracy(RANKED_SCORES, RANKED_LABELS)

    # Top 2 positive: 2 TP + 3 TN = 5 of 6; top 4 ties it, and the higher threshold wins.
    assert result.value == 5 / 6
    assert result.threshold == 0.6875


def test_best_f1_golden_value():
    result = best_f1(RANKED_SCORES, RANKED_LABELS)

    # Top 4 positive: precision 3/4, recall 1, F1 = 6/7.
    assert result.value == 6 / 7
    assert result.threshold == 0.4375


def test_average_precision_golden_value():
    # Precision at each positive's rank: 1/1, 2/2, 3/4; their mean is 11/12.
    assert average_precision(RANKED_SCORES, RANKED_LABELS) == pytest.approx(11 / 12, abs=1e-15)


def test_best_accuracy_never_splits_ties():
    result = best_accuracy([0.5, 0.5, 0.5], [1, 0, 0])

    assert result.value == 2 / 3
    assert result.threshold > 0.5


def test_best_accuracy_all_positive_threshold_is_min():
    result = best_accuracy([0.9, 0.2, 0.4], [1, 1, 1])

    assert result.value == 1.0
    assert result.threshold == 0.2


def test_best_f1_without_positives_undefined():
    with pytest.raises(UndefinedMetric, match="F1 undefined"):
        best_f1([0.1, 0.2], [0, 0])


def test_average_precision_without_positives_undefined():
    with pytest.raises(UndefinedMetric, match="average precision undefined"):
        average_precision([0.1, 0.2], [0, 0])


def test_labels_must_be_binary():
    with pytest.raises(ValueError, match="0 .negative. or 1"):
        best_accuracy([0.1, 0.2], [0, 2])


labelled_scores = st.lists(
    st.tuples(st.integers(-20, 20), st.integers(0, 1)), min_size=1, max_size=40
)


@given(labelled_scores)
def test_best_accuracy_at_least_majority_rate(rows):
    scores = [score / 20 for score, _ in rows]
    labels = [label for _, label in rows]
    majority = max(sum(labels), len(labels) - sum(labels)) / len(labels)

    assert best_accuracy(scores, labels).value >= majority


@given(labelled_scores)
def test_best_accuracy_threshold_reproduces_value(rows):
    scores = np.array([score / 20 for score, _ in rows])
    labels = np.array([label for _, label in rows])

    result = best_accuracy(scores, labels)
    predicted = (scores >= result.threshold).astype(int)

    assert float(np.mean(predicted == labels)) == pytest.approx(result.value, abs=1e-12)


@given(labelled_scores.filter(lambda rows: any(label for _, label in rows)))
def test_best_f1_threshold_reproduces_value(rows):
    scores = np.array([score / 20 for score, _ in rows])
    labels = np.array([label for _, label in rows])

    result = best_f1(scores, labels)
    predicted = scores >= result.threshold
    true_positives = int(np.sum(predicted & (labels == 1)))
    f1 = 2 * true_positives / (int(predicted.sum()) + int(labels.sum()))

    assert f1 == pytest.approx(result.value, abs=1e-12)


# Token matching


def test_greedy_match_golden_value():
    match = greedy_match(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0]]))

    assert match.precision == 0.5
    assert match.recall == 1.0
    assert match.f1 == 2 / 3


def test_greedy_match_identical_tokens_is_one():
    tokens = np.array([[0.2, 0.5, 0.1], [0.7, -0.3, 0.4]], dtype=np.float32)

    match = greedy_match(tokens, tokens)

    assert match.precision == 1.0
    assert match.recall == 1.0
    assert match.f1 == 1.0


def test_greedy_match_empty_side_is_zero(caplog):
    with caplog.at_level(logging.WARNING, logger="harness.metrics.similarity"):
        match = greedy_match(np.zeros((0, 2)), np.array([[1.0, 0.0]]))

    assert match.f1 == 0.0
    assert "without tokens" in caplog.text


def test_greedy_match_zero_precision_zero_f1():
    match = greedy_match(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([[-1.0, 0.0]]))

    assert match.recall == 1.0
    assert match.precision == 0.0
    assert match.f1 == 0.0
