"""--clue-repeat and sampled generation: a stochastic case runs once per sampling seed and
reports the spread of its scores and its pass rate. A greedy case runs once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from tiny_models import FIXTURES

from harness.backends import BACKENDS
from harness.backends.base import (
    Backend,
    GenerationRequest,
    ModelConfig,
    NoProgress,
    Progress,
    Sampling,
)
from harness.backends.greedy import sample_token
from harness.backends.hf_causal import HFCausalLM
from harness.errors import SpecError
from harness.runner import CaseRunner
from harness.spec import load_spec

DATA_ROOT = FIXTURES / "clue"


def references() -> dict[str, str]:
    """Map each CMRC2018 fixture question to its first reference answer."""
    document = json.loads((DATA_ROOT / "cmrc2018" / "dev.json").read_text(encoding="utf-8"))
    return {
        question["question"]: question["answers"][0]["text"]
        for article in document["data"]
        for paragraph in article["paragraphs"]
        for question in paragraph["qas"]
    }


class SeededGenerator(Backend):
    """Answers the first `10 - 2 * (seed - 5)` questions right, the rest wrong.

    With sampling seeds 5, 6 and 7 that is 10, 8 and 6 of the 10 fixture questions.
    Greedy requests (no sampling) are all answered right. `calls` counts generate calls.
    """

    kind = "hf-causal"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config)
        self.answers = references()
        self.calls = 0

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress = NoProgress()
    ) -> list[str]:
        self.calls += 1
        outputs = []
        for index, request in enumerate(requests):
            question = request.prompt.rsplit("问题：", 1)[1].split("\n", 1)[0]
            right = 10 if request.sampling is None else 10 - 2 * (request.sampling.seed - 5)
            outputs.append(self.answers[question] if index < right else "不知道")
        progress.advance(len(requests))
        return outputs


SPEC = """
models:
  fake:
    backend: hf-causal
    path: fake-model
cases:
"""
SAMPLED = (
    "  - {task: cmrc2018, split: dev, model: fake, thresholds: {em: 70}, "
    "sampling: {temperature: 0.7, top_p: 0.9, seed: 5}}\n"
)
GREEDY = "  - {task: cmrc2018, split: dev, model: fake, thresholds: {em: 70}}\n"


def spec_case(folder: Path, case: str):
    path = folder / "spec.yaml"
    path.write_text(SPEC + case, encoding="utf-8")
    return load_spec(path).cases[0]


def fake_backend() -> SeededGenerator:
    return SeededGenerator(ModelConfig(name="fake", backend="hf-causal", path="fake-model"))


def test_repeats_report_spread(tmp_path):
    case = spec_case(tmp_path, SAMPLED)

    result = CaseRunner(DATA_ROOT, tmp_path / "out", repeats=3).run(case, fake_backend())

    assert result.repeats["seeds"] == [5, 6, 7]
    assert result.repeats["metrics"]["em"] == {
        "values": [100.0, 80.0, 60.0],
        "mean": 80.0,
        "min": 60.0,
        "max": 100.0,
        "stdev": 20.0,
    }
    assert result.repeats["passed"] == 2
    assert result.repeats["pass_rate"] == pytest.approx(2 / 3)
    assert result.failures == ["repeat 2 (seed 7): em 60.0000 < threshold 70.0000"]
    assert result.metrics["em"] == 100.0


def test_repeat_predictions_kept_apart(tmp_path):
    case = spec_case(tmp_path, SAMPLED)

    result = CaseRunner(DATA_ROOT, tmp_path / "out", repeats=2).run(case, fake_backend())

    assert Path(result.predictions_file).name == "cmrc2018-dev-fake.jsonl"
    assert [Path(path).name for path in result.repeats["predictions_files"]] == [
        "cmrc2018-dev-fake.repeat1.jsonl"
    ]


def test_greedy_case_runs_once(tmp_path):
    case = spec_case(tmp_path, GREEDY)
    backend = fake_backend()

    result = CaseRunner(DATA_ROOT, tmp_path / "out", repeats=3).run(case, backend)

    assert backend.calls == 1
    assert result.repeats is None
    assert result.passed


def test_sampling_needs_positive_temperature(tmp_path):
    case = "  - {task: cmrc2018, split: dev, model: fake, sampling: {temperature: 0}}\n"

    with pytest.raises(SpecError, match=r"sampling\.temperature: expected a number > 0"):
        spec_case(tmp_path, case)


def test_sampling_seed_defaults_to_case_seed(tmp_path):
    case = "  - {task: cmrc2018, split: dev, model: fake, seed: 9, sampling: {temperature: 1}}\n"

    assert spec_case(tmp_path, case).options["sampling"] == {
        "temperature": 1.0,
        "top_p": 1.0,
        "seed": 9,
    }


def test_sample_token_small_top_p_is_argmax():
    logits = torch.tensor([0.1, 2.0, 1.9, -1.0])
    sampling = Sampling(temperature=5.0, top_p=0.01, seed=0)
    generator = torch.Generator().manual_seed(0)

    tokens = {sample_token(logits, sampling, generator) for _ in range(20)}

    assert tokens == {1}


def test_sample_token_follows_seed():
    logits = torch.zeros(50)
    sampling = Sampling(temperature=1.0)

    def draw(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return [sample_token(logits, sampling, generator) for _ in range(10)]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_sampled_generation_repeats_by_seed(llama_dir):
    backend = HFCausalLM(
        ModelConfig(name="tiny", backend="hf-causal", path=str(llama_dir), device="cpu")
    )

    def generate(seed: int) -> list[str]:
        sampling = Sampling(temperature=1.5, seed=seed)
        requests = [GenerationRequest(prompt, 8, (), sampling) for prompt in ("北京", "上海银行")]
        return backend.generate(requests)

    assert generate(1) == generate(1)
    assert generate(1) != generate(2)


def test_plugin_prints_repeat_spread(pytester, monkeypatch):
    monkeypatch.setitem(BACKENDS, "hf-causal", f"{SeededGenerator.__module__}:SeededGenerator")
    pytester.makepyfile(
        test_evals="""
import pytest
from harness.plugin import assert_thresholds

@pytest.mark.clue_spec("clue.yaml")
def test_clue(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
"""
    )
    (pytester.path / "clue.yaml").write_text(f"data_root: {DATA_ROOT}\n" + SPEC + SAMPLED)

    outcome = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--clue-output=out", "--clue-repeat=3"
    )

    outcome.assert_outcomes(failed=1)
    outcome.stdout.fnmatch_lines(
        [
            "cmrc2018-dev-fake: 3 repeats, em mean 80.0000 (min 60.0000, max 100.0000, "
            "stdev 20.0000), passed 2 of 3 (67%)"
        ]
    )
