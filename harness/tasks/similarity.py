"""Similarity checks of an embedding model: declarations and the files they read.

Four tasks of family "similarity", none with splits (their data comes from the case):

- `similarity-pairs`: pair asserts. A bound item `{text1, text2, min, max}` requires the
  cosine of two texts to be at least `min` and at most `max` (either may be left out). An
  ordering item `{closer: [a, b], than: c, margin}` requires cos(a, b) to exceed both
  cos(a, c) and cos(b, c) by more than `margin` (default 0).
- `similarity-sts`: Spearman and Pearson correlation of cosines with gold scores.
- `similarity-pair-classification`: average precision, and accuracy and F1 at their best
  cosine thresholds, on pairs labelled positive or negative.
- `similarity-generation`: generated texts against reference texts, by sentence-embedding
  cosine and by greedy matching of token embeddings.

Pair data files are JSON lines in the AFQMC shape (`sentence1`, `sentence2`, `label`);
generation files have a `prediction` and a `references` list or a `reference` string, as
the CMRC2018 predictions files of this harness do. Every problem names the file, the line
and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data.jsonl import read_jsonl, sha256_file
from harness.errors import DataError
from harness.tasks.base import FieldProblem, Label, Split

BOUND_KEYS = ("id", "text1", "text2", "min", "max")
CLOSER_KEYS = ("id", "closer", "than", "margin")


@dataclass(frozen=True)
class SimilarityTask:
    """A kind of similarity check; its data (inline pairs, a file or a CLUE task file) comes
    from the case.

    `kind` selects the scoring in harness.evaluators.similarity. Every metric lies in
    [-1, 1], so thresholds are written on a 0-1 scale. The task has no splits, labels or
    prompt; those attributes exist because every task declaration has them.
    """

    name: str
    kind: str
    description: str
    main_metric: str
    metrics: tuple[str, ...]
    benchmark: str = "similarity"
    directory: str = ""
    splits: tuple[Split, ...] = ()
    labels: tuple[Label, ...] = ()
    prompt: str = ""
    metric_scales: dict[str, float] = field(default_factory=dict)

    family = "similarity"

    def split(self, name: str) -> Split:
        raise KeyError(f"task {self.name} has no splits; its case names the data")


TASKS = (
    SimilarityTask(
        name="similarity-pairs",
        kind="pairs",
        description="pair asserts: cosine bounds and orderings of given texts",
        main_metric="checks_passed",
        metrics=("checks_passed",),
    ),
    SimilarityTask(
        name="similarity-sts",
        kind="sts",
        description="Spearman and Pearson correlation of cosine with gold similarity scores",
        main_metric="spearman",
        metrics=("spearman", "pearson"),
    ),
    SimilarityTask(
        name="similarity-pair-classification",
        kind="pair_classification",
        description="average precision and best-threshold accuracy and F1 of cosine",
        main_metric="average_precision",
        metrics=("average_precision", "max_accuracy", "max_f1"),
    ),
    SimilarityTask(
        name="similarity-generation",
        kind="generation",
        description="generated texts against references: embedding cosine and token matching",
        main_metric="mean_cosine",
        metrics=(
            "mean_cosine",
            "above_cutoff",
            "bertscore_precision",
            "bertscore_recall",
            "bertscore_f1",
        ),
    ),
)


# Pair asserts -------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundCheck:
    """The cosine of `text1` and `text2` must lie in [minimum, maximum]; None is no bound."""

    name: str
    text1: str
    text2: str
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True)
class CloserCheck:
    """cos(closer[0], closer[1]) must exceed cos(closer[i], than) for both i by > margin."""

    name: str
    closer: tuple[str, str]
    than: str
    margin: float


PairCheck = BoundCheck | CloserCheck


def _text(item: dict, key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise FieldProblem(key, f"expected a non-empty string, found {value!r}")
    return value


def _cosine_bound(item: dict, key: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1 <= value <= 1:
        raise FieldProblem(key, f"expected a cosine in [-1, 1], found {value!r}")
    return float(value)


def parse_pair_check(item: Any, position: int) -> PairCheck:
    """Validate one pair assert; `position` (0-based) names it when it has no `id`.

    Raises FieldProblem naming the offending key, so the caller can add the spec key path
    or the file and line.
    """
    if not isinstance(item, dict):
        raise FieldProblem(
            "", f"expected a mapping such as {{text1, text2, min}}, found {item!r}"[:120]
        )
    kind = "closer" if "closer" in item else "pair"
    allowed = CLOSER_KEYS if kind == "closer" else BOUND_KEYS
    for key in item:
        if key not in allowed:
            raise FieldProblem(str(key), f"unknown key; allowed: {', '.join(allowed)}")

    name = item.get("id", f"{kind}-{position + 1}")
    if not isinstance(name, str) or not name:
        raise FieldProblem("id", f"expected a non-empty string, found {name!r}")

    if kind == "closer":
        closer = item["closer"]
        if not isinstance(closer, list) or len(closer) != 2:
            raise FieldProblem("closer", f"expected a list of two texts, found {closer!r}")
        for text in closer:
            if not isinstance(text, str) or not text:
                raise FieldProblem("closer", f"expected a list of two texts, found {closer!r}")
        margin = item.get("margin", 0.0)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 2:
            raise FieldProblem("margin", f"expected a number in [0, 2), found {margin!r}")
        return CloserCheck(name, (closer[0], closer[1]), _text(item, "than"), float(margin))

    minimum = _cosine_bound(item, "min")
    maximum = _cosine_bound(item, "max")
    if minimum is None and maximum is None:
        raise FieldProblem("", "a pair needs 'min', 'max' or both")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise FieldProblem("min", f"min {minimum} is above max {maximum}")
    return BoundCheck(name, _text(item, "text1"), _text(item, "text2"), minimum, maximum)


def load_pair_checks(path: Path) -> list[PairCheck]:
    """Read pair asserts from a JSON-lines file, one assert per line."""
    checks = []
    for position, record in enumerate(read_jsonl(path)):
        try:
            checks.append(parse_pair_check(record.data, position))
        except FieldProblem as problem:
            raise DataError(
                path, problem.problem, line=record.line, field=problem.field or None
            ) from None
    return checks


# Pair and generation data -----------------------------------------------------------


@dataclass(frozen=True)
class PairRow:
    """One sentence pair; `label` is the label field's JSON value (None when absent)."""

    index: int
    line: int
    text1: str
    text2: str
    label: Any


@dataclass(frozen=True)
class GenerationRow:
    """One generated text with its references; `references` is empty when there are none."""

    index: int
    line: int
    id: Any
    prediction: str
    references: tuple[str, ...]


@dataclass(frozen=True)
class LoadedRows:
    """The rows of one data file in file order, with the file's identity."""

    path: Path
    sha256: str
    rows: list


def _field_text(record_data: dict, key: str, path: Path, line: int) -> str:
    if key not in record_data:
        raise DataError(
            path,
            "missing field",
            line=line,
            field=key,
            hint="Name the file's fields under the case's `fields:`",
        )
    value = record_data[key]
    if not isinstance(value, str):
        raise DataError(path, f"expected a string, found {value!r}"[:120], line=line, field=key)
    return value


def load_pair_rows(path: Path, text1: str, text2: str, label: str) -> LoadedRows:
    """Read sentence pairs from JSON lines; the field names come from the case."""
    rows = []
    for index, record in enumerate(read_jsonl(path)):
        rows.append(
            PairRow(
                index=index,
                line=record.line,
                text1=_field_text(record.data, text1, path, record.line),
                text2=_field_text(record.data, text2, path, record.line),
                label=record.data.get(label),
            )
        )
    return LoadedRows(path, sha256_file(path), rows)


def gold_score(row: PairRow, path: Path, field_name: str) -> float:
    """Return a pair's gold similarity score: a JSON number or a numeric string such as "1"."""
    value = row.label
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise DataError(
            path,
            f"expected a finite gold score, found {value!r}"[:120],
            line=row.line,
            field=field_name,
            hint="STS data needs a number per pair; for labels such as 'entailment' use "
            "task similarity-pair-classification",
        )
    return number


def label_text(value: Any) -> str | None:
    """Return a class label as a string ("1" for 1); None for a missing or non-scalar value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    return None


def _references(value: Any, path: Path, line: int, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise DataError(
        path,
        f"expected a string or a list of strings, found {value!r}"[:120],
        line=line,
        field=key,
    )


def load_generation_rows(path: Path, prediction: str, reference: str | None) -> LoadedRows:
    """Read generated texts and their references from JSON lines.

    With `reference` None, each record's `references` list is read when present, else its
    `reference` field. A record whose references are null or empty has no gold (the test
    split of a predictions file) and is kept with no references.
    """
    rows = []
    for index, record in enumerate(read_jsonl(path)):
        if reference is not None:
            key = reference
        else:
            key = "references" if "references" in record.data else "reference"
        if key not in record.data:
            raise DataError(
                path,
                "missing field",
                line=record.line,
                field=key,
                hint="Name the references field under the case's `fields: {reference: ...}`",
            )
        rows.append(
            GenerationRow(
                index=index,
                line=record.line,
                id=record.data.get("id"),
                prediction=_field_text(record.data, prediction, path, record.line),
                references=_references(record.data[key], path, record.line, key),
            )
        )
    return LoadedRows(path, sha256_file(path), rows)
