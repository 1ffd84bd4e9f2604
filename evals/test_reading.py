"""Reading comprehension and idiom cases; each case of reading.yaml is one test."""

import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("reading.yaml")
def test_reading(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
