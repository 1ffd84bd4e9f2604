"""Extractive question answering with a fine-tuned AutoModelForQuestionAnswering.

Each request is encoded as the pair (question, context) with `truncation="only_second"`,
so a long context is split into overlapping windows (`options.doc_stride` tokens of
overlap, default 128) and the question is repeated in each. In every window the answer is
the span of context tokens with the highest start logit plus end logit, with end >= start
and at most `options.max_answer_tokens` tokens (default 64). The best span over all
windows wins, and ties go to the earlier window. A request with an empty context, or
whose windows have no context token, gets the answer "" with start -1 and score 0.0.

The answer is cut from the context string with the tokenizer's character offsets, never
decoded from tokens, so `context[start:start + len(text)] == text` always holds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.backends.base import ModelConfig, NoProgress, Progress, SpanAnswer, SpanRequest
from harness.backends.batching import run_batches
from harness.backends.encoder import EncoderBackend
from harness.errors import BackendError

logger = logging.getLogger(__name__)

NO_ANSWER = SpanAnswer(text="", start=-1, score=0.0)


@dataclass
class Window:
    """One encoded (question, context window) pair of a request."""

    request: int
    encoding: dict[str, list[int]]
    offsets: list[tuple[int, int]]
    in_context: list[bool]


def best_span(
    start_logits: Any, end_logits: Any, in_context: Any, max_answer_tokens: int
) -> tuple[float, int, int] | None:
    """Return (score, start token, end token) of the best allowed span, or None.

    A span is allowed when both ends are context tokens, end >= start, and it has at most
    `max_answer_tokens` tokens. Ties go to the smallest start, then the smallest end.

    >>> import torch
    >>> best_span(torch.tensor([0.0, 5.0, 1.0]), torch.tensor([9.0, 0.0, 2.0]),
    ...           torch.tensor([False, True, True]), 2)
    (7.0, 1, 2)
    """
    import torch

    count = start_logits.shape[0]
    index = torch.arange(count)
    length = index[None, :] - index[:, None]
    allowed = (length >= 0) & (length < max_answer_tokens)
    allowed &= in_context[:, None] & in_context[None, :]
    if not bool(allowed.any()):
        return None

    scores = start_logits[:, None] + end_logits[None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    flat = int(scores.argmax())
    return float(scores.view(-1)[flat]), flat // count, flat % count


class HFQuestionAnswering(EncoderBackend):
    kind = "hf-qa"
    auto_class = "AutoModelForQuestionAnswering"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config, cache_root)
        self.require_fast_tokenizer("character offsets of answer spans")
        self.stride = self.int_option("doc_stride", 128, 0)
        self.max_answer_tokens = self.int_option("max_answer_tokens", 64, 1)
        self.max_question_tokens = self.int_option("max_question_tokens", 64, 1)

        self.text_room = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=True)
        if self.text_room < 2:
            raise BackendError(
                f"model '{config.name}': max_length {self.max_length} leaves no room for a "
                "question and a context; raise max_length"
            )
        # A question longer than half the room would leave context windows too short.
        self.max_question_tokens = min(self.max_question_tokens, self.text_room // 2)
        self.cut_questions = 0

    def _cut_question(self, question: str) -> str:
        """Cut a question after `max_question_tokens` tokens, at a character offset."""
        encoding = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoding["input_ids"]) <= self.max_question_tokens:
            return question
        self.cut_questions += 1
        end = encoding["offset_mapping"][self.max_question_tokens - 1][1]
        return question[:end]

    def _encode(self, index: int, request: SpanRequest) -> list[Window]:
        question = self._cut_question(request.question)
        question_tokens = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        # The Rust tokenizer panics unless the stride is shorter than the context room.
        stride = min(self.stride, self.text_room - question_tokens - 1)

        encoded = self.tokenizer(
            question,
            request.context,
            truncation="only_second",
            max_length=self.max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        names = [name for name in self.tokenizer.model_input_names if name in encoded]
        windows = []
        for number in range(len(encoded["input_ids"])):
            sequence_ids = encoded.sequence_ids(number)
            windows.append(
                Window(
                    request=index,
                    encoding={name: encoded[name][number] for name in names},
                    offsets=[tuple(pair) for pair in encoded["offset_mapping"][number]],
                    in_context=[sequence == 1 for sequence in sequence_ids],
                )
            )
        return windows

    def extract_answers(
        self, requests: Sequence[SpanRequest], progress: Progress = NoProgress()
    ) -> list[SpanAnswer]:
        windows: list[Window] = []
        for index, request in enumerate(requests):
            if request.context.strip():
                windows.extend(self._encode(index, request))
            else:
                progress.advance(1)
        if self.cut_questions:
            logger.warning(
                "%s: %d questions were cut to %d tokens",
                self.config.name,
                self.cut_questions,
                self.max_question_tokens,
            )
            self.cut_questions = 0

        remaining = [0] * len(requests)
        for window in windows:
            remaining[window.request] += 1
        spans: list[tuple[float, int, int] | None] = [None] * len(windows)

        def step(batch: list[int]) -> None:
            found = self._score_batch([windows[index] for index in batch])
            for index, span in zip(batch, found):
                spans[index] = span
                remaining[windows[index].request] -= 1
                if remaining[windows[index].request] == 0:
                    progress.advance(1)

        with self.torch.inference_mode():
            run_batches(
                [len(window.encoding["input_ids"]) for window in windows],
                step,
                batch_size=self.config.batch_size,
                max_batch_size=self.config.max_batch_size,
                max_tokens=self.config.max_batch_tokens,
                on_oom=self._empty_cache,
            )
        return self._pick_answers(requests, windows, spans)

    def _score_batch(self, windows: list[Window]) -> list[tuple[float, int, int] | None]:
        torch = self.torch
        inputs = self.inputs_on_device([window.encoding for window in windows])
        output = self.model(**inputs)
        start_logits = output.start_logits.float().cpu()
        end_logits = output.end_logits.float().cpu()

        left_padded = self.tokenizer.padding_side == "left"
        width = start_logits.shape[1]
        spans = []
        for row, window in enumerate(windows):
            length = len(window.encoding["input_ids"])
            first = width - length if left_padded else 0
            spans.append(
                best_span(
                    start_logits[row, first : first + length],
                    end_logits[row, first : first + length],
                    torch.tensor(window.in_context),
                    self.max_answer_tokens,
                )
            )
        return spans

    def _pick_answers(
        self,
        requests: Sequence[SpanRequest],
        windows: list[Window],
        spans: list[tuple[float, int, int] | None],
    ) -> list[SpanAnswer]:
        answers = [NO_ANSWER] * len(requests)
        best_scores: list[float | None] = [None] * len(requests)
        for window, span in zip(windows, spans):
            if span is None:
                continue
            score, first, last = span
            previous = best_scores[window.request]
            if previous is not None and score <= previous:
                continue
            context = requests[window.request].context
            start = window.offsets[first][0]
            end = window.offsets[last][1]
            best_scores[window.request] = score
            answers[window.request] = SpanAnswer(text=context[start:end], start=start, score=score)
        return answers
