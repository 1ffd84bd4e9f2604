"""A Hugging Face causal LM that scores continuations by log-likelihood.

Context and continuation are tokenised separately and joined as token ids, so no token
spans the boundary between them. Each context runs through the model once: its last
position gives every continuation's first token, and multi-token continuations run
afterwards on copies of its key/value cache. Contexts are left-padded with explicit
position ids, so an example scores the same alone or inside a padded batch; only the last
position's logits are computed for the context, which matters for 262k-token vocabularies.

`generate` decodes greedily with a loop of its own (see harness.backends.greedy) rather
than `model.generate`, so that the checkpoint's generation_config.json cannot change it.
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
    GenerationRequest,
    ModelConfig,
    NoProgress,
    Progress,
)
from harness.backends.batching import run_batches
from harness.backends.greedy import DecodingRow, decode_greedy
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
        self.eos_ids = self._eos_token_ids()
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

    def _eos_token_ids(self) -> frozenset[int]:
        """Collect the tokens that end generation: the tokenizer's EOS and generation_config's.

        Chat models often list several, such as Qwen's <|im_end|> and <|endoftext|>.
        """
        ids = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif isinstance(configured, (list, tuple)):
            ids.update(int(token) for token in configured)
        return frozenset(ids)

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
        return self._keep_last(context, room)

    def _fit_prompt(self, prompt: list[int], max_new_tokens: int) -> list[int]:
        """Drop prompt tokens from the left (after BOS) so `max_new_tokens` more fit."""
        room = self.max_length - max_new_tokens
        if len(prompt) <= room:
            return prompt
        if room < 2:
            raise BackendError(
                f"model '{self.config.name}': max_new_tokens {max_new_tokens} leaves no room "
                f"for the prompt within max_length {self.max_length}; lower max_new_tokens "
                "or raise the model's max_length"
            )
        return self._keep_last(prompt, room)

    def _keep_last(self, ids: list[int], room: int) -> list[int]:
        """Keep BOS, if `ids` starts with it, and the last tokens up to `room` in all."""
        self.truncated += 1
        keep_bos = ids[:1] if ids[0] == self.tokenizer.bos_token_id else []
        return keep_bos + ids[len(ids) - (room - len(keep_bos)) :]

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
        self._report_truncated("contexts")
        return results  # type: ignore[return-value]

    def _report_truncated(self, items: str) -> None:
        if self.truncated:
            logger.warning(
                "%s: %d %s were cut from the left to fit max_length %d",
                self.config.name,
                self.truncated,
                items,
                self.max_length,
            )
            self.truncated = 0

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
        """Sum the log-probabilities of tokens 2..n of multi-token continuations.

        Continuations are grouped by length, so no position is padded (and no logits are
        computed for padding, which dominates the cost with a 262k-token vocabulary), and
        choices of one example that feed the model the same tokens share one row. Groups
        are cut into chunks that bound the copied key/value rows and the logits kept.
        """
        torch = self.torch
        width = mask.shape[1]

        # One model row per (example, input tokens); each keeps the choices it scores.
        targets_by_row: dict[tuple[int, tuple[int, ...]], list[tuple[int, list[int]]]] = {}
        for index, (row, choice) in enumerate(multi):
            ids = continuations[row][choice]
            targets_by_row.setdefault((row, tuple(ids[:-1])), []).append((index, ids[1:]))
        by_length: dict[int, list[tuple[int, tuple[int, ...]]]] = {}
        for key in targets_by_row:
            by_length.setdefault(len(key[1]), []).append(key)

        totals = [0.0] * len(multi)
        for length, keys in sorted(by_length.items()):
            per_chunk = max(1, min(self.config.max_batch_tokens // (width + length), 512 // length))
            for start in range(0, len(keys), per_chunk):
                chunk = keys[start : start + per_chunk]
                logprobs = self._continuation_logprobs(cache, mask, contexts, chunk, width, length)
                for position, key in enumerate(chunk):
                    for index, targets in targets_by_row[key]:
                        steps = torch.arange(length)
                        picked = logprobs[position, steps, torch.tensor(targets)]
                        totals[index] = float(picked.sum())
        return totals

    def _continuation_logprobs(
        self, cache: Any, mask: Any, contexts: list[list[int]], keys: list, width: int, length: int
    ) -> Any:
        """Run equal-length continuation inputs on copies of their contexts' cache rows."""
        torch = self.torch
        rows = torch.tensor([row for row, _ in keys])
        inputs = torch.tensor([list(ids) for _, ids in keys], dtype=torch.long)
        positions = torch.stack([len(contexts[row]) + torch.arange(length) for row, _ in keys])
        full_mask = torch.cat(
            [mask[rows], torch.ones((len(keys), length), dtype=mask.dtype)], dim=1
        )
        output = self.model(
            input_ids=inputs.to(self.device),
            attention_mask=full_mask.to(self.device),
            position_ids=positions.to(self.device),
            **{self.cache_argument: _cache_rows(cache, rows.to(self.device))},
            cache_position=torch.arange(width, width + length, device=self.device),
            use_cache=True,
        )
        return torch.log_softmax(_upcast(output.logits), dim=-1).cpu()

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress = NoProgress()
    ) -> list[str]:
        """Decode after each prompt, greedily unless the request samples; the text excludes
        the stop string and EOS."""
        rows = []
        for index, request in enumerate(requests):
            prompt = self.encode_context(request.prompt)
            if not prompt:
                raise BackendError(
                    f"model '{self.config.name}': prompt {request.prompt!r} has no tokens and "
                    "the tokenizer adds no BOS token; give the case a non-empty prompt"
                )
            limit = max(0, request.max_new_tokens)
            row = DecodingRow(self._fit_prompt(prompt, limit), limit, request.stop)
            if request.sampling is not None:
                # One seed per request, so a row samples the same tokens in any batch.
                row.sampling = request.sampling
                row.seed = (request.sampling.seed * 1_000_003 + index) % 2**63
            rows.append(row)
        widths = [len(row.prompt) + row.max_new_tokens for row in rows]

        def step(batch: list[int]) -> None:
            batch_rows = [rows[index] for index in batch]
            for row in batch_rows:
                # An out-of-memory retry runs the batch again from the start.
                row.tokens, row.text = [], None
            decode_greedy(
                self.model,
                batch_rows,
                pad_id=self.pad_id,
                eos_ids=self.eos_ids,
                decode=self._decode_generated,
                device=self.device,
                cache_argument=self.cache_argument,
            )
            progress.advance(len(batch))

        with self.torch.inference_mode():
            run_batches(
                widths,
                step,
                batch_size=self.config.batch_size,
                max_batch_size=self.config.max_batch_size,
                max_tokens=self.config.max_batch_tokens,
                on_oom=self._empty_cache,
            )
        self._report_truncated("prompts")
        return [row.text or "" for row in rows]

    def _decode_generated(self, ids: list[int]) -> str:
        """Decode generated tokens on their own, without special tokens.

        NOTE: SentencePiece tokenizers drop the leading space of the first piece when it is
        decoded without the prompt, so English output can lose one leading space.
        """
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def close(self) -> None:
        self.model = None
        self._empty_cache()
