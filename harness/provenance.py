"""Provenance of a case's scores: model weights, settings, prompt and harness version.

A baseline stores this beside each case's scores, so that a reviewer can see whether a
change of score came with a change of weights, dtype, batch size or prompt.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from harness import __version__
from harness.backends.base import Backend, ModelConfig
from harness.cases import CaseConfig
from harness.errors import HarnessError

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".msgpack", ".h5")
# Case fields that shape what a causal LM is asked, besides the template itself.
PROMPT_FIELDS = ("method", "shots", "fewshot_split", "verbalizers", "length_normalization")

_weights_cache: dict[tuple, str | None] = {}


def _weight_files(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.rglob("*") if path.is_file() and path.suffix in WEIGHT_SUFFIXES
    )


def folder_weights_sha256(location: Path) -> str | None:
    """Return one sha256 over a model's weight files (names and bytes), or None if it has none.

    A file is hashed as itself; a folder as each weight file in name order. The digest is
    kept per process until a file's size or modification time changes.
    """
    files = [location] if location.is_file() else _weight_files(location)
    if not files:
        return None
    stamp = tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    if stamp in _weights_cache:
        return _weights_cache[stamp]

    digest = hashlib.sha256()
    for path in files:
        name = path.name if path == location else path.relative_to(location).as_posix()
        digest.update(name.encode("utf-8") + b"\0")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    value = digest.hexdigest()
    _weights_cache[stamp] = value
    return value


def weights_sha256(config: ModelConfig, identity: dict[str, Any]) -> str | None:
    """Return the sha256 of a model's weights, or None for a hub id or a served model.

    A GGUF model keeps the sha256 of its GGUF file, which the loader has already checked.
    """
    if identity.get("gguf_sha256"):
        return identity["gguf_sha256"]
    if config.backend == "openai":
        return None
    if config.packaged:
        from harness.backends.packaged import locate_packaged

        try:
            # Only a GGUF package needs the cache folder, and that case returned above.
            location = locate_packaged(config.packaged, Path("."), assemble=False).folder
        except HarnessError as error:
            logger.warning("weights of %s not hashed: %s", config.name, error)
            return None
    elif config.path and Path(config.path).expanduser().exists():
        location = Path(config.path).expanduser()
    else:
        return None
    return folder_weights_sha256(location)


def prompt_sha256(case: CaseConfig, task: Any) -> str | None:
    """Return a sha256 of the prompt template and the settings that shape it.

    Returns None for methods that send no prompt (classifier heads, embeddings).
    """
    template = case.prompt or getattr(task, "prompt", None)
    if case.method not in ("loglikelihood", "generate") or not template:
        return None
    settings = {name: getattr(case, name) for name in PROMPT_FIELDS}
    settings["template"] = template
    settings["options"] = case.options
    text = json.dumps(settings, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def case_provenance(case: CaseConfig, task: Any, backend: Backend) -> dict[str, Any]:
    """Return the provenance fields of one evaluated case."""
    config = backend.config
    identity = backend.identity
    source = identity.get("source")
    if isinstance(source, str) and Path(source).is_absolute():
        # A folder's name, because a baseline is shared between machines.
        source = Path(source).name
    return {
        "model": config.name,
        "backend": identity.get("backend", config.backend),
        "source": source,
        "revision": config.revision,
        "weights_sha256": weights_sha256(config, identity),
        "dtype": config.dtype,
        "batch_size": config.batch_size,
        "prompt_sha256": prompt_sha256(case, task),
        "harness_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
    }
