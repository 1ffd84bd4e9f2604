"""A model behind an OpenAI-compatible HTTP API (llama-cpp-python's server, vLLM, hosted APIs).

Log-likelihood uses the legacy completions endpoint: the prompt is context + continuation,
sent with `echo: true, logprobs: 1, max_tokens: 1, temperature: 0`, and the server returns
the log-probability and character offset (`text_offset`) of every prompt token. The first
prompt token has no log-probability (null). `max_tokens` is 1 because llama-cpp-python's
server reads 0 as "generate until the context is full"; the generated token is dropped. One
request is sent per (context, continuation) pair, because that server answers a list of
prompts with HTTP 500. A response whose values are shifted by one position (see
`score_continuation`) is rejected.

The server tokenises the joined text, so one token may cover the end of the context and the
start of the continuation. Such a straddling token is counted as the continuation's first
token: its log-probability is added to the continuation's sum and to its token count, and
the number of straddling continuations is logged as a warning after each call. The
hf-causal backend tokenises the two parts separately, so there no token straddles, and the
two backends can disagree on such choices.

Generation is greedy (`temperature: 0`) through `/chat/completions` (the prompt as one user
message) or `/completions`, set by the model's `endpoint`. The first four stop strings go
to the server, because OpenAI's API accepts at most four, and all of them are applied again
to the returned text.

Requests run concurrently, at most `concurrency` at a time, with a timeout per attempt and
retries with backoff (harness.backends.http_retry). After the last failed attempt the call
raises BackendError, and no partial results are returned.

The API key is read from the environment variable that `api_key_env` names and sent as
`Authorization: Bearer KEY`. It appears in no identity, log message or error: server text
quoted in messages has the key replaced by "[API key]".
"""

from __future__ import annotations

import logging
import os
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
from harness.backends.http_retry import RetryingPoster
from harness.backends.openai_wire import (
    ENV_NAME_PATTERN,
    GENERATION_ENDPOINTS,
    MAX_SERVER_STOP_STRINGS,
    ContinuationScore,
    NoPromptLogprobs,
    ShiftedLogprobs,
    base_url_problem,
    cut_at_stop,
    score_continuation,
)
from harness.errors import BackendError

logger = logging.getLogger(__name__)


class OpenAICompatible(Backend):
    kind = "openai"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config)
        if not config.base_url:
            raise BackendError(f"model '{config.name}': backend 'openai' needs `base_url`")
        problem = base_url_problem(config.base_url)
        if problem:
            raise BackendError(f"model '{config.name}': invalid base_url: {problem}")
        if not config.path:
            raise BackendError(
                f"model '{config.name}': backend 'openai' needs `path`, the served model name"
            )
        if config.endpoint not in GENERATION_ENDPOINTS:
            raise BackendError(
                f"model '{config.name}': endpoint {config.endpoint!r} is not one of "
                f"{', '.join(GENERATION_ENDPOINTS)}"
            )

        api_key = self._read_api_key(config)
        self.root = config.base_url.rstrip("/")
        self.poster = RetryingPoster(
            concurrency=config.concurrency,
            timeout=config.timeout,
            max_attempts=config.max_attempts,
            backoff=config.backoff,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            secret=api_key,
        )
        # How many continuations of the last loglikelihood call began with a straddling token.
        self.straddled = 0

    @staticmethod
    def _read_api_key(config: ModelConfig) -> str | None:
        if config.api_key_env is None:
            return None
        if not ENV_NAME_PATTERN.match(config.api_key_env):
            raise BackendError(
                f"model '{config.name}': api_key_env must name an environment variable "
                "(letters, digits and '_'), not hold the key itself"
            )
        key = os.environ.get(config.api_key_env, "")
        if not key:
            raise BackendError(
                f"model '{config.name}': environment variable {config.api_key_env} (named by "
                "api_key_env) is not set or empty; export the API key in it"
            )
        return key

    @property
    def identity(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "backend": self.kind,
            "source": self.config.path,
            "base_url": self.root,
            "served_model": self.config.path,
            "endpoint": self.config.endpoint,
            "api_key_env": self.config.api_key_env,
        }

    # Scoring and generation -----------------------------------------------------------

    def loglikelihood(
        self, requests: Sequence[ChoiceRequest], progress: Progress = NoProgress()
    ) -> list[ChoiceScores]:
        url = f"{self.root}/completions"
        pairs = [
            (example, request.context, continuation)
            for example, request in enumerate(requests)
            for continuation in request.continuations
        ]
        payloads = [
            {
                "model": self.config.path,
                "prompt": context + continuation,
                "max_tokens": 1,
                "temperature": 0,
                "echo": True,
                "logprobs": 1,
            }
            for _, context, continuation in pairs
        ]
        labels = self._labels(requests, lambda request: len(request.continuations))
        responses = self.poster.post_all(
            url, payloads, labels, [example for example, _, _ in pairs], progress
        )

        scores = []
        for (_, context, continuation), label, response in zip(pairs, labels, responses):
            scores.append(self._score(url, label, response, context, continuation))
        self.straddled = sum(1 for score in scores if score.straddled)
        if self.straddled:
            logger.warning(
                "%s: %d of %d continuations start inside a token that also covers the end of "
                "the context; that token was counted in the continuation",
                self.case_label or self.config.name,
                self.straddled,
                len(scores),
            )

        results = []
        position = 0
        for request in requests:
            chunk = scores[position : position + len(request.continuations)]
            position += len(request.continuations)
            results.append(
                ChoiceScores(
                    tuple(score.loglikelihood for score in chunk),
                    tuple(score.tokens for score in chunk),
                )
            )
        return results

    def _score(
        self, url: str, label: str, response: dict, context: str, continuation: str
    ) -> ContinuationScore:
        choice = self._first_choice(url, label, response)
        usage = response.get("usage")
        generated = usage.get("completion_tokens") if isinstance(usage, dict) else None
        try:
            return score_continuation(
                choice, context, continuation, generated if isinstance(generated, int) else None
            )
        except NoPromptLogprobs as error:
            raise self.poster.fail(
                f"{label}: the server cannot score choices: POST {url} returned no prompt "
                f"log-probabilities for echo=true, logprobs=1 ({error}). Chat-only servers do "
                "not return them. Use a server whose "
                "completions endpoint echoes prompt log-probabilities (llama-cpp-python's "
                "server, vLLM), or a method that generates"
            ) from None
        except ShiftedLogprobs as error:
            raise self.poster.fail(
                f"{label}: POST {url} returned prompt log-probabilities shifted by one token "
                f"({error}). llama-cpp-python does this for models whose tokenizer adds no BOS "
                "token. Start llama_cpp.server with --kv_overrides "
                "tokenizer.ggml.add_bos_token=bool:true, or serve a model that adds a BOS token"
            ) from None
        except (ValueError, TypeError) as error:
            raise self.poster.fail(
                f"{label}: POST {url} returned unusable logprobs: {error}"
            ) from None

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress = NoProgress()
    ) -> list[str]:
        chat = self.config.endpoint == "chat"
        url = f"{self.root}/chat/completions" if chat else f"{self.root}/completions"
        payloads = []
        for request in requests:
            if request.max_new_tokens < 1:
                raise BackendError(
                    f"model '{self.config.name}': max_new_tokens must be at least 1, found "
                    f"{request.max_new_tokens} (llama-cpp-python's server reads 0 as "
                    "'until the context is full')"
                )
            payload: dict[str, Any] = {
                "model": self.config.path,
                "max_tokens": request.max_new_tokens,
                "temperature": 0,
            }
            if request.sampling is not None:
                # NOTE: whether `seed` makes sampled outputs repeatable depends on the server.
                payload["temperature"] = request.sampling.temperature
                payload["top_p"] = request.sampling.top_p
                payload["seed"] = request.sampling.seed
            if chat:
                payload["messages"] = [{"role": "user", "content": request.prompt}]
            else:
                payload["prompt"] = request.prompt
            if request.stop:
                payload["stop"] = list(request.stop[:MAX_SERVER_STOP_STRINGS])
            payloads.append(payload)

        labels = self._labels(requests, lambda request: 1)
        responses = self.poster.post_all(
            url, payloads, labels, list(range(len(requests))), progress
        )

        texts = []
        for request, label, response in zip(requests, labels, responses):
            choice = self._first_choice(url, label, response)
            if chat:
                message = choice.get("message")
                text = message.get("content") if isinstance(message, dict) else None
            else:
                text = choice.get("text")
            if not isinstance(text, str):
                field_name = "message.content" if chat else "text"
                raise self.poster.fail(
                    f"{label}: POST {url} returned a choice without '{field_name}'"
                )
            texts.append(cut_at_stop(text, request.stop))
        return texts

    def _labels(self, requests: Sequence[Any], per_request) -> list[str]:
        """Name each HTTP request for messages: case, example index and choice index."""
        prefix = f"case {self.case_label}, " if self.case_label else f"model {self.config.name}, "
        labels = []
        for example, request in enumerate(requests):
            count = per_request(request)
            for choice in range(count):
                suffix = f", choice {choice}" if count > 1 else ""
                labels.append(f"{prefix}example {example}{suffix}")
        return labels

    def _first_choice(self, url: str, label: str, response: dict) -> dict:
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.poster.fail(f"{label}: POST {url} returned a body without 'choices'")
        return choices[0]
