"""Where task files live under a data root.

The official CLUE zips unpack to `<root>/<task>/` or `<root>/<task>_public/`; FewCLUE files
sit under `<root>/fewclue/<task>/`, as in the FewCLUE repository's `datasets/` folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import DataError, HarnessError

DATA_ENV = "CLUE_DATA_DIR"

NO_DATA_ROOT = (
    "No CLUE data root is set. Pass --clue-data DIR, set the CLUE_DATA_DIR environment "
    "variable, or give data_root in the YAML spec. The folder must hold the official layout, "
    "for example DIR/afqmc/dev.json and DIR/fewclue/iflytek/test_public.json"
)


def resolve_data_root(option: str | None, spec_root: Path | None) -> Path | None:
    """Pick the data root: the command-line option, then CLUE_DATA_DIR, then the spec's."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return spec_root


def candidate_dirs(root: Path, directory: str) -> list[Path]:
    """List the folders that may hold a task's files, in the order they are tried."""
    primary = root / directory
    if "/" in directory:
        return [primary]
    return [primary, root / f"{directory}_public"]


def locate_file(root: Path | None, directory: str, filename: str) -> Path:
    """Find a task file under the data root, or raise an error naming every place tried."""
    if root is None:
        raise HarnessError(NO_DATA_ROOT)
    if not root.is_dir():
        raise HarnessError(
            f"Data root {root} is not a folder. Pass --clue-data DIR or set {DATA_ENV} "
            "to the folder that holds the task folders"
        )

    tried = [folder / filename for folder in candidate_dirs(root, directory)]
    for path in tried:
        if path.is_file():
            return path
    raise DataError(
        tried[0],
        "file not found",
        hint="Looked in "
        + " and ".join(str(path) for path in tried)
        + "; unpack the official files there or point --clue-data at another root",
    )
