"""CLUE and FewCLUE classification cases; each case of clue.yaml is one test."""

import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("clue.yaml")
def test_clue(clue_case, clue_evaluate):
    result = clue_evaluate(clue_case)
    assert_thresholds(result)
