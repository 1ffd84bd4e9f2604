"""Loading Hugging Face models from a local folder, a hub id, a GGUF file or a wheel.

GGUF checkpoints are dequantised by transformers' GGUF support, which takes about a minute
for a 270M model on 2 cores; the result is saved once as a plain safetensors folder in the
cache, keyed by the GGUF file's sha256 and the transformers version, so later loads take
seconds. A file lock keeps xdist workers from converting the same file twice.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from harness.backends.base import ModelConfig
from harness.backends.packaged import expected_gguf_sha256, locate_packaged
from harness.data.jsonl import sha256_file
from harness.errors import BackendError

logger = logging.getLogger(__name__)

CACHE_ENV = "CLUE_HARNESS_CACHE"
DTYPES = ("float32", "bfloat16", "float16", "auto")


def default_cache_root() -> Path:
    """Return the harness's cache folder: $CLUE_HARNESS_CACHE or ~/.cache/clue-harness."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "clue-harness"


def torch_dtype(name: str) -> Any:
    import torch

    if name == "auto":
        return "auto"
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def select_device(name: str) -> str:
    """Resolve device "auto" to cuda when a GPU is visible, else cpu."""
    import torch

    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def pretrained_kwargs(config: ModelConfig) -> dict[str, Any]:
    """Return the from_pretrained arguments every backend passes."""
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if config.revision:
        kwargs["revision"] = config.revision
    return kwargs


def load_error(config: ModelConfig, source: str, error: Exception) -> BackendError:
    """Wrap a from_pretrained failure in an error that says what to check."""
    return BackendError(
        f"model '{config.name}': cannot load '{source}': {error}. Check that the folder "
        "exists and holds config.json and the weights; for a hub id on an offline machine, "
        "download the model and set `path` to its local folder"
    )


def _drop_gguf_quantizer(model: Any) -> bool:
    """Make a dequantised GGUF model saveable; return False if weights stayed packed."""
    import torch

    if not all(parameter.dtype.is_floating_point for parameter in model.parameters()):
        return False
    if not all(type(parameter) is torch.nn.Parameter for parameter in model.parameters()):
        return False
    # transformers marks every GGUF-loaded model as quantised and then refuses to save it,
    # even when every tensor was dequantised into plain float parameters.
    if hasattr(model, "hf_quantizer"):
        del model.hf_quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return True


def converted_gguf_folder(
    config: ModelConfig, auto_class: Any, cache_root: Path
) -> tuple[Path, str]:
    """Return a plain HF folder converted from the spec's GGUF file, and the file's sha256."""
    import transformers
    from filelock import FileLock

    if config.packaged:
        digest = expected_gguf_sha256(config.packaged)
        located = None
    else:
        located = _local_gguf(config)
        digest = sha256_file(located)

    target = cache_root / "gguf" / f"{digest[:16]}-transformers-{transformers.__version__}"
    marker = target / "harness-conversion.txt"
    if marker.is_file():
        return target, digest

    (cache_root / "gguf").mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if marker.is_file():
            return target, digest
        if config.packaged:
            packaged = locate_packaged(config.packaged, cache_root)
            folder, gguf_file = packaged.folder, packaged.gguf_file
        else:
            folder, gguf_file = located.parent, located.name

        logger.info("dequantising %s once into %s; later loads read that folder", gguf_file, target)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
            model = auto_class.from_pretrained(
                str(folder), gguf_file=gguf_file, dtype=torch_dtype("float32")
            )
        except (OSError, ValueError) as error:
            raise load_error(config, str(folder / gguf_file), error) from error
        if not _drop_gguf_quantizer(model):
            raise BackendError(
                f"model '{config.name}': the GGUF weights stayed packed (a GGUF kernel is "
                "installed), so they cannot be cached as a plain folder; uninstall the "
                "`kernels` package or convert the file with llama.cpp's tools"
            )

        staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / marker.name).write_text(f"source: {gguf_file}\nsha256: {digest}\n")
        os.replace(staging, target)
    return target, digest


def _local_gguf(config: ModelConfig) -> Path:
    candidate = Path(config.path or "").expanduser() / (config.gguf_file or "")
    if candidate.is_file():
        return candidate
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(config.path, config.gguf_file, revision=config.revision))
    except Exception as error:  # the hub client raises many types for one cause
        raise load_error(config, f"{config.path}/{config.gguf_file}", error) from error


def model_source(
    config: ModelConfig, auto_class: Any, cache_root: Path
) -> tuple[str, dict[str, Any]]:
    """Return the folder or hub id to load, and identity facts for reports and caches."""
    if config.gguf_file or (config.packaged and _is_gguf_package(config.packaged)):
        folder, digest = converted_gguf_folder(config, auto_class, cache_root)
        return str(folder), {"gguf_sha256": digest}
    if config.packaged:
        located = locate_packaged(config.packaged, cache_root)
        return str(located.folder), {}
    return str(Path(config.path).expanduser()) if Path(
        config.path
    ).expanduser().exists() else config.path, {}


def _is_gguf_package(name: str) -> bool:
    from harness.backends.packaged import PACKAGED

    return name in PACKAGED and PACKAGED[name].gguf
