"""ChID idiom cloze, in the CLUE layout and in the FewCLUE layout.

CLUE files are JSON lines `{"content": [passage, ...], "candidates": [...]}`. A passage marks
each blank with a tag `#idiomNNNNNN#` that is unique across the corpus. All blanks of a line
share its candidate list. The gold answers are in a separate file `{split}_answer.json`,
which maps each tag to a 0-based index into the candidates. The CLUE submission is one JSON
object from tag to index.

FewCLUE files hold one blank per record: `{"id", "candidates", "content": text with
"#idiom#", "answer": index}`. The FewCLUE submission is JSON lines `{"id", "answer"}`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.jsonl import Record, read_json, read_jsonl
from harness.errors import DataError
from harness.tasks.base import CLUE, FEWCLUE, Label, Split

logger = logging.getLogger(__name__)

# Matches the CLUE tags and the FewCLUE "#idiom#", so that other blanks of a passage can be
# hidden whatever the layout.
ANY_TAG = re.compile(r"#idiom\d*#")
CLUE_TAG = re.compile(r"#idiom\d{6}#")
FEWCLUE_TAG = "#idiom#"
CLUE_LAYOUT = "clue"
FEWCLUE_LAYOUT = "fewclue"


@dataclass(frozen=True)
class ChidSplit(Split):
    """A ChID file; `answers` names the CLUE answer file of a labelled split."""

    answers: str | None = None


@dataclass(frozen=True)
class Blank:
    """One blank: its tag, the passage it sits in, the tag's offset there, and the gold index."""

    tag: str
    passage: int
    start: int
    gold: int | None


@dataclass(frozen=True)
class ChidRecord:
    """One line of a ChID file: passages, the shared candidates and the blanks in text order."""

    index: int
    line: int
    id: Any
    passages: tuple[str, ...]
    candidates: tuple[str, ...]
    blanks: tuple[Blank, ...]


@dataclass(frozen=True)
class ChidTask:
    """A ChID declaration. The answer of a blank is an index into its line's candidates, so
    the task has no label set of its own (`labels` is empty)."""

    name: str
    benchmark: str
    directory: str
    description: str
    layout: str
    splits: tuple[ChidSplit, ...]
    fewshot_split: str = "train"
    main_metric: str = "accuracy"
    metrics: tuple[str, ...] = ("accuracy",)
    labels: tuple[Label, ...] = ()
    prompt: str = ""

    family = "cloze"

    def split(self, name: str) -> ChidSplit:
        for split in self.splits:
            if split.name == name:
                return split
        known = ", ".join(split.name for split in self.splits)
        raise KeyError(f"task {self.name} has no split '{name}' (known: {known})")


@dataclass(frozen=True)
class LoadedChid:
    """The records of one ChID split in file order, with the files they came from."""

    task: ChidTask
    split: ChidSplit
    path: Path
    answers_path: Path | None
    records: list[ChidRecord]

    @property
    def blank_count(self) -> int:
        return sum(len(record.blanks) for record in self.records)


def _strings(value: Any, path: Path, line: int, field: str, minimum: int) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or len(value) < minimum
        or not all(isinstance(item, str) for item in value)
    ):
        raise DataError(
            path,
            f"expected a list of at least {minimum} strings, found {str(value)[:60]}",
            line=line,
            field=field,
        )
    return tuple(value)


def _read_id(record: Record, path: Path, position: int) -> Any:
    value = record.data.get("id", position)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(
            path, f"expected an integer or string id, found {value!r}", line=record.line, field="id"
        )
    return value


def _gold_index(value: Any, candidates: tuple[str, ...], where: str) -> int:
    """Check an answer index against the candidates; raise ValueError naming the problem."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer index, found {value!r}")
    if not 0 <= value < len(candidates):
        raise ValueError(
            f"{where}: index {value} is outside the {len(candidates)} candidates (0-based)"
        )
    return value


def _clue_record(
    record: Record,
    path: Path,
    position: int,
    answers: dict[str, Any] | None,
    answers_path: Path | None,
) -> ChidRecord:
    passages = _strings(record.data.get("content"), path, record.line, "content", 1)
    candidates = _strings(record.data.get("candidates"), path, record.line, "candidates", 2)

    blanks = []
    for number, passage in enumerate(passages):
        for match in CLUE_TAG.finditer(passage):
            tag = match.group()
            gold = None
            if answers is not None:
                if tag not in answers:
                    raise DataError(
                        path,
                        f"blank {tag} has no answer in {answers_path}",
                        line=record.line,
                        field=f"content[{number}]",
                        hint="Use the answer file that belongs to this data file",
                    )
                try:
                    gold = _gold_index(answers[tag], candidates, f"answer of {tag}")
                except ValueError as error:
                    raise DataError(
                        answers_path,
                        str(error),
                        field=tag,
                        hint=f"The line is {path}:{record.line}",
                    ) from None
            blanks.append(Blank(tag=tag, passage=number, start=match.start(), gold=gold))
    if not blanks:
        raise DataError(
            path,
            "no blank: expected at least one #idiomNNNNNN# tag (6 digits)",
            line=record.line,
            field="content",
        )
    return ChidRecord(
        index=position,
        line=record.line,
        id=_read_id(record, path, position),
        passages=passages,
        candidates=candidates,
        blanks=tuple(blanks),
    )


def _fewclue_record(record: Record, path: Path, position: int, labelled: bool) -> ChidRecord:
    content = record.data.get("content")
    if not isinstance(content, str):
        raise DataError(
            path, f"expected a string, found {content!r}"[:80], line=record.line, field="content"
        )
    count = content.count(FEWCLUE_TAG)
    if count != 1:
        raise DataError(
            path,
            f"expected exactly one {FEWCLUE_TAG} blank, found {count}",
            line=record.line,
            field="content",
        )
    candidates = _strings(record.data.get("candidates"), path, record.line, "candidates", 2)

    gold = None
    if labelled:
        if "answer" not in record.data:
            raise DataError(path, "missing field", line=record.line, field="answer")
        try:
            gold = _gold_index(record.data["answer"], candidates, "answer")
        except ValueError as error:
            raise DataError(path, str(error), line=record.line, field="answer") from None
    blank = Blank(tag=FEWCLUE_TAG, passage=0, start=content.index(FEWCLUE_TAG), gold=gold)
    return ChidRecord(
        index=position,
        line=record.line,
        id=_read_id(record, path, position),
        passages=(content,),
        candidates=candidates,
        blanks=(blank,),
    )


def _read_answers(path: Path) -> dict[str, Any]:
    answers = read_json(path)
    if not isinstance(answers, dict):
        raise DataError(
            path,
            f"expected one JSON object from tag to index, found {type(answers).__name__}",
        )
    return answers


def load_chid(task: ChidTask, split_name: str, path: Path, answers_path: Path | None) -> LoadedChid:
    """Read and validate a ChID split; CLUE labelled splits also need their answer file.

    Tags must be unique within the file, because the CLUE submission is keyed by tag.
    """
    split = task.split(split_name)
    answers = None
    if task.layout == CLUE_LAYOUT and split.labelled:
        if answers_path is None:
            raise DataError(path, f"split '{split_name}' needs its answer file {split.answers}")
        answers = _read_answers(answers_path)

    rows = read_jsonl(path)
    if not rows:
        raise DataError(
            path, "the file contains no records", hint="Check that it is the right file"
        )

    records = []
    first_line: dict[str, int] = {}
    for position, row in enumerate(rows):
        if task.layout == CLUE_LAYOUT:
            record = _clue_record(row, path, position, answers, answers_path)
        else:
            record = _fewclue_record(row, path, position, split.labelled)
        if task.layout == CLUE_LAYOUT:
            for blank in record.blanks:
                if blank.tag in first_line:
                    raise DataError(
                        path,
                        f"duplicate blank {blank.tag} (first on line {first_line[blank.tag]})",
                        line=row.line,
                        field="content",
                        hint="Each #idiomNNNNNN# tag must occur once in a file",
                    )
                first_line[blank.tag] = row.line
        records.append(record)

    if answers is not None:
        unused = [tag for tag in answers if tag not in first_line]
        if unused:
            logger.warning(
                "%s: %d answers have no blank in %s (first: %s)",
                answers_path,
                len(unused),
                path,
                unused[0],
            )
    return LoadedChid(task=task, split=split, path=path, answers_path=answers_path, records=records)


def blank_window(
    record: ChidRecord,
    blank: Blank,
    context_chars: int | None,
    continuation_chars: int,
    placeholder: str,
) -> tuple[str, str]:
    """Return the text before and after a blank, with the passage's other blanks hidden.

    `context_chars` keeps only the last characters before the blank (None keeps all of
    them); `continuation_chars` keeps the first characters after it. Other blanks of the
    same passage become `placeholder`, so no tag text reaches the model.
    """
    passage = record.passages[blank.passage]
    before = ANY_TAG.sub(placeholder, passage[: blank.start])
    after = ANY_TAG.sub(placeholder, passage[blank.start + len(blank.tag) :])
    if context_chars is not None:
        before = before[-context_chars:] if context_chars else ""
    return before, after[:continuation_chars]


def _clue_splits() -> tuple[ChidSplit, ...]:
    return (
        ChidSplit("train", "train.json", answers="train_answer.json"),
        ChidSplit("dev", "dev.json", answers="dev_answer.json"),
        ChidSplit("test", "test1.1.json", labelled=False, submission="chid11_predict.json"),
        ChidSplit("test1.0", "test1.0.json", labelled=False, submission="chid10_predict.json"),
    )


def _fewclue_splits() -> tuple[ChidSplit, ...]:
    folds = [ChidSplit(f"train_{fold}", f"train_{fold}.json") for fold in range(5)]
    folds += [ChidSplit(f"dev_{fold}", f"dev_{fold}.json") for fold in range(5)]
    return (
        *folds,
        ChidSplit("train_few_all", "train_few_all.json"),
        ChidSplit("dev_few_all", "dev_few_all.json"),
        ChidSplit("test_public", "test_public.json"),
        ChidSplit("test", "test.json", labelled=False, submission="chidf_predict.json"),
    )


CHID = ChidTask(
    name="chid",
    benchmark=CLUE,
    directory="chid",
    description="Chinese idiom cloze: pick the idiom of each blank from the line's candidates",
    layout=CLUE_LAYOUT,
    splits=_clue_splits(),
)

FEWCLUE_CHID = ChidTask(
    name="fewclue-chid",
    benchmark=FEWCLUE,
    directory="fewclue/chid",
    description="Chinese idiom cloze, one blank and 7 candidates per record",
    layout=FEWCLUE_LAYOUT,
    splits=_fewclue_splits(),
    fewshot_split="train_few_all",
)

TASKS = (CHID, FEWCLUE_CHID)
