"""A backend whose outputs a test scripts with a function, for the ChID, C3 and NER tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.backends.base import (
    Backend,
    ChoiceRequest,
    ChoiceScores,
    EntitySpan,
    GenerationRequest,
    ModelConfig,
    MultipleChoiceRequest,
    NoProgress,
    Progress,
)


class ScriptedBackend(Backend):
    """A backend that returns `answer(request)` for every request and keeps the requests.

    Log-likelihood requests are scored continuation by continuation: `answer(context,
    continuation)` gives the score, and every token count is 1.
    """

    def __init__(self, kind: str, answer: Callable) -> None:
        super().__init__(ModelConfig(name="fake", backend=kind, path="fake"))
        self.kind = kind
        self.answer = answer
        self.requests: list = []

    def loglikelihood(
        self, requests: Sequence[ChoiceRequest], progress: Progress = NoProgress()
    ) -> list[ChoiceScores]:
        self.requests = list(requests)
        results = []
        for request in requests:
            scores = tuple(
                float(self.answer(request.context, text)) for text in request.continuations
            )
            results.append(ChoiceScores(scores, (1,) * len(scores)))
        progress.advance(len(requests))
        return results

    def choose(
        self, requests: Sequence[MultipleChoiceRequest], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        self.requests = list(requests)
        return [list(self.answer(request)) for request in requests]

    def tag(
        self, texts: Sequence[str], progress: Progress = NoProgress()
    ) -> list[list[EntitySpan]]:
        self.requests = list(texts)
        return [list(self.answer(text)) for text in texts]

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress = NoProgress()
    ) -> list[str]:
        self.requests = list(requests)
        return [self.answer(request) for request in requests]
