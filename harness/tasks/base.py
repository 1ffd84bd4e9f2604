"""Task declarations: splits, labels, fields and submission formats, with no model logic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

CLUE = "clue"
FEWCLUE = "fewclue"


class FieldProblem(ValueError):
    """Raised by a task's `render` when a field's value is inconsistent; the loader adds
    the file and line."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Label:
    """One class: the official label string, its English name and its Chinese verbalizer."""

    id: str
    name: str
    verbalizer: str


@dataclass(frozen=True)
class Split:
    """One file of a task.

    `labelled` is False for test files whose labels are hidden; only those get a
    `submission` file name, and only those may not carry thresholds.
    """

    name: str
    filename: str
    labelled: bool = True
    submission: str | None = None


@dataclass(frozen=True)
class Field:
    """An input field of a record: its JSON key and the JSON type it must have."""

    key: str
    kind: type = str
    required: bool = True


@dataclass(frozen=True)
class Example:
    """One scorable row: prompt variables, the gold label and the id for submissions.

    `gold` is None for rows without a usable label: hidden test labels, or the "-" that
    NLI files use when annotators had no majority.
    """

    index: int
    line: int
    id: Any
    fields: Mapping[str, str]
    gold: str | None


PairText = tuple[str, str | None]


@dataclass(frozen=True)
class ClassificationTask:
    """A CLUE or FewCLUE classification task, scored by accuracy.

    `render` turns a record's fields into the variables of `prompt`; `classifier_text`
    turns those variables into the (text, text_pair) an encoder reads.
    """

    name: str
    benchmark: str
    directory: str
    description: str
    fields: tuple[Field, ...]
    labels: tuple[Label, ...]
    splits: tuple[Split, ...]
    prompt: str
    classifier_text: Callable[[Mapping[str, str]], PairText]
    render: Callable[[Mapping[str, Any]], dict[str, str]] | None = None
    render_variables: tuple[str, ...] = ()
    fewshot_split: str = "train"
    label_field: str = "label"
    id_field: str = "id"
    # NLI files mark pairs without an annotator majority with "-": such rows are skipped in
    # scoring and counted in the report, as every official loader does.
    no_gold_marker: str | None = None
    main_metric: str = "accuracy"
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    boards: tuple[str, ...] = field(default_factory=tuple)

    family = "classification"

    @property
    def label_ids(self) -> list[str]:
        return [label.id for label in self.labels]

    def split(self, name: str) -> Split:
        for split in self.splits:
            if split.name == name:
                return split
        known = ", ".join(split.name for split in self.splits)
        raise KeyError(f"task {self.name} has no split '{name}' (known: {known})")

    def label(self, label_id: str) -> Label:
        for label in self.labels:
            if label.id == label_id:
                return label
        raise KeyError(label_id)

    def prompt_variables_names(self) -> tuple[str, ...]:
        """Return the names a prompt template may use."""
        if self.render is not None:
            return self.render_variables
        return tuple(spec.key for spec in self.fields)

    def prompt_variables(self, data: Mapping[str, Any]) -> dict[str, str]:
        """Return the template variables of a validated record."""
        if self.render is not None:
            return self.render(data)
        return {spec.key: data.get(spec.key, "") for spec in self.fields}


def pair(first: str, second: str | None = None) -> Callable[[Mapping[str, str]], PairText]:
    """Build a classifier_text function that reads one field or a sentence pair."""

    def classifier_text(variables: Mapping[str, str]) -> PairText:
        return variables[first], (variables[second] if second else None)

    return classifier_text
