"""Gated cases of gating.yaml; see that file for the commands."""

import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("gating.yaml")
def test_gating(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
