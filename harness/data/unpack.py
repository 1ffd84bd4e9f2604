"""Unpacking a downloaded CLUE zip into the folder layout the loaders read.

The official zips differ in layout: most have their files at the top level, and some
(cmnli) have them in one folder such as `cmnli_public/`. `unpack_zip` writes every file to
`<target>/<path>`, and when all files sit under one top-level folder it drops that folder,
so both layouts end up as `<target>/dev.json`. macOS resource forks (`__MACOSX/`, `._*`)
and `.DS_Store` files are left out.

Member names are checked before anything is written. A name that is absolute, has a drive
letter, contains a `..` part, or repeats an earlier name raises UnsafeArchive. Symbolic
links also raise it, so no member can write outside the target folder.
"""

from __future__ import annotations

import logging
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.errors import HarnessError

logger = logging.getLogger(__name__)

JUNK_FOLDERS = frozenset({"__MACOSX"})
JUNK_FILES = frozenset({".DS_Store"})
CHUNK_BYTES = 1 << 20


class UnsafeArchive(HarnessError):
    """A zip member would be written outside the target folder, or twice."""


@dataclass(frozen=True)
class Member:
    """A file of the archive: its name in the zip and its path below the target folder."""

    info: zipfile.ZipInfo
    path: PurePosixPath


def _is_junk(parts: tuple[str, ...]) -> bool:
    if parts[0] in JUNK_FOLDERS:
        return True
    name = parts[-1]
    return name in JUNK_FILES or name.startswith("._")


def _safe_parts(archive: Path, name: str) -> tuple[str, ...]:
    """Split a member name into path parts, or raise UnsafeArchive if it could escape."""
    text = name.replace("\\", "/")
    parts = tuple(part for part in text.split("/") if part not in ("", "."))
    escapes = (
        text.startswith("/") or (len(text) > 1 and text[1] == ":") or ".." in parts or not parts
    )
    if escapes:
        raise UnsafeArchive(
            f"{archive}: member {name!r} would be written outside the target folder; "
            "the archive is rejected and nothing was unpacked. Check where it came from"
        )
    return parts


def list_members(archive: Path, bundle: zipfile.ZipFile) -> list[Member]:
    """Return the archive's files with their normalised paths; raise UnsafeArchive."""
    entries: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    for info in bundle.infolist():
        parts = _safe_parts(archive, info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchive(
                f"{archive}: member {info.filename!r} is a symbolic link; the archive is "
                "rejected and nothing was unpacked"
            )
        if info.is_dir() or _is_junk(parts):
            continue
        entries.append((info, parts))
    if not entries:
        raise HarnessError(f"{archive}: the archive contains no files")

    # One top-level folder around every file (cmnli_public/dev.json) is dropped.
    tops = {parts[0] for _, parts in entries}
    strip = len(tops) == 1 and all(len(parts) > 1 for _, parts in entries)

    members = []
    seen: dict[PurePosixPath, str] = {}
    for info, parts in entries:
        path = PurePosixPath(*(parts[1:] if strip else parts))
        if path in seen:
            raise UnsafeArchive(
                f"{archive}: members {seen[path]!r} and {info.filename!r} both unpack to "
                f"{path}; the archive is rejected"
            )
        seen[path] = info.filename
        members.append(Member(info, path))
    return members


def unpack_zip(archive: Path, target: Path) -> list[PurePosixPath]:
    """Write the archive's files below `target` (created if missing); return their paths.

    Raises UnsafeArchive before writing anything when a member name is unsafe, and
    zipfile.BadZipFile when a member's CRC does not match its bytes.
    """
    with zipfile.ZipFile(archive) as bundle:
        members = list_members(archive, bundle)
        target.mkdir(parents=True, exist_ok=True)
        for member in members:
            destination = target.joinpath(*member.path.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member.info) as source, open(destination, "wb") as sink:
                shutil.copyfileobj(source, sink, CHUNK_BYTES)
    logger.debug("unpacked %d files of %s into %s", len(members), archive, target)
    return [member.path for member in members]
