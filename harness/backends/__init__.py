"""Model backends: one small protocol, one file per kind of model."""

from __future__ import annotations

from pathlib import Path

from harness.backends.base import Backend, ModelConfig
from harness.errors import BackendError

BACKEND_KINDS = ("hf-causal", "hf-classifier")


def create_backend(config: ModelConfig, cache_root: Path | None = None) -> Backend:
    """Load the model a spec describes with the backend its `backend` key names.

    `cache_root` holds converted GGUF models (default: see `default_cache_root`).
    """
    # Imports are deferred so that `import harness` stays fast and torch-free.
    if config.backend == "hf-causal":
        from harness.backends.hf_causal import HFCausalLM

        return HFCausalLM(config, cache_root)
    if config.backend == "hf-classifier":
        from harness.backends.hf_classifier import HFSequenceClassifier

        return HFSequenceClassifier(config, cache_root)
    raise BackendError(
        f"model '{config.name}': unknown backend '{config.backend}' "
        f"(known: {', '.join(BACKEND_KINDS)})"
    )
