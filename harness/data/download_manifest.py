"""The manifest of expected sizes and sha256 digests that `clue-harness download` checks.

The packaged file `clue_downloads.json` lists, per archive name, the zip's size and sha256
and those of files inside it, with null where unknown. Each file entry names the source
its digest was read from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class Expected:
    """Known size and sha256 of a zip or of a file in it; None where unknown."""

    size: int | None = None
    sha256: str | None = None
    source: str = ""


@dataclass(frozen=True)
class ArchiveManifest:
    """Expected values from the manifest for one archive and the files inside it."""

    archive: Expected = Expected()
    files: Mapping[str, Expected] = field(default_factory=dict)


def load_manifest(path: Path | None = None) -> dict[str, ArchiveManifest]:
    """Read the manifest shipped with the package, or the JSON file at `path`."""
    if path is None:
        text = resources.files("harness.data").joinpath("clue_downloads.json").read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")

    manifest = {}
    for name, entry in json.loads(text)["archives"].items():
        files = {
            member: Expected(item.get("size"), item.get("sha256"), item.get("source", ""))
            for member, item in entry.get("files", {}).items()
        }
        archive = Expected(entry.get("size"), entry.get("sha256"), entry.get("source", ""))
        manifest[name] = ArchiveManifest(archive, files)
    return manifest
