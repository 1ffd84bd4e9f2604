"""Turning the records of a task file into validated examples.

Every problem in a record becomes one DataError that names the file, the line and the
field, and says what to do; nothing is skipped silently. Test rows are never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.jsonl import Record, read_jsonl, sha256_file
from harness.errors import DataError
from harness.tasks.base import ClassificationTask, Example, FieldProblem, Split

JSON_TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", int: "an integer"}


@dataclass(frozen=True)
class LoadedSplit:
    """The examples of one task file, in file order, with the file's identity."""

    task: ClassificationTask
    split: Split
    path: Path
    sha256: str
    examples: list[Example]

    @property
    def skipped(self) -> int:
        """Count labelled rows without a usable gold label."""
        if not self.split.labelled:
            return 0
        return sum(1 for example in self.examples if example.gold is None)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def normalize_label(task: ClassificationTask, value: Any) -> str | None:
    """Map a gold label written as int, bool or string onto the task's label ids.

    Returns None for the task's no-majority marker ("-" in NLI files). Raises ValueError
    with a message naming the allowed labels for anything else.
    """
    if task.no_gold_marker is not None and value == task.no_gold_marker:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError(f"expected a label string or integer, found {_describe(value)}")

    if text not in task.label_ids:
        allowed = ", ".join(task.label_ids[:20])
        more = f" and {len(task.label_ids) - 20} more" if len(task.label_ids) > 20 else ""
        raise ValueError(f"label {text!r} is not a {task.name} label (allowed: {allowed}{more})")
    return text


def _read_fields(task: ClassificationTask, record: Record, path: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in task.fields:
        if spec.key not in record.data or record.data[spec.key] is None:
            if spec.required:
                raise DataError(
                    path,
                    "missing field",
                    line=record.line,
                    field=spec.key,
                    hint=f"Every {task.name} record needs '{spec.key}'",
                )
            values[spec.key] = spec.kind()
            continue
        value = record.data[spec.key]
        if not isinstance(value, spec.kind) or isinstance(value, bool):
            raise DataError(
                path,
                f"expected {JSON_TYPE_NAMES[spec.kind]}, found {_describe(value)}",
                line=record.line,
                field=spec.key,
            )
        values[spec.key] = value
    return values


def _read_id(task: ClassificationTask, record: Record, path: Path, position: int) -> Any:
    if task.id_field not in record.data:
        return position
    value = record.data[task.id_field]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(
            path,
            f"expected an integer or string id, found {_describe(value)}",
            line=record.line,
            field=task.id_field,
        )
    return value


def build_example(
    task: ClassificationTask, split: Split, record: Record, path: Path, position: int
) -> Example:
    """Validate one record and turn it into an Example."""
    values = _read_fields(task, record, path)
    try:
        variables = task.prompt_variables(values)
    except FieldProblem as problem:
        raise DataError(path, problem.problem, line=record.line, field=problem.field) from None

    gold = None
    if split.labelled:
        if task.label_field not in record.data:
            raise DataError(
                path,
                "missing field",
                line=record.line,
                field=task.label_field,
                hint=f"Split '{split.name}' is labelled; unlabelled test files use split 'test'",
            )
        try:
            gold = normalize_label(task, record.data[task.label_field])
        except ValueError as error:
            raise DataError(path, str(error), line=record.line, field=task.label_field) from None

    return Example(
        index=position,
        line=record.line,
        id=_read_id(task, record, path, position),
        fields=variables,
        gold=gold,
    )


def load_split(task: ClassificationTask, split_name: str, path: Path) -> LoadedSplit:
    """Read and validate every record of a task file, keeping file order."""
    split = task.split(split_name)
    records = read_jsonl(path)
    if not records:
        raise DataError(path, "the file holds no records", hint="Check that it is the right file")

    examples = []
    first_line_of_id: dict[Any, int] = {}
    for position, record in enumerate(records):
        example = build_example(task, split, record, path, position)

        # Submissions are matched line by line, and a repeated id means the file is damaged.
        if not split.labelled:
            key = (type(example.id).__name__, example.id)
            if key in first_line_of_id:
                raise DataError(
                    path,
                    f"duplicate id {example.id!r} (first on line {first_line_of_id[key]})",
                    line=record.line,
                    field=task.id_field,
                    hint="Test ids must be unique; restore the official test file",
                )
            first_line_of_id[key] = record.line
        examples.append(example)

    return LoadedSplit(
        task=task, split=split, path=path, sha256=sha256_file(path), examples=examples
    )
