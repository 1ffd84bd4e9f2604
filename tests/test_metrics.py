"""Tests for accuracy, macro-F1 and the CLUE classification average."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.metrics.classification import (
    accuracy,
    classification_average,
    macro_f1,
    scored_pairs,
)

LABELS = ["a", "b", "c", "d"]


def per_class_f1(gold: list, predicted: list, labels: list[str]) -> float:
    """Compute macro-F1 from per-class counts, as 2TP / (2TP + FP + FN), 0 when undefined."""
    scores = []
    for label in labels:
        true_positive = false_positive = false_negative = 0
        for g, p in zip(gold, predicted):
            if g is None:
                continue
            if g == label and p == label:
                true_positive += 1
            elif p == label:
                false_positive += 1
            elif g == label:
                false_negative += 1
        denominator = 2 * true_positive + false_positive + false_negative
        scores.append(0.0 if denominator == 0 else 2 * true_positive / denominator)
    return sum(scores) / len(scores)


@st.composite
def labelled_rows(draw, labels=LABELS, gold_none=True, extra_predictions=()):
    """Draw equal-length gold and prediction lists with at least one gold label."""
    size = draw(st.integers(min_value=1, max_value=40))
    gold_labels = st.sampled_from(labels)
    gold_values = st.one_of(st.none(), gold_labels) if gold_none else gold_labels
    gold = draw(st.lists(gold_values, min_size=size, max_size=size))
    if all(value is None for value in gold):
        gold[draw(st.integers(0, size - 1))] = draw(gold_labels)
    predicted_labels = st.sampled_from([*labels, *extra_predictions])
    predicted = draw(st.lists(predicted_labels, min_size=size, max_size=size))
    return gold, predicted


# Accuracy


def test_accuracy_skips_rows_without_gold():
    gold = ["entailment", None, "neutral"]
    predicted = ["entailment", "contradiction", "contradiction"]

    assert accuracy(gold, predicted) == 0.5


def test_accuracy_golden_value():
    gold = ["a", "b", "b", "c", None]
    predicted = ["a", "b", "c", "c", "a"]

    assert accuracy(gold, predicted) == 0.75


def test_accuracy_all_wrong_is_zero():
    assert accuracy(["0", "1"], ["1", "0"]) == 0.0


def test_accuracy_without_gold_is_error():
    with pytest.raises(ValueError) as caught:
        accuracy([None, None], ["a", "b"])

    assert "no row has a gold label" in str(caught.value)


def test_accuracy_length_mismatch_is_error():
    with pytest.raises(ValueError) as caught:
        accuracy(["a", "b"], ["a"])

    assert str(caught.value) == "2 gold labels but 1 predictions"


@given(labelled_rows())
def test_accuracy_counts_equal_pairs(rows):
    gold, predicted = rows
    scored = [(g, p) for g, p in zip(gold, predicted) if g is not None]
    correct = sum(1 for g, p in scored if g == p)

    assert accuracy(gold, predicted) == correct / len(scored)


# Macro-F1


def test_macro_f1_counts_absent_class_as_zero():
    # Per-class counts and F1:
    #   a: TP 1, FP 1, FN 1 -> 0.5
    #   b: TP 2, FP 1 -> 0.8
    #   c: FN 1 -> 0
    #   d: neither present nor predicted -> 0
    gold = ["a", "a", "b", "b", "c"]
    predicted = ["a", "b", "b", "b", "a"]

    assert macro_f1(gold, predicted, labels=LABELS) == pytest.approx(1.3 / 4)
    assert macro_f1(gold, predicted, labels=["a", "b", "c"]) == pytest.approx(1.3 / 3)


def test_macro_f1_skips_rows_without_gold():
    # Without the None row, class 0 has TP 1 and FN 1 and class 1 has TP 1 and FP 1,
    # so both score 2/3.
    gold = ["0", None, "1", "0"]
    predicted = ["0", "0", "1", "1"]

    assert macro_f1(gold, predicted, labels=["0", "1"]) == pytest.approx(2 / 3)


def test_macro_f1_perfect_is_one():
    assert macro_f1(["a", "b", "c", "d"], ["a", "b", "c", "d"], labels=LABELS) == 1.0


def test_macro_f1_returns_python_float():
    assert type(macro_f1(["a"], ["a"], labels=["a"])) is float


def test_macro_f1_without_gold_is_error():
    with pytest.raises(ValueError) as caught:
        macro_f1([None], ["a"], labels=LABELS)

    assert "no row has a gold label" in str(caught.value)


@given(labelled_rows(extra_predictions=("unknown",)))
def test_macro_f1_matches_per_class_counts(rows):
    gold, predicted = rows

    expected = per_class_f1(gold, predicted, LABELS)

    assert macro_f1(gold, predicted, labels=LABELS) == pytest.approx(expected, abs=1e-12)


# Pairs and the board average


def test_scored_pairs_drops_none_gold():
    pairs = scored_pairs(["a", None, "b"], ["x", "y", "z"])

    assert pairs == (["a", "b"], ["x", "z"])


def test_average_of_all_tasks():
    scores = {"afqmc": 0.7, "tnews": 0.5, "csl": 0.9}

    assert classification_average(scores, ["afqmc", "tnews", "csl"]) == pytest.approx(0.7)


def test_average_ignores_extra_scores():
    scores = {"afqmc": 0.6, "tnews": 0.4, "ocnli": 0.1}

    assert classification_average(scores, ["afqmc", "tnews"]) == pytest.approx(0.5)


def test_average_missing_task_is_none():
    assert classification_average({"afqmc": 0.7}, ["afqmc", "tnews"]) is None


def test_average_of_no_tasks_is_none():
    assert classification_average({"afqmc": 0.7}, []) is None


def test_average_counts_zero_score():
    assert classification_average({"afqmc": 0.0, "tnews": 1.0}, ["afqmc", "tnews"]) == 0.5
