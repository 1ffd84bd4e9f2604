"""CLUENER2020 fine-grained named entity recognition, 10 entity types.

Train and dev lines are `{"text", "label": {type: {entity: [[start, end], ...]}}}` with
0-based, inclusive character offsets, so `text[start:end + 1]` is the entity. Test lines
are `{"id", "text"}`. The submission `cluener_predict.json` repeats the label structure per
test line, `{"id": ..., "label": {...}}`, with `{}` for a line without entities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.jsonl import Record, read_jsonl, sha256_file
from harness.errors import DataError
from harness.tasks.base import CLUE, FieldProblem, Label, Split

ENTITY_TYPES = (
    Label("address", "address", "地址"),
    Label("book", "book", "书名"),
    Label("company", "company", "公司"),
    Label("game", "game", "游戏"),
    Label("government", "government", "政府"),
    Label("movie", "movie", "电影"),
    Label("name", "name", "人名"),
    Label("organization", "organization", "组织机构"),
    Label("position", "position", "职位"),
    Label("scene", "scene", "景点"),
)
TYPE_NAMES = tuple(label.id for label in ENTITY_TYPES)

# Braces that the model should see are doubled, because the prompt is a str.format template.
NER_PROMPT = (
    "找出句子中的命名实体，按类型输出 JSON。类型："
    + "、".join(f"{label.verbalizer}({label.id})" for label in ENTITY_TYPES)
    + '。格式如 {{"name": ["张三"], "company": ["某某公司"]}}，没有实体时输出 {{}}。\n'
    "句子：{text}\n实体："
)
NER_VARIABLES = ("text",)

# type -> entity string -> its (start, end) offsets, end inclusive.
Entities = dict[str, dict[str, tuple[tuple[int, int], ...]]]


@dataclass(frozen=True)
class NerRecord:
    """One line: its text and, in labelled splits, the gold entities."""

    index: int
    line: int
    id: Any
    text: str
    gold: Entities | None

    @property
    def fields(self) -> dict[str, str]:
        return {"text": self.text}


@dataclass(frozen=True)
class NerTask:
    """The CLUENER2020 declaration, whose `labels` are the entity types with Chinese names."""

    name: str
    benchmark: str
    directory: str
    description: str
    splits: tuple[Split, ...]
    labels: tuple[Label, ...] = ENTITY_TYPES
    prompt: str = NER_PROMPT
    fewshot_split: str = "train"
    main_metric: str = "macro_f1"
    metrics: tuple[str, ...] = (
        "macro_f1",
        "span_micro_f1",
        *(f"f1_{name}" for name in TYPE_NAMES),
    )

    family = "ner"

    @property
    def label_ids(self) -> list[str]:
        return [label.id for label in self.labels]

    def split(self, name: str) -> Split:
        for split in self.splits:
            if split.name == name:
                return split
        known = ", ".join(split.name for split in self.splits)
        raise KeyError(f"task {self.name} has no split '{name}' (known: {known})")

    def prompt_variables_names(self) -> tuple[str, ...]:
        return NER_VARIABLES


@dataclass(frozen=True)
class LoadedNer:
    task: NerTask
    split: Split
    path: Path
    sha256: str
    records: list[NerRecord]


def _offsets(value: Any) -> tuple[int, int] | None:
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    ):
        return value[0], value[1]
    return None


def check_entities(text: str, label: Any, types: tuple[str, ...] = TYPE_NAMES) -> Entities:
    """Validate a CLUENER label object against its text and return it as tuples.

    Raises FieldProblem naming the field path, such as `label.name.张伟`.
    """
    if not isinstance(label, Mapping):
        raise FieldProblem("label", f"expected an object of entity types, found {label!r}"[:80])
    entities: Entities = {}
    for kind, by_entity in label.items():
        field = f"label.{kind}"
        if kind not in types:
            raise FieldProblem(field, f"unknown entity type {kind!r} (types: {', '.join(types)})")
        if not isinstance(by_entity, Mapping):
            raise FieldProblem(
                field, f"expected an object from entity to offsets, found {by_entity!r}"
            )
        entities[kind] = {}
        for entity, spans in by_entity.items():
            entity_field = f"{field}.{entity}"
            if not isinstance(spans, list) or not spans:
                raise FieldProblem(
                    entity_field, f"expected a list of [start, end], found {spans!r}"
                )
            pairs = []
            for span in spans:
                pair = _offsets(span)
                if pair is None:
                    raise FieldProblem(
                        entity_field, f"expected [start, end] integers, found {span!r}"
                    )
                start, end = pair
                if not 0 <= start <= end < len(text):
                    raise FieldProblem(
                        entity_field,
                        f"offsets [{start}, {end}] are outside the text of length {len(text)}",
                    )
                if text[start : end + 1] != entity:
                    raise FieldProblem(
                        entity_field,
                        f"text[{start}:{end + 1}] is {text[start : end + 1]!r}, not the entity "
                        f"{entity!r} (offsets are 0-based and the end is inclusive)",
                    )
                pairs.append(pair)
            entities[kind][entity] = tuple(pairs)
    return entities


def _record(record: Record, path: Path, position: int, labelled: bool) -> NerRecord:
    text = record.data.get("text")
    if not isinstance(text, str):
        raise DataError(
            path, f"expected a string, found {text!r}"[:80], line=record.line, field="text"
        )
    record_id = record.data.get("id", position)
    if isinstance(record_id, bool) or not isinstance(record_id, (int, str)):
        raise DataError(
            path,
            f"expected an integer or string id, found {record_id!r}",
            line=record.line,
            field="id",
        )

    gold = None
    if labelled:
        if "label" not in record.data:
            raise DataError(
                path,
                "missing field",
                line=record.line,
                field="label",
                hint="Labelled splits need entities; the unlabelled test file is split 'test'",
            )
        try:
            gold = check_entities(text, record.data["label"])
        except FieldProblem as problem:
            raise DataError(path, problem.problem, line=record.line, field=problem.field) from None
    return NerRecord(index=position, line=record.line, id=record_id, text=text, gold=gold)


def load_ner(task: NerTask, split_name: str, path: Path) -> LoadedNer:
    """Read and validate every line of a CLUENER file, keeping file order."""
    split = task.split(split_name)
    rows = read_jsonl(path)
    if not rows:
        raise DataError(
            path, "the file contains no records", hint="Check that it is the right file"
        )
    records = [_record(row, path, position, split.labelled) for position, row in enumerate(rows)]

    if not split.labelled:
        first_line: dict[tuple[str, Any], int] = {}
        for record in records:
            key = (type(record.id).__name__, record.id)
            if key in first_line:
                raise DataError(
                    path,
                    f"duplicate id {record.id!r} (first on line {first_line[key]})",
                    line=record.line,
                    field="id",
                    hint="Test ids must be unique; restore the official test file",
                )
            first_line[key] = record.line
    return LoadedNer(task=task, split=split, path=path, sha256=sha256_file(path), records=records)


CLUENER = NerTask(
    name="cluener",
    benchmark=CLUE,
    directory="cluener",
    description="CLUENER2020 fine-grained named entity recognition, 10 entity types",
    splits=(
        Split("train", "train.json"),
        Split("dev", "dev.json"),
        Split("test", "test.json", labelled=False, submission="cluener_predict.json"),
    ),
)

TASKS = (CLUENER,)
