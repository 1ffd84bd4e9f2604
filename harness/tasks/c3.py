"""C3 multiple-choice reading comprehension: dialogues ("d") and mixed-genre texts ("m").

Each file is one JSON array of documents `[[context lines], [questions], "doc id"]`. A
question is `{"question", "choice": [2-4 options], "answer"}`, and its gold label is the
index of `answer` within `choice`. When an option is repeated, as in a few real questions,
the first index counts. Test files give each question an `id` and no answer.

Split names cover both distributions of the data. The C3 repository (nlpdata/c3) ships
`c3-{d,m}-{train,dev,test}.json`, with public answers for the test files; CLUE's
c3_public.zip ships `{d,m}-{train,dev}.json` plus the unlabelled `test1.1.json` (CLUE 1.1)
and `test1.0.json`. Here the files are expected as `d-dev.json` and so on (drop the `c3-`
prefix of the repository's names); `train` and `dev` read the d and m files together,
which is the figure CLUE reports.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.jsonl import files_sha256, read_text
from harness.errors import DataError
from harness.tasks.base import CLUE, Label, Split

C3_PROMPT = "{context}\n问题：{question}\n答案："
C3_VARIABLES = ("context", "question")
WHITESPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class C3Split(Split):
    """A C3 split; `parts` lists its files in reading order when there is more than one."""

    parts: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return self.parts or (self.filename,)


@dataclass(frozen=True)
class C3Question:
    """One question with its document's context; `line` is where the document starts."""

    index: int
    source: str
    line: int
    id: Any
    document: str
    context: tuple[str, ...]
    question: str
    choices: tuple[str, ...]
    gold: int | None

    @property
    def fields(self) -> dict[str, str]:
        """Return the prompt variables: the context lines joined by newlines, and the question."""
        return {"context": "\n".join(self.context), "question": self.question}


@dataclass(frozen=True)
class C3Task:
    """The C3 declaration. Answers are indices into each question's own options, so the
    task has no label set (`labels` is empty)."""

    name: str
    benchmark: str
    directory: str
    description: str
    splits: tuple[C3Split, ...]
    prompt: str = C3_PROMPT
    fewshot_split: str = "train"
    main_metric: str = "accuracy"
    metrics: tuple[str, ...] = ("accuracy",)
    labels: tuple[Label, ...] = ()

    family = "multiple_choice"

    def split(self, name: str) -> C3Split:
        for split in self.splits:
            if split.name == name:
                return split
        known = ", ".join(split.name for split in self.splits)
        raise KeyError(f"task {self.name} has no split '{name}' (known: {known})")

    def prompt_variables_names(self) -> tuple[str, ...]:
        return C3_VARIABLES


@dataclass(frozen=True)
class LoadedC3:
    """The questions of one C3 split in file order, with the files' identity."""

    task: C3Task
    split: C3Split
    paths: tuple[Path, ...]
    sha256: str
    questions: list[C3Question]
    documents: int

    @property
    def data_file(self) -> str:
        return " + ".join(str(path) for path in self.paths)


def read_json_array(path: Path) -> list[tuple[int, Any]]:
    """Parse a file that contains one JSON array; return each element with its starting line."""
    text = read_text(path)
    decoder = json.JSONDecoder()
    lines_before = 0
    counted_to = 0

    def line_at(position: int) -> int:
        nonlocal lines_before, counted_to
        lines_before += text.count("\n", counted_to, position)
        counted_to = position
        return lines_before + 1

    index = WHITESPACE.match(text, 0).end()
    if text[index : index + 1] != "[":
        raise DataError(
            path, "expected a JSON array of documents", line=line_at(index), hint="Is it a C3 file?"
        )
    index = WHITESPACE.match(text, index + 1).end()
    items: list[tuple[int, Any]] = []
    while text[index : index + 1] != "]":
        line = line_at(index)
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError as error:
            raise DataError(
                path, f"invalid JSON at column {error.colno}: {error.msg}", line=error.lineno
            ) from None
        items.append((line, value))
        index = WHITESPACE.match(text, end).end()
        separator = text[index : index + 1]
        if separator == ",":
            index = WHITESPACE.match(text, index + 1).end()
        elif separator != "]":
            raise DataError(path, "expected ',' or ']' after a document", line=line_at(index))
    if text[index + 1 :].strip():
        raise DataError(path, "extra data after the JSON array", line=line_at(index + 1))
    return items


def _fail(path: Path, line: int, field: str, problem: str) -> DataError:
    return DataError(path, problem, line=line, field=field)


def _question(
    raw: Any, where: str, path: Path, line: int, labelled: bool
) -> tuple[str, tuple[str, ...], int | None, Any]:
    """Validate one question object; return its text, options, gold index and raw id."""
    if not isinstance(raw, dict):
        raise _fail(path, line, where, f"expected a question object, found {raw!r}"[:80])
    question = raw.get("question")
    if not isinstance(question, str):
        raise _fail(path, line, f"{where}.question", f"expected a string, found {question!r}")
    choices = raw.get("choice")
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(choice, str) for choice in choices)
    ):
        raise _fail(
            path, line, f"{where}.choice", f"expected a list of 2 to 4 strings, found {choices!r}"
        )

    gold = None
    if labelled:
        if "answer" not in raw:
            raise DataError(
                path,
                "missing field",
                line=line,
                field=f"{where}.answer",
                hint="Labelled splits need answers; the unlabelled CLUE test files are "
                "splits 'test' and 'test1.0'",
            )
        answer = raw["answer"]
        if answer not in choices:
            raise _fail(
                path, line, f"{where}.answer", f"answer {answer!r} is not one of {choices!r}"
            )
        gold = choices.index(answer)

    question_id = raw.get("id")
    if question_id is not None and (
        isinstance(question_id, bool) or not isinstance(question_id, (int, str))
    ):
        raise _fail(
            path, line, f"{where}.id", f"expected an integer or string id, found {question_id!r}"
        )
    return question, tuple(choices), gold, question_id


def _documents(
    path: Path, labelled: bool, first_index: int, seen_ids: dict[Any, str]
) -> tuple[list[C3Question], int]:
    items = read_json_array(path)
    questions: list[C3Question] = []
    for number, (line, document) in enumerate(items):
        if (
            not isinstance(document, list)
            or len(document) != 3
            or not isinstance(document[1], list)
        ):
            raise _fail(
                path, line, f"[{number}]", "expected [context lines, questions, document id]"
            )
        context, raw_questions, document_id = document
        if not isinstance(context, list) or not all(isinstance(text, str) for text in context):
            raise _fail(path, line, f"[{number}][0]", "expected a list of context strings")
        if not isinstance(document_id, str):
            raise _fail(path, line, f"[{number}][2]", f"expected a string, found {document_id!r}")

        for position, raw in enumerate(raw_questions):
            where = f"[{number}][1][{position}]"
            text, choices, gold, raw_id = _question(raw, where, path, line, labelled)
            index = first_index + len(questions)
            question_id = index if raw_id is None else raw_id
            if not labelled:
                key = (type(question_id).__name__, question_id)
                if key in seen_ids:
                    raise DataError(
                        path,
                        f"duplicate question id {question_id!r} (first at {seen_ids[key]})",
                        line=line,
                        field=f"{where}.id",
                        hint="Test ids must be unique; restore the official test file",
                    )
                seen_ids[key] = f"{path.name} line {line}"
            questions.append(
                C3Question(
                    index=index,
                    source=path.name,
                    line=line,
                    id=question_id,
                    document=document_id,
                    context=tuple(context),
                    question=text,
                    choices=choices,
                    gold=gold,
                )
            )
    return questions, len(items)


def load_c3(task: C3Task, split_name: str, paths: tuple[Path, ...]) -> LoadedC3:
    """Read and validate the files of a C3 split; questions keep file order.

    A test question without an `id` gets its position in the split, so submissions still
    have one line per question.
    """
    split = task.split(split_name)
    questions: list[C3Question] = []
    documents = 0
    seen_ids: dict[Any, str] = {}
    for path in paths:
        found, count = _documents(path, split.labelled, len(questions), seen_ids)
        if not found:
            raise DataError(
                path, "the file contains no questions", hint="Check that it is the right file"
            )
        questions.extend(found)
        documents += count
    return LoadedC3(
        task=task,
        split=split,
        paths=paths,
        sha256=files_sha256(paths),
        questions=questions,
        documents=documents,
    )


C3 = C3Task(
    name="c3",
    benchmark=CLUE,
    directory="c3",
    description="Multiple-choice reading comprehension over dialogues and mixed-genre texts",
    splits=(
        C3Split("train", "d-train.json", parts=("d-train.json", "m-train.json")),
        C3Split("dev", "d-dev.json", parts=("d-dev.json", "m-dev.json")),
        C3Split("d-train", "d-train.json"),
        C3Split("m-train", "m-train.json"),
        C3Split("d-dev", "d-dev.json"),
        C3Split("m-dev", "m-dev.json"),
        C3Split("d-test", "d-test.json"),
        C3Split("m-test", "m-test.json"),
        C3Split("test", "test1.1.json", labelled=False, submission="c311_predict.json"),
        C3Split("test1.0", "test1.0.json", labelled=False, submission="c310_predict.json"),
    ),
)

TASKS = (C3,)
