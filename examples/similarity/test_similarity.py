"""m3e-small and RoFormer-Sim on STS-B zh and LCQMC; each case of similarity.yaml is one test."""

import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("similarity.yaml")
def test_similarity_examples(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
