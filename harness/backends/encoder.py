"""Loading shared by the encoder backends with a task head: QA, tagging, multiple choice.

Each subclass names its transformers Auto class. The base class loads the tokenizer and
the model, picks the device, and sets `max_length` from the spec or the model's limits.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from harness.backends.base import Backend, ModelConfig
from harness.backends.loading import (
    default_cache_root,
    load_error,
    model_source,
    pretrained_kwargs,
    select_device,
    torch_dtype,
)
from harness.errors import BackendError

logger = logging.getLogger(__name__)


def encoder_max_length(tokenizer: Any, model: Any) -> int:
    """Return 512, or the tokenizer's or the position embeddings' limit when lower.

    A tokenizer saved without `model_max_length` reports about 1e30, so the model's
    `max_position_embeddings` must cap the length too.
    """
    limit = min(512, int(getattr(tokenizer, "model_max_length", 512) or 512))
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and 0 < positions < limit:
        limit = positions
    return limit


class EncoderBackend(Backend):
    """Base class of the encoder backends, which set `auto_class` to a transformers Auto class."""

    kind = "encoder"
    auto_class = ""

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config)
        import torch
        import transformers

        started = time.perf_counter()
        cache_root = cache_root or default_cache_root()
        auto_class = getattr(transformers, self.auto_class)
        source, self.source_facts = model_source(config, auto_class, cache_root)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, **pretrained_kwargs(config)
            )
            self.model = auto_class.from_pretrained(
                source, dtype=torch_dtype(config.dtype), **pretrained_kwargs(config)
            )
        except (OSError, ValueError) as error:
            raise load_error(config, source, error) from error

        self.device = select_device(config.device)
        self.model.to(self.device).eval()
        self.torch = torch
        self.max_length = config.max_length or encoder_max_length(self.tokenizer, self.model)
        self.load_seconds = time.perf_counter() - started
        logger.info("loaded %s (%s) in %.1f s", config.name, source, self.load_seconds)

    @property
    def identity(self) -> dict[str, Any]:
        return {**super().identity, **self.source_facts}

    def require_fast_tokenizer(self, reason: str) -> None:
        """Raise BackendError unless the tokenizer is a fast (Rust) one, which `reason` needs."""
        if not getattr(self.tokenizer, "is_fast", False):
            raise BackendError(
                f"model '{self.config.name}': backend '{self.kind}' needs a fast tokenizer "
                f"for {reason}, but the model folder has only a slow one; save a "
                "tokenizer.json next to the model (transformers converts most slow "
                "tokenizers when it loads them with the `tokenizers` package installed)"
            )

    def int_option(self, key: str, default: int, minimum: int) -> int:
        """Read an integer from the spec's `options`, and reject values below `minimum`."""
        value = self.config.options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise BackendError(
                f"model '{self.config.name}': options.{key} must be an integer >= {minimum}, "
                f"got {value!r}"
            )
        return value

    def inputs_on_device(self, encodings: list[dict[str, Any]]) -> dict[str, Any]:
        """Pad `encodings` into one batch of tensors on the model's device.

        Only the tokenizer's model inputs are passed on, so offsets and other bookkeeping
        keys may stay in the encodings.
        """
        names = self.tokenizer.model_input_names
        features = [
            {name: encoding[name] for name in names if name in encoding} for encoding in encodings
        ]
        padded = self.tokenizer.pad(features, return_tensors="pt")
        return {name: tensor.to(self.device) for name, tensor in padded.items()}

    def _empty_cache(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()

    def close(self) -> None:
        self.model = None
        self._empty_cache()
