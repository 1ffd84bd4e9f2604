"""Greedy decoding for a batch of left-padded prompts, written as a loop over forward passes.

The loop takes the argmax of each step's logits and nothing else. `model.generate` would
also apply whatever the checkpoint's generation_config.json sets (repetition penalty,
sampling flags, extra stop rules), so its output would depend on a file that the spec does
not show. Position ids come from the attention mask, as in the log-likelihood code, so a
prompt decodes to the same tokens alone or inside a padded batch, up to float rounding.

A row with `sampling` set draws each token from the softmax of its logits divided by the
temperature, restricted to the smallest set of most likely tokens whose mass reaches
`top_p`. Each such row has its own torch generator seeded with `seed`, so its text does not
depend on which rows share its batch.

Stop strings are matched on the decoded text after every step, because a stop string can
end in the middle of a token or span several tokens. A row stops at the first stop string,
at an end-of-sequence token, or after its own `max_new_tokens`. Rows that are done keep
feeding the pad token until the whole batch is done, and their outputs are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DecodingRow:
    """One prompt's token ids, its limits, and the tokens generated so far."""

    prompt: list[int]
    max_new_tokens: int
    stop: tuple[str, ...]
    tokens: list[int] = field(default_factory=list)
    text: str | None = None
    sampling: Any = None
    seed: int = 0

    @property
    def done(self) -> bool:
        return self.text is not None


def find_stop(text: str, stops: Sequence[str]) -> int:
    """Return where the earliest stop string starts in `text`, or -1 if none occurs.

    Empty stop strings are ignored.

    >>> find_stop("答：相同。\\n问：", ("\\n", "。"))
    4
    >>> find_stop("相同", ("\\n",))
    -1
    """
    positions = [text.find(stop) for stop in stops if stop]
    found = [position for position in positions if position >= 0]
    return min(found) if found else -1


def cache_of(output: Any) -> Any:
    """Return the key/value cache of a forward pass (transformers 5.x names it `cache`)."""
    cache = getattr(output, "cache", None)
    if cache is not None:
        return cache
    return output.past_key_values


def advance_row(
    row: DecodingRow, token: int, eos_ids: frozenset[int], decode: Callable[[list[int]], str]
) -> None:
    """Append `token` to a row that is not done, and finish the row when a limit is reached."""
    if token in eos_ids:
        row.text = decode(row.tokens)
        return

    row.tokens.append(token)
    if row.stop:
        text = decode(row.tokens)
        cut = find_stop(text, row.stop)
        if cut >= 0:
            row.text = text[:cut]
            return
    if len(row.tokens) >= row.max_new_tokens:
        row.text = decode(row.tokens)


def sample_token(logits: Any, sampling: Any, generator: Any) -> int:
    """Draw one token id from a 1-D row of logits with temperature and top-p sampling."""
    import torch

    probabilities = torch.softmax(logits.float().cpu() / sampling.temperature, dim=-1)
    ordered, order = probabilities.sort(descending=True)
    if sampling.top_p < 1.0:
        # Keep each token whose more likely predecessors hold less than top_p of the mass,
        # so the most likely token is always kept.
        in_nucleus = (ordered.cumsum(-1) - ordered) < sampling.top_p
        ordered = ordered * in_nucleus
    choice = torch.multinomial(ordered, 1, generator=generator)
    return int(order[choice].item())


def decode_greedy(
    model: Any,
    rows: list[DecodingRow],
    *,
    pad_id: int,
    eos_ids: frozenset[int],
    decode: Callable[[list[int]], str],
    device: str,
    cache_argument: str,
) -> None:
    """Generate greedily for every row of one batch, and set each row's `text`.

    `decode` turns generated token ids into text. `cache_argument` is the name of the
    forward pass's key/value cache argument (`cache` or `past_key_values`).
    """
    import torch

    for row in rows:
        if row.max_new_tokens < 1:
            row.text = ""
    generators = {
        index: torch.Generator().manual_seed(row.seed)
        for index, row in enumerate(rows)
        if row.sampling is not None
    }
    if all(row.done for row in rows):
        return

    width = max(len(row.prompt) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, width - len(row.prompt) :] = torch.tensor(row.prompt)
        mask[index, width - len(row.prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    next_positions = torch.tensor([len(row.prompt) for row in rows], dtype=torch.long)

    output = model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        logits_to_keep=1,
    )
    step = 0
    while True:
        logits = output.logits[:, -1, :]
        chosen = logits.argmax(dim=-1).tolist()
        for index, generator in generators.items():
            if not rows[index].done:
                chosen[index] = sample_token(logits[index], rows[index].sampling, generator)
        for row, token in zip(rows, chosen):
            if not row.done:
                advance_row(row, int(token), eos_ids, decode)
        if all(row.done for row in rows):
            return

        fed = [row.tokens[-1] if not row.done else pad_id for row in rows]
        mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
        output = model(
            input_ids=torch.tensor(fed, dtype=torch.long).unsqueeze(1).to(device),
            attention_mask=mask.to(device),
            position_ids=(next_positions + step).unsqueeze(1).to(device),
            cache_position=torch.tensor([width + step], device=device),
            use_cache=True,
            **{cache_argument: cache_of(output)},
        )
        step += 1
