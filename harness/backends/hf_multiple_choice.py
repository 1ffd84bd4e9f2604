"""Multiple choice with a fine-tuned AutoModelForMultipleChoice (C3-style questions).

Each choice is encoded as the pair (context, question + choice) with
`truncation="only_first"`, so only the passage is ever cut and the question and choice
stay whole. The model scores all choices of a request in one row of shape
(choices, tokens), so requests are batched by their number of choices: a batch never
mixes counts, and no dummy choice is scored. `choose` returns one logit per choice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from harness.backends.base import ModelConfig, MultipleChoiceRequest, NoProgress, Progress
from harness.backends.batching import run_batches
from harness.backends.encoder import EncoderBackend
from harness.errors import BackendError

logger = logging.getLogger(__name__)


class HFMultipleChoice(EncoderBackend):
    kind = "hf-multiple-choice"
    auto_class = "AutoModelForMultipleChoice"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config, cache_root)
        self.pair_special_tokens = self.tokenizer.num_special_tokens_to_add(pair=True)

    def _encode(self, index: int, request: MultipleChoiceRequest) -> list[dict[str, list[int]]]:
        encodings = []
        for choice in request.choices:
            second = request.question + choice
            second_tokens = len(self.tokenizer(second, add_special_tokens=False)["input_ids"])
            if self.max_length - self.pair_special_tokens - second_tokens < 1:
                raise BackendError(
                    f"model '{self.config.name}': request {index}: the question and choice "
                    f"{choice!r} take {second_tokens} tokens, which leaves no room for the "
                    f"passage within max_length {self.max_length}; raise max_length"
                )
            encoded = self.tokenizer(
                request.context,
                second,
                truncation="only_first",
                max_length=self.max_length,
            )
            names = [name for name in self.tokenizer.model_input_names if name in encoded]
            encodings.append({name: encoded[name] for name in names})
        return encodings

    def choose(
        self, requests: Sequence[MultipleChoiceRequest], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        results: list[list[float] | None] = [None] * len(requests)
        encodings: dict[int, list[dict[str, list[int]]]] = {}
        by_count: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            if not request.choices:
                results[index] = []
                progress.advance(1)
                continue
            encodings[index] = self._encode(index, request)
            by_count.setdefault(len(request.choices), []).append(index)

        with self.torch.inference_mode():
            for count, members in sorted(by_count.items(), reverse=True):

                def step(batch: list[int], members: list[int] = members) -> None:
                    indices = [members[position] for position in batch]
                    rows = self._score_batch([encodings[index] for index in indices])
                    for index, row in zip(indices, rows):
                        results[index] = row
                    progress.advance(len(indices))

                run_batches(
                    [max(len(e["input_ids"]) for e in encodings[index]) for index in members],
                    step,
                    batch_size=self.config.batch_size,
                    max_batch_size=self.config.max_batch_size,
                    max_tokens=self.config.max_batch_tokens,
                    rows=[count] * len(members),
                    on_oom=self._empty_cache,
                )
        return results  # type: ignore[return-value]

    def _score_batch(self, requests: list[list[dict[str, list[int]]]]) -> list[list[float]]:
        """Score requests that all have the same number of choices in one forward pass."""
        count = len(requests[0])
        flat = [encoding for choices in requests for encoding in choices]
        inputs = self.inputs_on_device(flat)
        shaped = {
            name: tensor.view(len(requests), count, tensor.shape[-1])
            for name, tensor in inputs.items()
        }
        logits = self.model(**shaped).logits.float().cpu()
        return logits.tolist()
