"""JSON-lines reading with line numbers, as the CLUE files need it.

Lines are split on "\\n" only: real FewCLUE texts contain U+2028 and similar characters,
which `str.splitlines()` would treat as line breaks. A UTF-8 byte order mark is accepted.
Blank lines are not records and are skipped; every error names the file and the 1-based line.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError


@dataclass(frozen=True)
class Record:
    """One JSON object from a JSON-lines file, with its 1-based line number."""

    line: int
    data: dict[str, Any]


def read_text(path: Path) -> str:
    """Read a UTF-8 file, dropping a leading byte order mark."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as error:
        raise DataError(path, f"cannot read file: {error.strerror}") from None

    # The BOM is stripped here because the "utf-8-sig" codec reports error offsets relative
    # to the text after the BOM, which would shift the byte offset and the line number.
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        start = bom + error.start
        line = raw[:start].count(b"\n") + 1
        raise DataError(
            path,
            f"invalid UTF-8 at byte {start}",
            line=line,
            hint="Convert the file to UTF-8",
        ) from None


def parse_jsonl(text: str, path: Path) -> list[Record]:
    """Parse JSON-lines text; every non-blank line must be one JSON object."""
    records = []
    for index, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        number = index + 1
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                path,
                f"invalid JSON at column {error.colno}: {error.msg}",
                line=number,
                hint="Each line must hold exactly one JSON object; look for a trailing comma "
                "or an unescaped quote",
            ) from None
        if not isinstance(value, dict):
            raise DataError(
                path,
                f"expected a JSON object, found {type(value).__name__}",
                line=number,
                hint="Each line must hold exactly one JSON object",
            )
        records.append(Record(line=number, data=value))
    return records


def read_jsonl(path: str | Path) -> list[Record]:
    """Read a JSON-lines file into records that keep their line numbers."""
    path = Path(path)
    return parse_jsonl(read_text(path), path)


def read_json(path: str | Path) -> Any:
    """Read a file holding a single JSON document (CMRC2018, C3, ChID answers)."""
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            path,
            f"invalid JSON at column {error.colno}: {error.msg}",
            line=error.lineno,
            hint="The file must hold one JSON document",
        ) from None


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(paths: tuple[Path, ...]) -> str:
    """Return the sha256 of the files' bytes read one after another, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
