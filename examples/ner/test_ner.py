"""Cases for a fine-tuned CLUENER2020 tagger; see ner.yaml for how to make the model."""

import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("ner.yaml")
def test_ner(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
