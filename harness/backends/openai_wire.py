"""The parts of the OpenAI-compatible wire format that the openai backend interprets.

A legacy completion with `echo: true, logprobs: N` returns the parallel lists `tokens`,
`token_logprobs` and `text_offset`. They cover the prompt tokens and then the generated
tokens, and the first prompt token's log-probability is null. This module turns them into
a continuation's summed log-likelihood, and checks base URLs and stop strings. It makes no
HTTP requests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

GENERATION_ENDPOINTS = ("completions", "chat")
MAX_SERVER_STOP_STRINGS = 4
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def base_url_problem(url: str) -> str | None:
    """Describe what is wrong with an API base URL, or return None when it is usable.

    The description never repeats the URL, because a URL with credentials in it is a secret.

    >>> base_url_problem("http://127.0.0.1:8080/v1") is None
    True
    >>> base_url_problem("ftp://example.org/v1")
    "the scheme must be 'http' or 'https'"
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "the scheme must be 'http' or 'https'"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username or parts.password:
        return "credentials do not belong in the URL; name an environment variable in api_key_env"
    if parts.query or parts.fragment:
        return "the URL must not have a query or fragment"
    return None


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut text at the earliest occurrence of any stop string.

    >>> cut_at_stop("yes. Next question", (".", "Next"))
    'yes'
    """
    end = len(text)
    for marker in stop:
        found = text.find(marker)
        if marker and found != -1:
            end = min(end, found)
    return text[:end]


@dataclass(frozen=True)
class ContinuationScore:
    """A continuation's summed log-probability, its token count, and whether its first
    token also covers the end of the context."""

    loglikelihood: float
    tokens: int
    straddled: bool


class NoPromptLogprobs(ValueError):
    """The completions response carries no log-probabilities for the prompt tokens."""


class ShiftedLogprobs(ValueError):
    """The echoed log-probabilities belong to the wrong positions (see score_continuation)."""


def score_continuation(
    choice: dict[str, Any], context: str, continuation: str, generated_tokens: int | None = None
) -> ContinuationScore:
    """Sum the echoed log-probabilities of the continuation's tokens in one completion choice.

    Token i covers the characters from its `text_offset` up to the next token's offset.
    It belongs to the continuation when it starts at or after len(context), or when it
    starts before and ends after it (it straddles the boundary). Tokens at or after the
    end of the prompt are generated, not echoed, and are ignored.

    `generated_tokens` is the response's `usage.completion_tokens`. When it is positive but
    no entry lies past the prompt, the entries are shifted by one position, and
    ShiftedLogprobs is raised because every sum would be wrong. llama-cpp-python 0.3.36 does
    this for a model whose tokenizer adds no BOS token: it reports each prompt token's
    log-probability under the distribution that follows that same token.

    NOTE: llama-cpp-python 0.3 computes `text_offset` from the decoded prefix with
    incomplete UTF-8 dropped. A byte-level token that carries the last bytes of a context
    character and the first bytes of a continuation character therefore ends exactly at
    len(context) and is counted for the context. SmolLM2's and gemma-3's tokenizers split
    "答：" from the CJK verbalizers that follow it, so CLUE's default prompts avoid this.

    >>> choice = {"logprobs": {"tokens": ["a", "bc", "d", "!"],
    ...     "token_logprobs": [None, -1.25, -1.0, -0.5], "text_offset": [0, 1, 3, 4]}}
    >>> score_continuation(choice, "ab", "cd")
    ContinuationScore(loglikelihood=-2.25, tokens=2, straddled=True)
    """
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        raise NoPromptLogprobs("the choice has no 'logprobs'")
    values = logprobs.get("token_logprobs")
    offsets = logprobs.get("text_offset")
    if not isinstance(values, list) or not isinstance(offsets, list) or len(values) != len(offsets):
        raise NoPromptLogprobs("'token_logprobs' and 'text_offset' are missing or differ in length")

    start = len(context)
    prompt_end = start + len(continuation)
    total = 0.0
    count = 0
    straddled = False
    for index, (offset, value) in enumerate(zip(offsets, values)):
        if offset >= prompt_end:
            break
        end = offsets[index + 1] if index + 1 < len(offsets) else prompt_end
        if offset < start and end <= start:
            continue
        if value is None:
            raise ValueError(
                f"prompt token {index} has no log-probability; a continuation needs a "
                "non-empty context, because the server gives none for the first token"
            )
        straddled = straddled or offset < start
        total += float(value)
        count += 1

    if count == 0:
        raise NoPromptLogprobs("no echoed prompt token falls inside the continuation")
    if generated_tokens and all(offset < prompt_end for offset in offsets):
        raise ShiftedLogprobs(
            f"usage.completion_tokens is {generated_tokens}, but no log-probability entry "
            "follows the prompt"
        )
    return ContinuationScore(total, count, straddled)
