"""The cases of ../gating.yaml after a worse change; see degraded.yaml."""

import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("degraded.yaml")
def test_degraded(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
