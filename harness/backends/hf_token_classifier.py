"""Named-entity tagging with a fine-tuned AutoModelForTokenClassification (CLUENER2020).

Chinese NER models are trained with one tag per character, so each text is fed as its
list of characters with `is_split_into_words=True`. A BERT tokenizer then gives every
Chinese character, digit and Latin letter a token of its own, where tokenising the raw
string would merge "2020" or "iPhone" into word pieces whose tags cover several characters.
The tokenizer's word ids map each token back to its character. A character split into
several pieces takes the tag of its first piece, and one with no token (a space the
tokenizer drops) has no tag. harness.backends.tagging turns the tags into entities.

A text longer than `max_length` is split into windows of whole characters that overlap
by up to `options.stride` tokens (default 128, or a quarter of the window when that is
smaller), so no character is dropped. Each character takes its tag from the window where
it has the most context on its shorter side. A character near the edge of one window is
thus tagged by the next window, where it has up to half the overlap of context each side.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from harness.backends.base import EntitySpan, ModelConfig, NoProgress, Progress
from harness.backends.batching import run_batches
from harness.backends.encoder import EncoderBackend
from harness.backends.tagging import decode_entities, parse_tag
from harness.errors import BackendError

logger = logging.getLogger(__name__)


@dataclass
class TagWindow:
    """The characters [start, end) of one text, encoded, with each character's first token."""

    text: int
    start: int
    end: int
    encoding: dict[str, list[int]]
    first_tokens: dict[int, int]


def plan_windows(counts: Sequence[int], room: int, overlap: int) -> list[tuple[int, int]]:
    """Split characters with `counts` tokens each into windows of at most `room` tokens.

    Each window starts as far back as `overlap` tokens allow, but always after the start
    of the one before, so every character lands in at least one window.

    >>> plan_windows([1] * 10, 4, 1)
    [(0, 4), (3, 7), (6, 10)]
    >>> plan_windows([1, 0, 1, 1], 2, 0)
    [(0, 3), (3, 4)]
    """
    windows = []
    start = 0
    while True:
        end, used = start, 0
        while end < len(counts) and used + counts[end] <= room:
            used += counts[end]
            end += 1
        if end == start:
            raise ValueError(
                f"character {start} has {counts[start]} tokens, more than a window of {room}"
            )
        windows.append((start, end))
        if end >= len(counts):
            return windows

        next_start, shared = end, 0
        while next_start - 1 > start and shared + counts[next_start - 1] <= overlap:
            next_start -= 1
            shared += counts[next_start]
        start = next_start


def first_tokens(word_ids: Sequence[int | None]) -> dict[int, int]:
    """Map each word (character) index to the position of its first token."""
    positions: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None and word not in positions:
            positions[word] = position
    return positions


class HFTokenClassifier(EncoderBackend):
    kind = "hf-token-classifier"
    auto_class = "AutoModelForTokenClassification"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config, cache_root)
        self.require_fast_tokenizer("mapping tokens back to characters")
        self.tags = self._read_tags()
        self.text_room = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=False)
        if self.text_room < 1:
            raise BackendError(
                f"model '{config.name}': max_length {self.max_length} leaves no room for "
                "text after the special tokens; raise max_length"
            )
        self.stride = self.int_option("stride", min(128, self.text_room // 4), 0)
        if self.stride >= self.text_room:
            raise BackendError(
                f"model '{config.name}': options.stride {self.stride} must be smaller than "
                f"the {self.text_room} text tokens that fit in a window; lower it or raise "
                "max_length"
            )

    def _read_tags(self) -> list[str]:
        """Return the tag of each head output: the spec's `labels`, else config.id2label."""
        size = int(self.model.config.num_labels)
        if self.config.labels is not None:
            if len(self.config.labels) != size:
                raise BackendError(
                    f"model '{self.config.name}': the spec lists {len(self.config.labels)} "
                    f"labels but the token-classification head has {size} outputs"
                )
            tags = list(self.config.labels)
        else:
            id2label = getattr(self.model.config, "id2label", None) or {}
            tags = [str(id2label.get(index, id2label.get(str(index), ""))) for index in range(size)]

        if all(parse_tag(tag)[0] == "O" for tag in tags):
            raise BackendError(
                f"model '{self.config.name}': the head's labels ({', '.join(tags[:4])}...) "
                "contain no B-, I-, E-, M- or S- entity tags; list the tags in head order "
                "under `labels:` in the model's spec entry"
            )
        outside = [tag for tag in tags if parse_tag(tag)[0] == "O" and tag != "O"]
        if outside:
            logger.info("%s: labels read as outside an entity: %s", self.config.name, outside)
        return tags

    def _windows(self, index: int, text: str) -> list[TagWindow]:
        characters = list(text)
        # NOTE: byte-level BPE tokenizers (RoBERTa, GPT-2) accept pre-split words only when
        # loaded with add_prefix_space=True. Chinese NER checkpoints use BERT tokenizers.
        # verbose=False: a text over model_max_length is expected here, before windowing.
        whole = self.tokenizer(characters, is_split_into_words=True, verbose=False)
        if len(whole["input_ids"]) <= self.max_length:
            plan = [(0, len(characters))]
        else:
            counts = [0] * len(characters)
            for word in whole.word_ids():
                if word is not None:
                    counts[word] += 1
            try:
                plan = plan_windows(counts, self.text_room, self.stride)
            except ValueError as error:
                raise BackendError(
                    f"model '{self.config.name}': text {index}: {error}; raise max_length"
                ) from error

        names = [name for name in self.tokenizer.model_input_names if name in whole]
        windows = []
        for start, end in plan:
            if (start, end) == (0, len(characters)):
                encoded = whole
            else:
                encoded = self.tokenizer(characters[start:end], is_split_into_words=True)
            windows.append(
                TagWindow(
                    text=index,
                    start=start,
                    end=end,
                    encoding={name: encoded[name] for name in names},
                    first_tokens=first_tokens(encoded.word_ids()),
                )
            )
        return windows

    def tag(
        self, texts: Sequence[str], progress: Progress = NoProgress()
    ) -> list[list[EntitySpan]]:
        windows: list[TagWindow] = []
        for index, text in enumerate(texts):
            if text:
                windows.extend(self._windows(index, text))
            else:
                progress.advance(1)

        remaining = [0] * len(texts)
        for window in windows:
            remaining[window.text] += 1
        # Per character: ((context on its shorter side, -window start), tag) of the best window.
        chosen: list[list[tuple[tuple[int, int], str] | None]] = [
            [None] * len(text) for text in texts
        ]

        def step(batch: list[int]) -> None:
            tag_ids = self._tag_batch([windows[index] for index in batch])
            for index, ids in zip(batch, tag_ids):
                self._keep_best(windows[index], ids, chosen[windows[index].text])
                remaining[windows[index].text] -= 1
                if remaining[windows[index].text] == 0:
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

        results = []
        for text, picks in zip(texts, chosen):
            tags = [pick[1] if pick is not None else None for pick in picks]
            results.append(decode_entities(text, tags))
        return results

    def _tag_batch(self, windows: list[TagWindow]) -> list[list[int]]:
        """Return the argmax tag id of every token of each window."""
        inputs = self.inputs_on_device([window.encoding for window in windows])
        predicted = self.model(**inputs).logits.argmax(dim=-1).cpu()

        left_padded = self.tokenizer.padding_side == "left"
        width = predicted.shape[1]
        rows = []
        for row, window in enumerate(windows):
            length = len(window.encoding["input_ids"])
            first = width - length if left_padded else 0
            rows.append(predicted[row, first : first + length].tolist())
        return rows

    def _keep_best(
        self, window: TagWindow, tag_ids: list[int], picks: list[tuple[tuple[int, int], str] | None]
    ) -> None:
        """Record this window's tags for the characters that it gives the most context.

        Windows arrive in batch order, so a tie in context goes to the window that starts
        first, which keeps the result independent of batching.
        """
        for offset, token in window.first_tokens.items():
            character = window.start + offset
            rank = (min(character - window.start, window.end - 1 - character), -window.start)
            current = picks[character]
            if current is None or rank > current[0]:
                picks[character] = (rank, self.tags[tag_ids[token]])
