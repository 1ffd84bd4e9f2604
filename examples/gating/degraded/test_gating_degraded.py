"""The cases of gating.yaml in this folder: a worse model gated on the same baseline."""

import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("gating.yaml")
def test_gating(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
