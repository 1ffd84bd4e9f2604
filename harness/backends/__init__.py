"""Model backends: one small protocol, one file per kind of model."""

from __future__ import annotations

import importlib
from pathlib import Path

from harness.backends.base import Backend, ModelConfig
from harness.errors import BackendError

# Backend kind -> "module:Class"; modules are imported on first use, so that importing the
# harness (and starting pytest) does not import torch.
BACKENDS = {
    "hf-causal": "harness.backends.hf_causal:HFCausalLM",
    "hf-classifier": "harness.backends.hf_classifier:HFSequenceClassifier",
    "hf-qa": "harness.backends.hf_qa:HFQuestionAnswering",
    "hf-token-classifier": "harness.backends.hf_token_classifier:HFTokenClassifier",
    "hf-multiple-choice": "harness.backends.hf_multiple_choice:HFMultipleChoice",
    "openai": "harness.backends.openai_compat:OpenAICompatible",
    "hf-embedding": "harness.backends.hf_embedding:HFEmbedding",
}
BACKEND_KINDS = tuple(BACKENDS)


def create_backend(config: ModelConfig, cache_root: Path | None = None) -> Backend:
    """Load the model a spec describes with the backend its `backend` key names.

    `cache_root` holds converted GGUF models (default: see `default_cache_root`).
    """
    if config.backend not in BACKENDS:
        raise BackendError(
            f"model '{config.name}': unknown backend '{config.backend}' "
            f"(known: {', '.join(BACKEND_KINDS)})"
        )
    module_name, class_name = BACKENDS[config.backend].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(config, cache_root)
