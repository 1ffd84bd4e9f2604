"""Checks of one submission file against its test file, for harness.submission.

JSON-lines files are matched to the test rows by id, so that a missing, extra, repeated or
misplaced line is reported at its own line instead of shifting every later line. Each
answer is checked by the task family's rule (label string, option or candidate index,
entities with offsets, answer string). A problem repeated on many lines is listed for the
first MAX_PER_KIND lines and then counted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.tasks.base import FieldProblem

MAX_PER_KIND = 5


@dataclass(frozen=True)
class Problem:
    """One finding: the submission file, its 1-based line when known, and what is wrong."""

    file: str
    line: int | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"


class Findings:
    """The problems of one file, listed for at most MAX_PER_KIND lines of each kind."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[Problem] = []
        self.counts: Counter[str] = Counter()
        self.severities: dict[str, str] = {}

    def add(self, kind: str, line: int | None, message: str, severity: str = "error") -> None:
        self.counts[kind] += 1
        self.severities[kind] = severity
        if self.counts[kind] <= MAX_PER_KIND:
            self.problems.append(Problem(self.name, line, message, severity))

    def finish(self) -> list[Problem]:
        for kind, count in self.counts.items():
            if count > MAX_PER_KIND:
                message = f"{count - MAX_PER_KIND} more lines: {kind}"
                self.problems.append(Problem(self.name, None, message, self.severities[kind]))
        return self.problems


@dataclass(frozen=True)
class Expected:
    """One test row (or blank, or question) a submission must answer."""

    id: Any
    test_line: int | None
    check: Callable[[Any], str | None]


def _label_check(task: Any) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, (int, bool)) and str(value).lower() in task.label_ids:
            return f"label {value!r} is not a string; write {json.dumps(str(value).lower())}"
        if value not in task.label_ids:
            allowed = ", ".join(task.label_ids[:20])
            return f"label {value!r} is not one of the {task.name} labels (allowed: {allowed})"
        return None

    return check


def _index_check(count: int, what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer {what} index, found {value!r}"
        if not 0 <= value < count:
            return f"index {value} is outside the {count} {what}s (0-based)"
        return None

    return check


def _entity_check(text: str) -> Callable[[Any], str | None]:
    from harness.tasks.cluener import check_entities

    def check(value: Any) -> str | None:
        try:
            check_entities(text, value)
        except FieldProblem as problem:
            return f"{problem.field}: {problem.problem}"
        return None

    return check


def _string_check(value: Any) -> str | None:
    return None if isinstance(value, str) else f"expected an answer string, found {value!r}"


def expected_rows(task: Any, split: str, path: Path) -> tuple[list[Expected], str]:
    """Read a test file and return what each submission entry must hold, with the answer
    field of a JSON-lines file ("" for a JSON-object file)."""
    if task.family == "classification":
        from harness.tasks.examples import load_split

        examples = load_split(task, split, path).examples
        check = _label_check(task)
        return [Expected(row.id, row.line, check) for row in examples], "label"
    if task.family == "multiple_choice":
        from harness.tasks.c3 import load_c3

        questions = load_c3(task, split, (path,)).questions
        rows = [Expected(q.id, q.line, _index_check(len(q.choices), "option")) for q in questions]
        return rows, "label"
    if task.family == "ner":
        from harness.tasks.cluener import load_ner

        records = load_ner(task, split, path).records
        return [Expected(r.id, r.line, _entity_check(r.text)) for r in records], "label"
    if task.family == "cloze":
        from harness.tasks.chid import CLUE_LAYOUT, load_chid

        records = load_chid(task, split, path, None).records
        if task.layout == CLUE_LAYOUT:
            rows = [
                Expected(blank.tag, record.line, _index_check(len(record.candidates), "candidate"))
                for record in records
                for blank in record.blanks
            ]
            return rows, ""
        rows = [
            Expected(r.id, r.line, _index_check(len(r.candidates), "candidate")) for r in records
        ]
        return rows, "answer"
    if task.family == "span_extraction":
        from harness.tasks.cmrc import load_squad

        questions = load_squad(task, split, path).questions
        return [Expected(q.id, None, _string_check) for q in questions], ""
    raise HarnessError(f"no submission check for task family '{task.family}'")


def _key(value: Any) -> str:
    return str(value)


def check_lines(
    name: str, text: str, rows: list[Expected], answer: str, test: str
) -> list[Problem]:
    """Check a JSON-lines submission against the test rows, line by line."""
    found = Findings(name)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()

    entries: list[tuple[int, dict]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            found.add("blank line", number, "blank line; write one JSON object per test row")
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            found.add("invalid JSON", number, f"invalid JSON at column {error.colno}: {error.msg}")
            continue
        if not isinstance(data, dict):
            found.add(
                "not an object", number, f"expected a JSON object, found {type(data).__name__}"
            )
            continue
        entries.append((number, data))

    if len(lines) != len(rows):
        found.add(
            "line count",
            None,
            f"{len(lines)} line{'' if len(lines) == 1 else 's'}, but the test file {test} has "
            f"{len(rows)} test rows; "
            "write exactly one line per test row",
        )

    by_key = {_key(row.id): (position, row) for position, row in enumerate(rows)}
    seen: dict[str, int] = {}
    last_position = -1
    for number, data in entries:
        if "id" not in data:
            found.add("missing id", number, "missing field 'id'")
            continue
        key = _key(data["id"])
        if key not in by_key:
            found.add("unknown id", number, f"id {data['id']!r} is not in the test file")
            continue
        if key in seen:
            found.add("repeated id", number, f"id {data['id']!r} repeats line {seen[key]}")
            continue
        seen[key] = number
        position, row = by_key[key]
        if type(data["id"]) is not type(row.id):
            found.add(
                "id type",
                number,
                f"id {data['id']!r} is a {type(data['id']).__name__}, but the test file's id is "
                f"{row.id!r}",
                "warning",
            )
        # Only a step backwards is an order problem, so a missing line does not make every
        # later line misplaced.
        if position < last_position:
            found.add(
                "order",
                number,
                f"id {data['id']!r} is out of test-file order: it belongs on line "
                f"{position + 1} (test file {_where(test, row)})",
            )
        last_position = max(last_position, position)
        if answer not in data:
            found.add(f"missing {answer}", number, f"missing field '{answer}'")
            continue
        problem = row.check(data[answer])
        if problem:
            found.add(f"invalid {answer}", number, problem)

    for position, row in enumerate(rows):
        if _key(row.id) not in seen:
            found.add(
                "missing row",
                position + 1,
                f"no line for id {row.id!r} (test file {_where(test, row)}); it belongs on this line",
            )
    return found.finish()


def check_object(name: str, text: str, rows: list[Expected], test: str) -> list[Problem]:
    """Check a one-object submission (CMRC2018, ChID): one valid entry per test key."""
    found = Findings(name)
    repeated: list[str] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict:
        keys = Counter(key for key, _ in pairs)
        repeated.extend(key for key, count in keys.items() if count > 1)
        return dict(pairs)

    try:
        data = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as error:
        found.add(
            "invalid JSON", error.lineno, f"invalid JSON at column {error.colno}: {error.msg}"
        )
        return found.finish()
    if not isinstance(data, dict):
        found.add("not an object", 1, f"expected one JSON object, found {type(data).__name__}")
        return found.finish()

    def line_of(key: str) -> int | None:
        index = text.find(json.dumps(key, ensure_ascii=False))
        if index < 0:
            index = text.find(json.dumps(key))
        return text.count("\n", 0, index) + 1 if index >= 0 else None

    for key in repeated:
        found.add("repeated key", line_of(key), f"key {key!r} appears more than once")
    expected = {_key(row.id): row for row in rows}
    for key, value in data.items():
        if key not in expected:
            found.add("unknown key", line_of(key), f"key {key!r} is not in the test file")
            continue
        problem = expected[key].check(value)
        if problem:
            found.add("invalid value", line_of(key), f"{key}: {problem}")
    for key, row in expected.items():
        if key not in data:
            found.add("missing key", None, f"missing {key!r} (test file {_where(test, row)})")
    return found.finish()


def _where(test: str, row: Expected) -> str:
    return test if row.test_line is None else f"{test}:{row.test_line}"


def check_file(name: str, text: str, task: Any, split: str, test_path: Path) -> list[Problem]:
    """Check one submission file's text against the test file it answers."""
    try:
        rows, answer = expected_rows(task, split, test_path)
    except HarnessError as error:
        return [Problem(name, None, f"cannot read the test file: {error}")]
    if answer:
        return check_lines(name, text, rows, answer, test_path.name)
    return check_object(name, text, rows, test_path.name)
