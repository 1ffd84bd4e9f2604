"""A fine-tuned Hugging Face sequence classifier (AutoModelForSequenceClassification).

Sentence pairs are encoded as pairs with `longest_first` truncation, as the CLUE baselines
do. The label of each head output comes from the spec's `labels` list when given, else
from `config.id2label`; the runner maps those names onto the task's label ids.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from harness.backends.base import Backend, ModelConfig, NoProgress, Progress
from harness.backends.batching import run_batches
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

GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


class HFSequenceClassifier(Backend):
    kind = "hf-classifier"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config)
        import torch
        import transformers

        started = time.perf_counter()
        cache_root = cache_root or default_cache_root()
        auto_class = transformers.AutoModelForSequenceClassification
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
        self.max_length = config.max_length or self._default_max_length()
        self._labels = self._read_head_labels()
        self.load_seconds = time.perf_counter() - started
        logger.info("loaded %s (%s) in %.1f s", config.name, source, self.load_seconds)

    @property
    def identity(self) -> dict[str, Any]:
        return {**super().identity, **self.source_facts}

    def _default_max_length(self) -> int:
        """Return 512, or the tokenizer's or the position embeddings' limit when lower.

        A tokenizer saved without `model_max_length` reports about 1e30, so the model's
        `max_position_embeddings` must cap the length too.
        """
        limit = min(512, int(getattr(self.tokenizer, "model_max_length", 512) or 512))
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(positions, int) and 0 < positions < limit:
            limit = positions
        return limit

    def _read_head_labels(self) -> list[str]:
        size = int(self.model.config.num_labels)
        if self.config.labels is not None:
            if len(self.config.labels) != size:
                raise BackendError(
                    f"model '{self.config.name}': the spec lists {len(self.config.labels)} labels "
                    f"but the classification head has {size} outputs"
                )
            return list(self.config.labels)

        id2label = getattr(self.model.config, "id2label", None) or {}
        names = [str(id2label.get(index, id2label.get(str(index), ""))) for index in range(size)]
        if not all(names) or all(GENERIC_LABEL.match(name) for name in names):
            raise BackendError(
                f"model '{self.config.name}': config.id2label has no label names "
                f"({', '.join(names[:4])}...); list the task's labels in head order under "
                "`labels:` in the model's spec entry"
            )
        return names

    @property
    def head_labels(self) -> list[str]:
        return self._labels

    def classify(
        self, texts: Sequence[tuple[str, str | None]], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        encodings = []
        for text, text_pair in texts:
            encodings.append(
                self.tokenizer(
                    text,
                    text_pair,
                    truncation="longest_first" if text_pair is not None else True,
                    max_length=self.max_length,
                )
            )
        widths = [len(encoding["input_ids"]) for encoding in encodings]
        logits: list[list[float] | None] = [None] * len(texts)

        def step(batch: list[int]) -> None:
            padded = self.tokenizer.pad([encodings[index] for index in batch], return_tensors="pt")
            inputs = {name: tensor.to(self.device) for name, tensor in padded.items()}
            output = self.model(**inputs).logits.float().cpu()
            for index, row in zip(batch, output.tolist()):
                logits[index] = row
            progress.advance(len(batch))

        with self.torch.inference_mode():
            run_batches(
                widths,
                step,
                batch_size=self.config.batch_size,
                max_batch_size=self.config.max_batch_size,
                max_tokens=self.config.max_batch_tokens,
            )
        return logits  # type: ignore[return-value]

    def close(self) -> None:
        self.model = None
