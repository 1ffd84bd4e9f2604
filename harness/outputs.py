"""Files a run writes: predictions, submission files and zips, all inside the output folder.

Every write goes to a temporary file that is renamed into place, so a killed run never
leaves a half-written submission behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def inside(root: Path, *parts: str) -> Path:
    """Join `parts` onto `root` and refuse any result that leaves `root`."""
    base = root.resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise HarnessError(f"output path {target} is outside the output folder {base}")
    return target


def write_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text through a temporary file in the same folder and rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        # mkstemp creates the file readable by its owner only. Reports and baselines are
        # shared (CI artifacts, committed files), so they get the usual 0644.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def dumps_line(record: dict[str, Any]) -> str:
    """Serialise one JSON-lines record; NaN and infinity are refused, not written."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    write_atomic(path, "".join(dumps_line(record) + "\n" for record in records))


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False) + "\n")


def zip_folder(folder: Path, archive: Path) -> list[str]:
    """Zip the files of `folder` at the archive's root, sorted by name; return the names."""
    names = sorted(path.name for path in folder.iterdir() if path.is_file())
    archive.parent.mkdir(parents=True, exist_ok=True)
    temporary = archive.with_name(f".{archive.name}.tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name in names:
            bundle.write(folder / name, arcname=name)
    os.replace(temporary, archive)
    return names
