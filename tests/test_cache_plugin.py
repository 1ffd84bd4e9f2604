"""The prediction cache through the pytest plugin: reruns, --clue-no-cache, --clue-clear-cache.

Each run is a pytester subprocess on the tiny random Llama and the fixture data, with the
cache in a folder of the test's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import FIXTURES

TEST_MODULE = """
import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("clue.yaml")
def test_clue(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
"""

CASE_IDS = ["afqmc-dev-llama", "tnews-dev-llama"]
SMOKE_SIZE = 6


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, llama_dir: Path):
    monkeypatch.delenv("CLUE_DATA_DIR", raising=False)
    pytester.makepyfile(test_evals=TEST_MODULE)
    spec = f"""
data_root: {FIXTURES / "clue"}
defaults:
  smoke_size: {SMOKE_SIZE}
models:
  llama:
    backend: hf-causal
    path: {llama_dir}
    device: cpu
cases:
  - {{task: afqmc, split: dev, model: llama}}
  - {{task: tnews, split: dev, model: llama}}
"""
    (pytester.path / "clue.yaml").write_text(spec, encoding="utf-8")
    return pytester


def run(suite: pytest.Pytester, *options: str) -> dict:
    """Run the suite with the cache under ./cache; return report.json's cases by id."""
    result = suite.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--clue-threads=1",
        "--clue-output=out",
        "--clue-prediction-cache=cache",
        *options,
    )
    result.assert_outcomes(passed=len(CASE_IDS))
    report = json.loads((suite.path / "out" / "report.json").read_text(encoding="utf-8"))
    return {case["case_id"]: case for case in report["cases"]}


def cache_bytes(suite: pytest.Pytester) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((suite.path / "cache").glob("*.jsonl"))}


def test_rerun_served_then_bypassed(suite):
    first = run(suite)
    stored = cache_bytes(suite)
    second = run(suite)
    bypassed = run(suite, "--clue-no-cache")

    for case_id in CASE_IDS:
        assert first[case_id]["n_cached"] == 0, case_id
        assert second[case_id]["n_cached"] == SMOKE_SIZE, case_id
        assert second[case_id]["load_seconds"] == 0.0, case_id
        assert second[case_id]["metrics"] == first[case_id]["metrics"], case_id
        assert bypassed[case_id]["n_cached"] == 0, case_id
        assert bypassed[case_id]["load_seconds"] > 0.0, case_id
        assert bypassed[case_id]["metrics"] == first[case_id]["metrics"], case_id
    assert len(stored) == len(CASE_IDS)
    assert cache_bytes(suite) == stored


def test_clear_cache_before_workers(suite):
    stale = suite.path / "cache" / "afqmc-dev-stale.jsonl"
    stale.parent.mkdir()
    stale.write_text('{"cache_key": {}}\n', encoding="utf-8")

    cleared = run(suite, "-n", "2", "--clue-clear-cache")

    files = cache_bytes(suite)
    assert not stale.exists()
    assert len(files) == len(CASE_IDS)
    for case_id in CASE_IDS:
        assert cleared[case_id]["n_cached"] == 0, case_id
    for name, data in files.items():
        assert len(data.decode("utf-8").splitlines()) == 1 + SMOKE_SIZE, name
