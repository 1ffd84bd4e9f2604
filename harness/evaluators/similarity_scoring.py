"""Scoring of the similarity cases: embed each distinct text once, then compute the metrics.

Each `score_*` function returns an `Outcome`: the metrics (finite values only), the
predictions records, and the failure messages of broken pair asserts and of metrics that
are undefined for the data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends.base import Backend, Progress
from harness.cases import CaseConfig
from harness.errors import BackendError, DataError
from harness.evaluators.base import finish_progress, input_digest
from harness.metrics.per_example import per_example_data
from harness.metrics.similarity import (
    UndefinedMetric,
    average_precision,
    best_accuracy,
    best_f1,
    cosine_similarities,
    greedy_match,
    pearson,
    spearman,
)
from harness.tasks.similarity import (
    BoundCheck,
    GenerationRow,
    PairCheck,
    PairRow,
    label_text,
)

ProgressOpener = Callable[[CaseConfig, int], Progress]


@dataclass
class Outcome:
    """The metrics, predictions records and failure messages of one scored case, before
    thresholds are checked."""

    metrics: dict[str, float]
    records: list[dict[str, Any]]
    scored: int
    skipped: int = 0
    checks: list[dict[str, Any]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    undefined: list[str] = field(default_factory=list)
    per_example: dict[str, Any] | None = None


def embed_texts(
    case: CaseConfig,
    backend: Backend,
    requests: Sequence[tuple[str, str]],
    open_progress: ProgressOpener,
) -> dict[tuple[str, str], np.ndarray]:
    """Embed each distinct (role, text) once; return the vector of each."""
    by_role: dict[str, list[str]] = {}
    for role, text in dict.fromkeys(requests):
        by_role.setdefault(role, []).append(text)

    progress = open_progress(case, sum(len(texts) for texts in by_role.values()))
    vectors: dict[tuple[str, str], np.ndarray] = {}
    try:
        for role, texts in by_role.items():
            output = np.asarray(backend.embed(texts, progress, role=role))
            if output.ndim != 2 or output.shape[0] != len(texts):
                raise BackendError(
                    f"case {case.id}: model '{case.model}' returned embeddings of shape "
                    f"{output.shape} for {len(texts)} texts"
                )
            for text, vector in zip(texts, output):
                vectors[(role, text)] = vector
    finally:
        finish_progress(progress)
    return vectors


def pair_cosines(
    vectors: dict[tuple[str, str], np.ndarray],
    pairs: Sequence[tuple[str, str]],
    roles: Sequence[str],
) -> np.ndarray:
    """Return the cosine of each (first, second) text pair, the texts in the given roles."""
    if not pairs:
        return np.zeros(0)
    first = np.stack([vectors[(roles[0], left)] for left, _ in pairs])
    second = np.stack([vectors[(roles[1], right)] for _, right in pairs])
    return cosine_similarities(first, second)


def _round(value: float) -> float:
    return round(float(value), 6)


# Pair asserts -------------------------------------------------------------------------


def _pairs_of(check: PairCheck) -> list[tuple[str, str]]:
    """Return the text pairs a check compares. An ordering compares (a, b), (a, c), (b, c)."""
    if isinstance(check, BoundCheck):
        return [(check.text1, check.text2)]
    first, second = check.closer
    return [(first, second), (first, check.than), (second, check.than)]


def _bound_outcome(check: BoundCheck, cosine: float) -> tuple[dict, dict, str | None]:
    too_low = check.minimum is not None and cosine < check.minimum
    too_high = check.maximum is not None and cosine > check.maximum
    if check.minimum is not None and check.maximum is not None:
        bound = f"in [{check.minimum:.4f}, {check.maximum:.4f}]"
    elif check.minimum is not None:
        bound = f">= {check.minimum:.4f}"
    else:
        bound = f"<= {check.maximum:.4f}"

    message = None
    if too_low or too_high:
        side = f"below min {check.minimum:.4f}" if too_low else f"above max {check.maximum:.4f}"
        message = f"{check.name}: cosine({check.text1!r}, {check.text2!r}) = {cosine:.4f}, {side}"
    record = {
        "id": check.name,
        "kind": "bound",
        "text1": check.text1,
        "text2": check.text2,
        "cosine": _round(cosine),
        "min": check.minimum,
        "max": check.maximum,
        "passed": message is None,
    }
    summary = {
        "name": check.name,
        "value": float(cosine),
        "bound": bound,
        "passed": message is None,
    }
    return record, summary, message


def _closer_outcome(check, cosines: Sequence[float]) -> tuple[dict, dict, str | None]:
    close, first_other, second_other = (float(value) for value in cosines)
    other = max(first_other, second_other)
    first, second = check.closer
    message = None
    if not close > other + check.margin:
        message = (
            f"{check.name}: cosine({first!r}, {second!r}) = {close:.4f} is not above "
            f"cosine({first!r}, {check.than!r}) = {first_other:.4f} and "
            f"cosine({second!r}, {check.than!r}) = {second_other:.4f}"
            + (f" by more than {check.margin:g}" if check.margin else "")
        )
    record = {
        "id": check.name,
        "kind": "closer",
        "closer": [first, second],
        "than": check.than,
        "cosine": _round(close),
        "cosine_than": [_round(first_other), _round(second_other)],
        "margin": check.margin,
        "passed": message is None,
    }
    summary = {
        "name": check.name,
        "value": close,
        "bound": f"> {other + check.margin:.4f}",
        "passed": message is None,
    }
    return record, summary, message


def score_pair_checks(
    case: CaseConfig, backend: Backend, checks: Sequence[PairCheck], open_progress: ProgressOpener
) -> Outcome:
    """Check each pair assert; every broken one becomes a failure message."""
    roles = case.options["roles"]
    pairs = [pair for check in checks for pair in _pairs_of(check)]
    requests = [(roles[0], left) for left, _ in pairs] + [(roles[1], right) for _, right in pairs]
    vectors = embed_texts(case, backend, requests, open_progress)
    cosines = pair_cosines(vectors, pairs, roles)

    outcome = Outcome(metrics={}, records=[], scored=len(checks))
    position = 0
    for check in checks:
        if isinstance(check, BoundCheck):
            record, summary, message = _bound_outcome(check, cosines[position])
            position += 1
        else:
            record, summary, message = _closer_outcome(check, cosines[position : position + 3])
            position += 3
        outcome.records.append(record)
        outcome.checks.append(summary)
        if message is not None:
            outcome.broken.append(message)
    passed = sum(1 for summary in outcome.checks if summary["passed"])
    outcome.metrics["checks_passed"] = passed / len(checks) if checks else 1.0
    if checks:
        outcome.per_example = per_example_data(
            [summary["name"] for summary in outcome.checks],
            {"passed": [summary["passed"] for summary in outcome.checks]},
            {"checks_passed": {"statistic": "proportion", "columns": ["passed"]}},
        )
    return outcome


# Labelled pairs -----------------------------------------------------------------------


def _embed_rows(case, backend, rows: Sequence[PairRow], open_progress) -> np.ndarray:
    roles = case.options["roles"]
    pairs = [(row.text1, row.text2) for row in rows]
    requests = [(roles[0], left) for left, _ in pairs] + [(roles[1], right) for _, right in pairs]
    vectors = embed_texts(case, backend, requests, open_progress)
    return pair_cosines(vectors, pairs, roles)


def score_sts(
    case: CaseConfig,
    backend: Backend,
    rows: Sequence[PairRow],
    gold: Sequence[float],
    score_range: tuple[float, float],
    open_progress: ProgressOpener,
) -> Outcome:
    """Correlate cosines with gold scores mapped from `score_range` onto [0, 1]."""
    cosines = _embed_rows(case, backend, rows, open_progress)
    low, high = score_range
    normalised = [(value - low) / (high - low) if high > low else 0.0 for value in gold]

    outcome = Outcome(metrics={}, records=[], scored=len(rows))
    try:
        outcome.metrics["spearman"] = spearman(cosines, normalised)
        outcome.metrics["pearson"] = pearson(cosines, normalised)
    except UndefinedMetric as error:
        outcome.undefined.append(f"spearman and pearson not computed: {error}")
    outcome.records = [
        {
            "id": str(row.index),
            "index": row.index,
            "line": row.line,
            "input_sha256": input_digest(f"{row.text1}\n{row.text2}"),
            "cosine": _round(cosine),
            "gold": row.label,
            "gold_normalised": _round(value),
        }
        for row, cosine, value in zip(rows, cosines, normalised)
    ]
    outcome.per_example = per_example_data(
        [row.index for row in rows],
        {"cosine": list(cosines), "gold": normalised},
        {
            metric: {"statistic": metric, "columns": ["cosine", "gold"]}
            for metric in ("spearman", "pearson")
        },
    )
    return outcome


def score_pair_classification(
    case: CaseConfig,
    backend: Backend,
    rows: Sequence[PairRow],
    path: Path,
    open_progress: ProgressOpener,
) -> Outcome:
    """Score pairs labelled positive or negative; pairs with other labels are skipped."""
    positive = set(case.options["positive"])
    negative = set(case.options["negative"])
    gold: list[int | None] = []
    for row in rows:
        label = label_text(row.label)
        if label in positive:
            gold.append(1)
        elif label in negative:
            gold.append(0)
        else:
            gold.append(None)
    scored_indices = [index for index, value in enumerate(gold) if value is not None]
    if not scored_indices:
        seen = sorted({repr(row.label) for row in rows})[:10]
        raise DataError(
            path,
            f"no selected pair has a label in positive {sorted(positive)} or negative "
            f"{sorted(negative)} (labels found: {', '.join(seen)})",
            hint="Set the case's positive: and negative: label lists",
        )

    scored_rows = [rows[index] for index in scored_indices]
    cosines = _embed_rows(case, backend, scored_rows, open_progress)
    labels = [gold[index] for index in scored_indices]
    outcome = Outcome(
        metrics={}, records=[], scored=len(scored_rows), skipped=len(rows) - len(scored_rows)
    )
    try:
        outcome.metrics["average_precision"] = average_precision(cosines, labels)
    except UndefinedMetric as error:
        outcome.undefined.append(str(error))
    accuracy = best_accuracy(cosines, labels)
    outcome.metrics["max_accuracy"] = accuracy.value
    outcome.metrics["max_accuracy_threshold"] = accuracy.threshold
    try:
        f1 = best_f1(cosines, labels)
        outcome.metrics["max_f1"] = f1.value
        outcome.metrics["max_f1_threshold"] = f1.threshold
    except UndefinedMetric as error:
        outcome.undefined.append(str(error))

    outcome.per_example = per_example_data(
        [row.index for row in scored_rows],
        {"cosine": list(cosines), "label": labels},
        {
            metric: {"statistic": metric, "columns": ["cosine", "label"]}
            for metric in ("average_precision", "max_accuracy", "max_f1")
        },
    )
    cosine_of = dict(zip(scored_indices, cosines))
    for index, row in enumerate(rows):
        cosine = cosine_of.get(index)
        outcome.records.append(
            {
                "id": str(row.index),
                "index": row.index,
                "line": row.line,
                "input_sha256": input_digest(f"{row.text1}\n{row.text2}"),
                "cosine": None if cosine is None else _round(cosine),
                "label": label_text(row.label),
                "gold": gold[index],
                "predicted_at_max_accuracy": None
                if cosine is None
                else int(cosine >= accuracy.threshold),
            }
        )
    return outcome


# Generated texts ----------------------------------------------------------------------


def score_generation(
    case: CaseConfig,
    backend: Backend,
    rows: Sequence[GenerationRow],
    path: Path,
    cutoff: float,
    open_progress: ProgressOpener,
) -> Outcome:
    """Compare each prediction with its best reference, by cosine and by token matching.

    The best reference is chosen separately for the cosine and for the token-matching F1,
    as BERTScore does for several references.
    """
    scored = [row for row in rows if row.references]
    if not scored:
        raise DataError(
            path,
            "no selected row has a reference text",
            hint="Score a labelled split's predictions, or name the references field under "
            "`fields: {reference: ...}`",
        )
    roles = case.options["roles"]
    pairs = [(row.prediction, reference) for row in scored for reference in row.references]
    requests = [(roles[0], left) for left, _ in pairs] + [(roles[1], right) for _, right in pairs]
    vectors = embed_texts(case, backend, requests, open_progress)
    cosines = pair_cosines(vectors, pairs, roles)

    texts = list(dict.fromkeys(text for pair in pairs for text in pair))
    progress = open_progress(case, len(texts))
    try:
        token_vectors = backend.embed_tokens(texts, progress)
    finally:
        finish_progress(progress)
    if len(token_vectors) != len(texts):
        raise BackendError(
            f"case {case.id}: model '{case.model}' returned token embeddings for "
            f"{len(token_vectors)} of {len(texts)} texts"
        )
    tokens_of = dict(zip(texts, token_vectors))

    outcome = Outcome(metrics={}, records=[], scored=len(scored), skipped=len(rows) - len(scored))
    best_cosines, matches = [], []
    position = 0
    for row in scored:
        row_cosines = cosines[position : position + len(row.references)]
        position += len(row.references)
        row_matches = [
            greedy_match(tokens_of[row.prediction], tokens_of[reference])
            for reference in row.references
        ]
        best_reference = int(np.argmax(row_cosines))
        best_match = max(row_matches, key=lambda match: match.f1)
        best_cosines.append(float(row_cosines[best_reference]))
        matches.append(best_match)
        outcome.records.append(
            {
                "index": row.index,
                "line": row.line,
                "id": row.id,
                "cosine": _round(row_cosines[best_reference]),
                "best_reference": best_reference,
                "bertscore_precision": _round(best_match.precision),
                "bertscore_recall": _round(best_match.recall),
                "bertscore_f1": _round(best_match.f1),
            }
        )

    columns = {
        "cosine": best_cosines,
        "above_cutoff": [value >= cutoff for value in best_cosines],
        "bertscore_precision": [match.precision for match in matches],
        "bertscore_recall": [match.recall for match in matches],
        "bertscore_f1": [match.f1 for match in matches],
    }
    outcome.per_example = per_example_data(
        [row.index if row.id is None else row.id for row in scored],
        columns,
        {
            "mean_cosine": {"statistic": "mean", "columns": ["cosine"]},
            **{
                name: {"statistic": "mean", "columns": [name]}
                for name in columns
                if name != "cosine"
            },
        },
    )
    outcome.metrics = {
        "mean_cosine": float(np.mean(best_cosines)),
        "above_cutoff": float(np.mean([value >= cutoff for value in best_cosines])),
        "bertscore_precision": float(np.mean([match.precision for match in matches])),
        "bertscore_recall": float(np.mean([match.recall for match in matches])),
        "bertscore_f1": float(np.mean([match.f1 for match in matches])),
    }
    return outcome
