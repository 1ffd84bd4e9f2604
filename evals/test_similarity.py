"""Similarity checks of an embedding model; each case of similarity.yaml is one test."""

import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("similarity.yaml")
def test_similarity(clue_case, clue_evaluate):
    result = clue_evaluate(clue_case)
    assert_thresholds(result)
