"""Fake models and a one-case run for the prediction cache tests.

Run as a script, it evaluates one AFQMC case through the cache with a backend that sleeps
before each chunk, so a test can kill it with SIGKILL part way through:

    python tests/cache_helpers.py CACHE_DIR DATA_ROOT OUTPUT_DIR MODEL_DIR SLEEP_SECONDS
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.backends.base import (
    Backend,
    ChoiceRequest,
    ChoiceScores,
    ModelConfig,
    NoProgress,
    Progress,
)
from harness.cache import PredictionCache
from harness.results import CaseResult
from harness.runner import CaseRunner
from harness.spec import CaseConfig

CHUNK_SIZE = 4


def score(model: str, context: str, continuation: str) -> float:
    """Return a log-likelihood that depends on the model's name and the text, and whose
    float has all 53 bits of mantissa in use."""
    digest = hashlib.sha256(f"{model}\0{context}\0{continuation}".encode()).digest()
    return -int.from_bytes(digest[:8], "big") / 2**61


class CountingBackend(Backend):
    """A causal LM stand-in that records every call and may sleep before each one."""

    kind = "hf-causal"

    def __init__(self, config: ModelConfig, *, sleep: float = 0.0, label: str = "a") -> None:
        super().__init__(config)
        self.sleep = sleep
        self.label = label
        self.calls: list[list] = []

    @property
    def requests(self) -> list:
        return [request for call in self.calls for request in call]

    def loglikelihood(
        self, requests: Sequence[ChoiceRequest], progress: Progress = NoProgress()
    ) -> list[ChoiceScores]:
        time.sleep(self.sleep)
        self.calls.append(list(requests))
        results = []
        for request in requests:
            values = tuple(
                score(self.label, request.context, word) for word in request.continuations
            )
            results.append(ChoiceScores(values, (1,) * len(values)))
        progress.advance(len(requests))
        return results

    @property
    def head_labels(self) -> list[str]:
        return ["0", "1"]

    def classify(
        self, texts: Sequence[tuple[str, str | None]], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        self.calls.append(list(texts))
        return [
            [score(self.label, first, "0"), score(self.label, first, "1")] for first, _ in texts
        ]


def model_config(folder: Path, **overrides) -> ModelConfig:
    values = {"name": "fake", "backend": "hf-causal", "path": str(folder), "device": "cpu"}
    return ModelConfig(**{**values, **overrides})


def make_model_folder(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}\n', encoding="utf-8")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def afqmc_case(spec_folder: Path, **overrides) -> CaseConfig:
    values = {
        "id": "afqmc-dev-fake",
        "task": "afqmc",
        "split": "dev",
        "model": "fake",
        "method": "loglikelihood",
        "spec_path": str(spec_folder / "clue.yaml"),
        "tier": "full",
    }
    return CaseConfig(**{**values, **overrides})


def run_case(
    cache_dir: Path | None,
    data_root: Path,
    output_dir: Path,
    case: CaseConfig,
    config: ModelConfig,
    backend: Backend,
) -> tuple[CaseResult, int]:
    """Evaluate `case` through the cache (none when `cache_dir` is None); return the result
    and how many times the model was loaded."""
    cache = None
    if cache_dir is not None:
        cache = PredictionCache(cache_dir, cache_dir.parent / "model-cache", chunk_size=CHUNK_SIZE)
    loads = []

    def load() -> Backend:
        loads.append(1)
        return backend

    runner = CaseRunner(data_root, output_dir, full_tier=True, cache=cache)
    result = runner.run_model(case, config, load)
    return result, len(loads)


def main(arguments: list[str]) -> None:
    cache_dir, data_root, output_dir, model_dir = (Path(item) for item in arguments[:4])
    config = model_config(model_dir)
    backend = CountingBackend(config, sleep=float(arguments[4]))
    cache = PredictionCache(cache_dir, cache_dir.parent / "model-cache", chunk_size=2)
    runner = CaseRunner(data_root, output_dir, full_tier=True, cache=cache)
    runner.run_model(afqmc_case(data_root), config, lambda: backend)


if __name__ == "__main__":
    main(sys.argv[1:])
