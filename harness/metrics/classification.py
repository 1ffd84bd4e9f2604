"""Classification metrics: accuracy (the CLUE score) and macro-F1 (a secondary figure).

Rows whose gold label is None (the "-" of NLI files) are left out of both, as the official
loaders drop them; callers report how many were left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sklearn.metrics import f1_score


def scored_pairs(
    gold: Sequence[str | None], predicted: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Return the (gold, predicted) lists restricted to rows with a gold label."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    kept = [(g, p) for g, p in zip(gold, predicted) if g is not None]
    return [g for g, _ in kept], [p for _, p in kept]


def accuracy(gold: Sequence[str | None], predicted: Sequence[str]) -> float:
    """Share of scored rows whose prediction equals the gold label.

    >>> accuracy(["entailment", None, "neutral"], ["entailment", "contradiction", "contradiction"])
    0.5
    """
    kept_gold, kept_predicted = scored_pairs(gold, predicted)
    if not kept_gold:
        raise ValueError("no row has a gold label, so accuracy is undefined")
    correct = sum(1 for g, p in zip(kept_gold, kept_predicted) if g == p)
    return correct / len(kept_gold)


def macro_f1(gold: Sequence[str | None], predicted: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean of per-class F1 over the task's whole label set.

    The label set is fixed, so a class that is neither predicted nor present scores 0
    (scikit-learn's zero_division=0) instead of dropping out of the mean.

    >>> round(macro_f1(["0", "1", "1"], ["0", "1", "0"], labels=["0", "1"]), 4)
    0.6667
    """
    kept_gold, kept_predicted = scored_pairs(gold, predicted)
    if not kept_gold:
        raise ValueError("no row has a gold label, so macro-F1 is undefined")
    return float(
        f1_score(kept_gold, kept_predicted, labels=list(labels), average="macro", zero_division=0)
    )


def classification_average(scores: Mapping[str, float], tasks: Sequence[str]) -> float | None:
    """Plain mean of the given tasks' accuracies, or None unless every task has a score.

    The CLUE 1.0 classification score is this mean over AFQMC, TNEWS, IFLYTEK, CMNLI,
    CLUEWSC2020 and CSL.

    >>> classification_average({"a": 0.5, "b": 0.7}, ["a", "b"])
    0.6
    >>> classification_average({"a": 0.5}, ["a", "b"]) is None
    True
    """
    if not tasks or any(task not in scores for task in tasks):
        return None
    return sum(scores[task] for task in tasks) / len(tasks)
