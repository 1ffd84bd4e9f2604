"""CMRC2018 span-extraction reading comprehension (Simplified Chinese), in SQuAD layout.

A file is one JSON document `{"version", "data": [article, ...]}`. An article contains
`paragraphs`, a paragraph contains a `context` and its questions `qas`, and a question is
`{"id", "question", "answers": [{"text", "answer_start"}, ...]}`. Dev and trial give
several reference answers per question, some of them repeated, and every reference counts
for EM and F1. In the real dev file some references do not occur in the passage and carry
`answer_start` -1, so offsets are neither checked nor used. The CLUE test file has
placeholder answers, which the loader ignores.

Every problem names the file and the JSON path of the offending value, such as
`data[3].paragraphs[0].qas[2].answers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.jsonl import read_json, sha256_file
from harness.errors import DataError
from harness.tasks.base import CLUE, Label, Split

CMRC_PROMPT = "阅读文章，用文章中的原文回答问题。\n文章：{context}\n问题：{question}\n答案："
CMRC_VARIABLES = ("context", "question")


@dataclass(frozen=True)
class SpanQuestion:
    """One question with its passage. `references` is empty in unlabelled splits.

    `index` is the position in file order and `location` the question's JSON path.
    """

    index: int
    location: str
    id: str
    context: str
    question: str
    references: tuple[str, ...]

    @property
    def fields(self) -> dict[str, str]:
        """Return the prompt variables."""
        return {"context": self.context, "question": self.question}


@dataclass(frozen=True)
class SpanExtractionTask:
    """A span-extraction task such as CMRC2018, scored by EM and F1 on a 0-100 scale.

    Answers are text spans, so the task has no label set (`labels` is empty).
    """

    name: str
    benchmark: str
    directory: str
    description: str
    splits: tuple[Split, ...]
    prompt: str = CMRC_PROMPT
    fewshot_split: str = "train"
    main_metric: str = "em"
    metrics: tuple[str, ...] = ("em", "f1")
    labels: tuple[Label, ...] = ()

    family = "span_extraction"
    # The official scorer reports percentages, so thresholds are written on 0-100 too.
    metric_scales = {"em": 100.0, "f1": 100.0}

    def split(self, name: str) -> Split:
        for split in self.splits:
            if split.name == name:
                return split
        known = ", ".join(split.name for split in self.splits)
        raise KeyError(f"task {self.name} has no split '{name}' (known: {known})")

    def prompt_variables_names(self) -> tuple[str, ...]:
        return CMRC_VARIABLES


@dataclass(frozen=True)
class LoadedSpans:
    """The questions of one span-extraction file in file order, with the file's identity."""

    task: SpanExtractionTask
    split: Split
    path: Path
    sha256: str
    questions: list[SpanQuestion]

    def gold(
        self, questions: list[SpanQuestion] | None = None
    ) -> list[tuple[str, tuple[str, ...]]]:
        """Return (id, references) pairs, the gold input of `harness.metrics.cmrc`."""
        chosen = self.questions if questions is None else questions
        return [(question.id, question.references) for question in chosen]


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _items(document: Any, key: str, where: str, path: Path, child: str) -> list:
    """Return the list under `key` of a JSON object, or raise naming the JSON path."""
    field = f"{where}.{key}" if where else key
    if not isinstance(document, dict):
        raise DataError(
            path,
            f"expected an object with a '{key}' list, found {_describe(document)}",
            field=where or "(top level)",
            hint="CMRC2018 files use the SQuAD layout: data > paragraphs > qas > answers",
        )
    if key not in document:
        raise DataError(
            path,
            "missing field",
            field=field,
            hint=f"Each {child} needs a '{key}' list (SQuAD layout)",
        )
    items = document[key]
    if not isinstance(items, list):
        raise DataError(
            path,
            f"expected a list, found {_describe(items)}",
            field=field,
            hint="CMRC2018 files use the SQuAD layout: data > paragraphs > qas > answers",
        )
    return items


def _text(document: dict, key: str, where: str, path: Path, *, empty: bool = False) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not (empty or value.strip()):
        kind = "a string" if empty else "a non-empty string"
        raise DataError(path, f"expected {kind}, found {_describe(value)}", field=f"{where}.{key}")
    return value


def _question_id(raw: dict, where: str, path: Path) -> str:
    """Return the id as the official scorer compares it: as a string, stripped."""
    value = raw.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise DataError(
            path,
            f"expected a non-empty string id, found {_describe(value)}",
            field=f"{where}.id",
            hint="Submissions map question ids to answers, so every question needs one",
        )
    return str(value).strip()


def _references(raw: dict, where: str, path: Path) -> tuple[str, ...]:
    answers = _items(raw, "answers", where, path, "question")
    field = f"{where}.answers"
    if not answers:
        raise DataError(
            path,
            "a labelled question needs at least one reference answer",
            field=field,
            hint="Fix the file, or score it as split 'test' if its answers are hidden",
        )

    references = []
    for number, answer in enumerate(answers):
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise DataError(
                path,
                f"expected an object with a string 'text', found {_describe(answer)}",
                field=f"{field}[{number}]",
            )
        references.append(answer["text"])

    placeholders = [
        answer.get("answer_start") == -1 and not answer["text"].strip() for answer in answers
    ]
    if all(placeholders):
        raise DataError(
            path,
            "every answer is an empty placeholder (answer_start -1)",
            field=field,
            hint="This looks like the unlabelled test file. Score it as split 'test'",
        )
    return tuple(references)


def load_squad(task: SpanExtractionTask, split_name: str, path: Path) -> LoadedSpans:
    """Read and validate a SQuAD-layout file, keeping the questions in file order.

    Question ids must be unique, because predictions and submissions are keyed by id.
    """
    split = task.split(split_name)
    document = read_json(path)

    questions: list[SpanQuestion] = []
    first_seen: dict[str, str] = {}
    for article_number, article in enumerate(_items(document, "data", "", path, "file")):
        article_where = f"data[{article_number}]"
        paragraphs = _items(article, "paragraphs", article_where, path, "article")
        for paragraph_number, paragraph in enumerate(paragraphs):
            paragraph_where = f"{article_where}.paragraphs[{paragraph_number}]"
            qas = _items(paragraph, "qas", paragraph_where, path, "paragraph")
            context = _text(paragraph, "context", paragraph_where, path)

            for question_number, raw in enumerate(qas):
                where = f"{paragraph_where}.qas[{question_number}]"
                if not isinstance(raw, dict):
                    raise DataError(
                        path, f"expected a question object, found {_describe(raw)}", field=where
                    )
                question_id = _question_id(raw, where, path)
                if question_id in first_seen:
                    raise DataError(
                        path,
                        f"duplicate question id {question_id!r} (first at {first_seen[question_id]})",
                        field=f"{where}.id",
                        hint="Question ids must be unique. Restore the official file",
                    )
                first_seen[question_id] = where

                questions.append(
                    SpanQuestion(
                        index=len(questions),
                        location=where,
                        id=question_id,
                        context=context,
                        # The official trial file contains a question whose text is empty.
                        question=_text(raw, "question", where, path, empty=True),
                        references=_references(raw, where, path) if split.labelled else (),
                    )
                )

    if not questions:
        raise DataError(
            path, "the file contains no questions", hint="Check that it is the right file"
        )
    return LoadedSpans(
        task=task, split=split, path=path, sha256=sha256_file(path), questions=questions
    )


CMRC2018 = SpanExtractionTask(
    name="cmrc2018",
    benchmark=CLUE,
    directory="cmrc2018",
    description="Span-extraction reading comprehension over Chinese Wikipedia passages",
    splits=(
        Split("train", "train.json"),
        Split("dev", "dev.json"),
        Split("trial", "trial.json"),
        Split("test", "test.json", labelled=False, submission="cmrc2018_predict.json"),
    ),
)

TASKS = (CMRC2018,)
