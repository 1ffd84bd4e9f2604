"""Cases for a fine-tuned OCNLI classifier; see finetuned.yaml for how to make the model."""

import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("finetuned.yaml")
def test_finetuned(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
