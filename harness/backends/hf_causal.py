"""A Hugging Face causal LM that scores continuations by log-likelihood.

Context and continuation are tokenised separately and joined as token ids, so no token
spans the boundary between them. Each context runs through the model once: its last
position gives every continuation's first token, and multi-token continuations run
afterwards on copies of its key/value cache. Contexts are left-padded with explicit
position ids, so an example scores the same alone or inside a padded batch; only the last
position's logits are computed for the context, which matters for 262k-token vocabularies.
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any

from harness.backends.base import (
    Backend,
    ChoiceRequest,
    ChoiceScores,
    ModelConfig,
    NoProgress,
    Progress,
)
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


def _cache_rows(cache: Any, index: Any) -> Any:
    """Return a copy of a key/value cache restricted (or repeated) to the given batch rows.

    The layers are copied shallowly and their tensors indexed, so the original cache stays
    intact for the next chunk of continuations (forward passes append by reassignment).
    """
    rows = copy.copy(cache)
    rows.layers = []
    for layer in cache.layers:
        layer_rows = copy.copy(layer)
        if getattr(layer, "keys", None) is not None and layer.keys.numel() > 0:
            layer_rows.keys = layer.keys[index]
            layer_rows.values = layer.values[index]
        rows.layers.append(layer_rows)
    return rows


def _upcast(logits: Any) -> Any:
    """Return logits in float32, or unchanged when the model computes in float64."""
    import torch

    if logits.dtype == torch.float64:
        return logits
    return logits.float()


class HFCausalLM(Backend):
    kind = "hf-causal"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config)
        import torch
        import transformers

        started = time.perf_counter()
        cache_root = cache_root or default_cache_root()
        source, self.source_facts = model_source(
            config, transformers.AutoModelForCausalLM, cache_root
        )
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, **pretrained_kwargs(config)
            )
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=torch_dtype(config.dtype), **pretrained_kwargs(config)
            )
        except (OSError, ValueError) as error:
            raise load_error(config, source, error) from error

        self.device = select_device(config.device)
        self.model.to(self.device).eval()
        self.pad_id = self._pad_token_id()
        self.max_length = config.max_length or self._model_max_length()
        self.truncated = 0
        self.torch = torch
        # transformers 5.x renamed the key/value cache argument from past_key_values to cache.
        self.cache_argument = (
            "cache"
            if "cache" in inspect.signature(self.model.forward).parameters
            else "past_key_values"
        )
        self.load_seconds = time.perf_counter() - started
        logger.info("loaded %s (%s) in %.1f s", config.name, source, self.load_seconds)

    @property
    def identity(self) -> dict[str, Any]:
        return {**super().identity, **self.source_facts}

    def _pad_token_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0):
            if candidate is not None:
                return int(candidate)
        return 0

    def _model_max_length(self) -> int:
        limit = getattr(self.model.config, "max_position_embeddings", None) or 2048
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < limit:
            limit = tokenizer_limit
        return int(limit)

    def encode_context(self, text: str) -> list[int]:
        """Tokenise a context with the tokenizer's special tokens (BOS where it adds one)."""
        ids = list(self.tokenizer(text, add_special_tokens=True).input_ids)
        eos = self.tokenizer.eos_token_id
        # A context must end where the continuation starts, so drop an appended EOS.
        if eos is not None and len(ids) > 1 and ids[-1] == eos:
            ids = ids[:-1]
        return ids

    def encode_continuation(self, text: str) -> list[int]:
        """Tokenise a continuation on its own, with no special tokens."""
        ids = list(self.tokenizer(text, add_special_tokens=False).input_ids)
        if not ids:
            raise BackendError(f"model '{self.config.name}': continuation {text!r} has no tokens")
        return ids

    def _fit(self, context: list[int], continuations: list[list[int]]) -> list[int]:
        """Drop context tokens from the left (after BOS) so the longest choice fits."""
        room = self.max_length - max(len(ids) for ids in continuations)
        if len(context) <= room:
            return context
        if room < 2:
            raise BackendError(
                f"model '{self.config.name}': a continuation is longer than max_length "
                f"{self.max_length}"
            )
        self.truncated += 1
        keep_bos = context[:1] if context[0] == self.tokenizer.bos_token_id else []
        return keep_bos + context[len(context) - (room - len(keep_bos)) :]

    def loglikelihood(
        self, requests: Sequence[ChoiceRequest], progress: Progress = NoProgress()
    ) -> list[ChoiceScores]:
        continuation_cache: dict[str, list[int]] = {}
        contexts: list[list[int]] = []
        continuations: list[list[list[int]]] = []
        for request in requests:
            choice_ids = []
            for text in request.continuations:
                if text not in continuation_cache:
                    continuation_cache[text] = self.encode_continuation(text)
                choice_ids.append(continuation_cache[text])
            continuations.append(choice_ids)
            contexts.append(self._fit(self.encode_context(request.context), choice_ids))

        results: list[ChoiceScores | None] = [None] * len(requests)
        widths = [
            len(context) + max(len(ids) for ids in choices)
            for context, choices in zip(contexts, continuations)
        ]
        rows = [1 + sum(1 for ids in choices if len(ids) > 1) for choices in continuations]

        def step(batch: list[int]) -> None:
            scores = self._score_batch(
                [contexts[i] for i in batch], [continuations[i] for i in batch]
            )
            for index, score in zip(batch, scores):
                results[index] = score
            progress.advance(len(batch))

        with self.torch.inference_mode():
            run_batches(
                widths,
                step,
                batch_size=self.config.batch_size,
                max_batch_size=self.config.max_batch_size,
                max_tokens=self.config.max_batch_tokens,
                rows=rows,
                on_oom=self._empty_cache,
            )
        if self.truncated:
            logger.warning(
                "%s: %d contexts were cut from the left to fit max_length %d",
                self.config.name,
                self.truncated,
                self.max_length,
            )
            self.truncated = 0
        return results  # type: ignore[return-value]

    def _empty_cache(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()

    def _score_batch(
        self, contexts: list[list[int]], continuations: list[list[list[int]]]
    ) -> list[ChoiceScores]:
        torch = self.torch
        width = max(len(ids) for ids in contexts)
        input_ids = torch.full((len(contexts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(contexts), width), dtype=torch.long)
        for row, ids in enumerate(contexts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            mask[row, width - len(ids) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)

        multi = [
            (row, choice)
            for row, choices in enumerate(continuations)
            for choice, ids in enumerate(choices)
            if len(ids) > 1
        ]
        output = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=bool(multi),
            logits_to_keep=1,
        )
        first = torch.log_softmax(_upcast(output.logits[:, -1, :]), dim=-1).cpu()

        totals = [
            [float(first[row, ids[0]]) for ids in choices]
            for row, choices in enumerate(continuations)
        ]
        if multi:
            cache = getattr(output, "cache", None) or output.past_key_values
            rest = self._score_rest(cache, mask, contexts, continuations, multi)
            for (row, choice), value in zip(multi, rest):
                totals[row][choice] += value

        return [
            ChoiceScores(tuple(values), tuple(len(ids) for ids in choices))
            for values, choices in zip(totals, continuations)
        ]

    def _score_rest(
        self,
        cache: Any,
        mask: Any,
        contexts: list[list[int]],
        continuations: list[list[list[int]]],
        multi: list[tuple[int, int]],
    ) -> list[float]:
        """Sum the log-probabilities of tokens 2..n of multi-token continuations."""
        torch = self.torch
        width = mask.shape[1]
        length = max(len(continuations[row][choice]) - 1 for row, choice in multi)

        inputs = torch.full((len(multi), length), self.pad_id, dtype=torch.long)
        targets = torch.zeros((len(multi), length), dtype=torch.long)
        cont_mask = torch.zeros((len(multi), length), dtype=torch.long)
        positions = torch.zeros((len(multi), length), dtype=torch.long)
        for index, (row, choice) in enumerate(multi):
            ids = continuations[row][choice]
            inputs[index, : len(ids) - 1] = torch.tensor(ids[:-1])
            targets[index, : len(ids) - 1] = torch.tensor(ids[1:])
            cont_mask[index, : len(ids) - 1] = 1
            positions[index] = len(contexts[row]) + torch.arange(length)

        rows = torch.tensor([row for row, _ in multi])
        full_mask = torch.cat([mask[rows], cont_mask], dim=1)
        output = self.model(
            input_ids=inputs.to(self.device),
            attention_mask=full_mask.to(self.device),
            position_ids=positions.to(self.device),
            **{self.cache_argument: _cache_rows(cache, rows.to(self.device))},
            cache_position=torch.arange(width, width + length, device=self.device),
            use_cache=True,
        )
        logprobs = torch.log_softmax(_upcast(output.logits), dim=-1).cpu()
        picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * cont_mask
        return picked.sum(dim=1).tolist()

    def close(self) -> None:
        self.model = None
        self._empty_cache()
