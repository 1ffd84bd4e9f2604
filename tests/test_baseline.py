"""Baseline files through the plugin: --update-baseline records scores, per-example outcomes
and provenance, refuses while cases fail unless --force-baseline, and later runs are gated
on it. The model is the scripted AFQMC classifier of fake_classifier, run in process."""

from __future__ import annotations

import datetime
import hashlib
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from fake_classifier import ScriptedClassifier, write_afqmc

from harness import __version__
from harness.backends import BACKENDS
from harness.baseline import describe_change, id_difference, render_baseline
from harness.provenance import folder_weights_sha256

TEST_MODULE = """
import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("clue.yaml")
def test_clue(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
"""

SPEC = """
data_root: data
baseline: baselines/clue.json
models:
  fake:
    backend: hf-classifier
    path: weights
    options: {{wrong: {wrong}}}
cases:
  - id: afqmc-gated
    task: afqmc
    split: dev
    model: fake
    gate:
      - {{kind: no_regression, metric: accuracy, alpha: 0.05}}
      - {{kind: lower_bound, metric: accuracy, threshold: 0.5}}
  - id: afqmc-floor
    task: afqmc
    split: dev
    model: fake
    limit: 60
    thresholds: {{accuracy: {floor}}}
"""
# The baseline model gets rows 80-99 wrong (80% right). The degraded one gets rows 0-9
# wrong too and rows 80-81 right: 10 examples right only in the baseline, 2 only in the
# new run, so McNemar's p is 0.0386.
BASELINE_WRONG = list(range(80, 100))
DEGRADED_WRONG = [*range(10), *range(82, 100)]
WEIGHTS = b"not a real model, but bytes to hash"


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setitem(
        BACKENDS, "hf-classifier", f"{ScriptedClassifier.__module__}:ScriptedClassifier"
    )
    monkeypatch.delenv("CLUE_DATA_DIR", raising=False)
    pytester.makepyfile(test_evals=TEST_MODULE)
    pytester.makefile(".ini", pytest="[pytest]\njunit_family = xunit1\n")
    write_afqmc(pytester.path / "data", 100)
    (pytester.path / "weights").mkdir()
    (pytester.path / "weights" / "model.safetensors").write_bytes(WEIGHTS)
    return pytester


def run(suite: pytest.Pytester, wrong: list[int], *options: str, floor: float = 0.5):
    spec = SPEC.format(wrong=json.dumps(wrong), floor=floor)
    (suite.path / "clue.yaml").write_text(spec, encoding="utf-8")
    return suite.runpytest_inprocess("-p", "no:cacheprovider", "--clue-output=out", *options)


def baseline_path(suite: pytest.Pytester) -> Path:
    return suite.path / "baselines" / "clue.json"


def read_baseline(suite: pytest.Pytester) -> dict:
    return json.loads(baseline_path(suite).read_text(encoding="utf-8"))


def test_update_writes_provenance(suite):
    outcome = run(suite, BASELINE_WRONG, "--update-baseline")

    outcome.assert_outcomes(passed=2)
    entry = read_baseline(suite)["cases"]["afqmc-gated"]
    expected_weights = hashlib.sha256(b"model.safetensors\0" + WEIGHTS).hexdigest()
    assert entry["provenance"] == {
        "model": "fake",
        "backend": "hf-classifier",
        "source": "weights",
        "revision": None,
        "weights_sha256": expected_weights,
        "dtype": "float32",
        "batch_size": "auto",
        "prompt_sha256": None,
        "harness_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
    }
    data_file = suite.path / "data" / "afqmc" / "dev.json"
    assert entry["data_sha256"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert entry["metrics"]["accuracy"] == 0.8
    assert entry["per_example"]["columns"]["correct"] == "1" * 80 + "0" * 20
    assert entry["per_example"]["ids"] == [str(row) for row in range(100)]
    assert baseline_path(suite).stat().st_mode & 0o777 == 0o644
    outcome.stdout.fnmatch_lines(
        [
            f"baseline {baseline_path(suite)}: written",
            "  afqmc-gated: added (accuracy 0.8000, 100 examples)",
            "  afqmc-floor: added (accuracy 0.8333, 60 examples)",
        ]
    )


def test_same_model_passes_gate(suite):
    run(suite, BASELINE_WRONG, "--update-baseline")

    outcome = run(suite, BASELINE_WRONG)

    outcome.assert_outcomes(passed=2)
    outcome.stdout.re_match_lines(
        [
            r"afqmc-gated +accuracy +0\.8000 +\[0\.7112, 0\.8666\] +no_regression 0 +0\.8000 +\+0\.0000 +1\.0000 +PASS +100"
        ]
    )


def test_degraded_model_fails_gate(suite):
    run(suite, BASELINE_WRONG, "--update-baseline")

    outcome = run(suite, DEGRADED_WRONG, "--junitxml=junit.xml")

    outcome.assert_outcomes(passed=1, failed=1)
    outcome.stdout.fnmatch_lines(
        ["*afqmc-gated: accuracy dropped from baseline 0.8000 to 0.7200 (delta -0.0800*"]
    )
    properties = {
        item.get("name"): item.get("value")
        for item in ElementTree.parse(suite.path / "junit.xml").iter("property")
    }
    gate = properties["clue.gate.no_regression.accuracy"]
    assert gate.endswith("baseline 0.800000; delta -0.080000; p 0.038574; fail")
    outcome.stdout.re_match_lines(
        [r"afqmc-gated +accuracy +0\.7200 .* +no_regression 0 +0\.8000 +-0\.0800 +0\.0386 +FAIL"]
    )


def test_update_refused_while_failing(suite):
    run(suite, BASELINE_WRONG, "--update-baseline")
    before = baseline_path(suite).read_bytes()

    outcome = run(suite, DEGRADED_WRONG, "--update-baseline")

    outcome.assert_outcomes(passed=1, failed=1)
    assert baseline_path(suite).read_bytes() == before
    outcome.stdout.fnmatch_lines(
        [
            f"baseline {baseline_path(suite)}: NOT written",
            "  not written: 1 case(s) failed (afqmc-gated); fix them, or rerun with "
            "--force-baseline to record these scores anyway",
        ]
    )


def test_force_records_failing_run(suite):
    run(suite, BASELINE_WRONG, "--update-baseline")

    outcome = run(suite, DEGRADED_WRONG, "--update-baseline", "--force-baseline")

    outcome.assert_outcomes(passed=1, failed=1)
    assert read_baseline(suite)["cases"]["afqmc-gated"]["metrics"]["accuracy"] == 0.72
    outcome.stdout.fnmatch_lines(
        [
            f"baseline {baseline_path(suite)}: written",
            "  afqmc-gated: accuracy 0.8000 -> 0.7200 (-0.0800); 12 examples changed outcome",
            "  afqmc-floor: accuracy 0.8333 -> 0.8167 (-0.0167); 5 examples changed outcome",
        ]
    )


def test_force_needs_update_option(suite):
    outcome = run(suite, BASELINE_WRONG, "--force-baseline")

    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    assert "--force-baseline applies only with --update-baseline" in outcome.stderr.str()


# File format and provenance helpers ---------------------------------------------------


def test_render_refuses_nan():
    data = {"format": "x", "cases": {"a": {"metrics": {"accuracy": float("nan")}}}}

    with pytest.raises(ValueError, match="Out of range float values"):
        render_baseline(data)


def test_render_keeps_lists_on_one_line():
    data = {"format": "x", "cases": {"b": {"ids": ["1", "2"]}, "a": {"ids": ["3"]}}}

    text = render_baseline(data)

    assert text.splitlines() == [
        "{",
        '  "format": "x",',
        '  "cases": {',
        '    "a": {',
        '      "ids": ["3"]',
        "    },",
        '    "b": {',
        '      "ids": ["1", "2"]',
        "    }",
        "  }",
        "}",
    ]


def test_id_difference_names_ids():
    message = id_difference(["1", "2", "3", "4"], ["1", "2", "5", "6"])

    assert message == "2 ids only in the baseline (3, 4) and 2 only in this run (5, 6)"


def test_id_difference_rejects_repeats():
    assert id_difference(["1", "1"], ["1", "2"]) == (
        "ids repeat in baseline, so examples cannot be paired by id"
    )


def test_change_lists_new_weights():
    old = {
        "main_metric": "accuracy",
        "metrics": {"accuracy": 0.5},
        "n_scored": 10,
        "data_sha256": "d",
        "provenance": {"weights_sha256": "aaa", "date": "2026-01-01"},
    }
    new = {**old, "provenance": {"weights_sha256": "bbb", "date": "2026-02-02"}}

    assert describe_change("c", old, new) == "c: weights_sha256 aaa -> bbb"


def test_weights_hash_follows_bytes(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"one")
    first = folder_weights_sha256(tmp_path)

    (tmp_path / "model.safetensors").write_bytes(b"two")

    assert folder_weights_sha256(tmp_path) != first
    assert folder_weights_sha256(tmp_path) == hashlib.sha256(b"model.safetensors\0two").hexdigest()
