"""Gates on a generated AFQMC dev file, scored by a scripted classifier that gets chosen
rows wrong: min, lower_bound (Wilson and bootstrap intervals) and no_regression (exact
McNemar and paired bootstrap) against a baseline recorded by an earlier run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_classifier import scripted, write_afqmc

from harness.baseline import load_baseline, update_baseline
from harness.errors import SpecError
from harness.gates import apply_gates
from harness.metrics.ner import official_scores, span_micro_f1
from harness.metrics.per_example import metric_value, per_example_data
from harness.results import CaseResult
from harness.runner import CaseRunner
from harness.spec import load_spec

MODEL = """
models:
  fake:
    backend: hf-classifier
    path: fake-model
cases:
"""
NO_REGRESSION = "{kind: no_regression, metric: accuracy, alpha: 0.05}"


def write_spec(folder: Path, case: str) -> Path:
    path = folder / "spec.yaml"
    path.write_text("baseline: baseline.json\n" + MODEL + case, encoding="utf-8")
    return path


def run_case(
    folder: Path, case: str, wrong, *, rows: int = 100, recording: bool = False
) -> CaseResult:
    """Score the generated file with the classifier that gets rows `wrong` wrong."""
    write_afqmc(folder / "data", rows)
    spec = load_spec(write_spec(folder, case))
    runner = CaseRunner(
        folder / "data", folder / "out", baseline_file=spec.baseline, recording=recording
    )
    return runner.run(spec.cases[0], scripted(wrong))


def record_baseline(folder: Path, wrong, *, rows: int = 100, case: str | None = None) -> Path:
    case = case or f"  - {{task: afqmc, split: dev, model: fake, gate: {NO_REGRESSION}}}\n"
    result = run_case(folder, case, wrong, rows=rows, recording=True)
    update = update_baseline(folder / "baseline.json", [result])
    assert update.written
    return folder / "baseline.json"


def outcome(result: CaseResult, kind: str) -> dict:
    return next(item for item in result.gates if item["kind"] == kind)


# Wilson intervals and the lower_bound gate ---------------------------------------------


@pytest.mark.parametrize(
    ("rows", "low", "high"),
    [(100, 0.7112, 0.8666), (200, 0.7391, 0.8495)],
)
def test_lower_bound_wilson_interval(tmp_path, rows, low, high):
    case = "  - {task: afqmc, split: dev, model: fake, gate: {kind: lower_bound, threshold: 0.7}}\n"

    # 80% right: the last fifth of the rows is answered wrong.
    result = run_case(tmp_path, case, range(rows * 4 // 5, rows), rows=rows)

    gate = outcome(result, "lower_bound")
    assert result.metrics["accuracy"] == 0.8
    assert gate["interval"] == "wilson"
    assert round(gate["low"], 4) == low
    assert round(gate["high"], 4) == high
    assert result.passed


def test_lower_bound_fails_despite_point_score(tmp_path):
    case = (
        "  - task: afqmc\n    split: dev\n    model: fake\n    thresholds: {accuracy: 0.75}\n"
        "    gate: {kind: lower_bound, metric: accuracy, threshold: 0.75, confidence: 0.95}\n"
    )

    result = run_case(tmp_path, case, range(80, 100))

    assert outcome(result, "min")["passed"] is True
    assert outcome(result, "lower_bound")["passed"] is False
    assert result.failures == [
        "accuracy 0.8000: its 95% lower bound 0.7112 is below threshold 0.7500 (lower_bound gate)"
    ]
    assert not result.passed


def test_macro_f1_gets_bootstrap_interval(tmp_path):
    case = (
        "  - {task: afqmc, split: dev, model: fake, "
        "gate: {kind: lower_bound, metric: macro_f1, threshold: 0.5}}\n"
    )

    result = run_case(tmp_path, case, range(80, 100))

    gate = outcome(result, "lower_bound")
    assert gate["interval"] == "bootstrap"
    assert gate["low"] < result.metrics["macro_f1"] < gate["high"]
    assert gate["high"] - gate["low"] < 0.2


# no_regression: exact McNemar on right/wrong outcomes ------------------------------------


def test_no_regression_same_run_passes(tmp_path):
    record_baseline(tmp_path, range(80, 100))
    case = f"  - {{task: afqmc, split: dev, model: fake, gate: {NO_REGRESSION}}}\n"

    result = run_case(tmp_path, case, range(80, 100))

    gate = outcome(result, "no_regression")
    assert gate["delta"] == 0.0
    assert gate["p_value"] == 1.0
    assert gate["baseline"] == 0.8
    assert result.passed


def test_significant_drop_fails_mcnemar(tmp_path):
    record_baseline(tmp_path, range(80, 100))
    case = f"  - {{task: afqmc, split: dev, model: fake, gate: {NO_REGRESSION}}}\n"

    # Rows 0-9 are now wrong (right only in the baseline), rows 80-81 now right.
    result = run_case(tmp_path, case, [*range(10), *range(82, 100)])

    gate = outcome(result, "no_regression")
    assert gate["test"] == "mcnemar"
    assert round(gate["p_value"], 4) == 0.0386
    assert round(gate["delta"], 4) == -0.08
    assert gate["delta_low"] < -0.08 < gate["delta_high"] < 0
    assert gate["passed"] is False
    assert "no_regression gate" in result.failures[0]
    assert "mcnemar p = 0.03857 < alpha 0.05" in result.failures[0]


def test_balanced_discordance_passes(tmp_path):
    record_baseline(tmp_path, range(80, 100))
    case = f"  - {{task: afqmc, split: dev, model: fake, gate: {NO_REGRESSION}}}\n"

    # 6 rows right only in the baseline, 5 right only in the new run.
    result = run_case(tmp_path, case, [*range(6), *range(85, 100)])

    gate = outcome(result, "no_regression")
    assert gate["p_value"] == 1.0
    assert round(gate["delta"], 4) == -0.01
    assert result.passed


def test_min_effect_spares_small_drop(tmp_path):
    record_baseline(tmp_path, range(80, 100))
    gate = "{kind: no_regression, metric: accuracy, min_effect: 0.1}"
    case = f"  - {{task: afqmc, split: dev, model: fake, gate: {gate}}}\n"

    result = run_case(tmp_path, case, [*range(10), *range(82, 100)])

    assert round(outcome(result, "no_regression")["p_value"], 4) == 0.0386
    assert result.passed


# no_regression: paired bootstrap on scores that are not right/wrong -------------------


@pytest.mark.parametrize(("wrong", "passed"), [(range(40), False), (range(2), True)])
def test_macro_f1_paired_bootstrap(tmp_path, wrong, passed):
    gate = "{kind: no_regression, metric: macro_f1}"
    case = f"  - {{task: afqmc, split: dev, model: fake, gate: {gate}}}\n"
    record_baseline(tmp_path, [], rows=200, case=case)

    result = run_case(tmp_path, case, wrong, rows=200)

    outcome_ = outcome(result, "no_regression")
    assert outcome_["test"] == "paired_bootstrap"
    assert outcome_["delta"] < 0
    assert result.passed is passed


# Baselines that cannot be compared --------------------------------------------------------


def test_other_data_file_is_error(tmp_path):
    baseline = record_baseline(tmp_path, range(80, 100))
    recorded = load_baseline(baseline)["cases"]["afqmc-dev-fake"]["data_sha256"]
    case = f"  - {{task: afqmc, split: dev, model: fake, gate: {NO_REGRESSION}}}\n"
    # The same rows with a changed label: a different dev file.
    path = write_afqmc(tmp_path / "data", 100)
    path.write_text(path.read_text(encoding="utf-8").replace('"label": "0"', '"label": "1"', 1))
    spec = load_spec(write_spec(tmp_path, case))

    result = CaseRunner(tmp_path / "data", tmp_path / "out", baseline_file=spec.baseline).run(
        spec.cases[0], scripted(range(80, 100))
    )

    assert result.error is not None
    assert recorded in result.error
    assert result.data_sha256 in result.error
    assert recorded != result.data_sha256
    assert not result.passed


def test_other_example_ids_is_error(tmp_path):
    record_baseline(tmp_path, range(80, 100))
    case = f"  - {{task: afqmc, split: dev, model: fake, limit: 90, gate: {NO_REGRESSION}}}\n"

    result = run_case(tmp_path, case, range(80, 100))

    assert "the example ids differ from baseline" in result.error
    assert "10 ids only in the baseline" in result.error
    assert "0 only in this run" in result.error


def test_missing_entry_is_error(tmp_path):
    case = f"  - {{task: afqmc, split: dev, model: fake, gate: {NO_REGRESSION}}}\n"

    result = run_case(tmp_path, case, [])

    assert result.error.startswith("case afqmc-dev-fake has no entry in baseline")
    assert "--update-baseline" in result.error


def test_missing_entry_passes_when_recording(tmp_path):
    case = f"  - {{task: afqmc, split: dev, model: fake, gate: {NO_REGRESSION}}}\n"

    result = run_case(tmp_path, case, [], recording=True)

    assert result.error is None
    assert outcome(result, "no_regression")["note"] == "no baseline yet: this run records one"


# Spec syntax -----------------------------------------------------------------------------


def test_gate_typo_names_file_line_key(tmp_path):
    case = "  - task: afqmc\n    split: dev\n    model: fake\n    gate:\n      - kind: no_regression\n        min_efect: 0.01\n"
    path = write_spec(tmp_path, case)

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    line = path.read_text().splitlines().index("        min_efect: 0.01") + 1
    assert str(caught.value) == (
        f"{path}:{line}: cases[0].gate[0].min_efect: unknown key. Did you mean 'min_effect'?"
    )


def test_gate_key_of_other_kind_rejected(tmp_path):
    case = "  - {task: afqmc, split: dev, model: fake, gate: {kind: lower_bound, threshold: 0.5, alpha: 0.1}}\n"

    with pytest.raises(SpecError, match=r"gate\.alpha: does not apply to a lower_bound gate"):
        load_spec(write_spec(tmp_path, case))


def test_min_gate_becomes_threshold(tmp_path):
    case = "  - {task: afqmc, split: dev, model: fake, gate: [{kind: min, threshold: 0.4}]}\n"

    spec = load_spec(write_spec(tmp_path, case))

    assert spec.cases[0].thresholds == {"accuracy": 0.4}
    assert spec.cases[0].gates == ()
    assert spec.baseline == tmp_path / "baseline.json"


def test_gate_on_test_split_rejected(tmp_path):
    case = f"  - {{task: afqmc, split: test, model: fake, gate: {NO_REGRESSION}}}\n"

    with pytest.raises(SpecError, match="hidden labels, so no score can be gated"):
        load_spec(write_spec(tmp_path, case))


# Per-example statistics and NaN ----------------------------------------------------------


def test_ner_counts_match_official_scores():
    from harness.evaluators.ner import ner_per_example
    from harness.tasks import get_task
    from harness.tasks.cluener import NerRecord

    task = get_task("cluener")
    gold = [
        {"name": {"张伟": [[0, 1]]}, "company": {"星河公司": [[3, 6]]}},
        {"address": {"北京": [[0, 1]]}},
        {"game": {"王者荣耀": [[2, 5]]}},
    ]
    predicted = [
        {"name": {"张伟": [[0, 1]], "李雷": [[8, 9]]}},
        {"address": {"北京": [[0, 1]]}},
        {"game": {"荣耀": [[4, 5]]}},
    ]
    records = [
        NerRecord(index=i, line=i + 1, id=i, text="x" * 12, gold=g) for i, g in enumerate(gold)
    ]

    data = ner_per_example(task, records, predicted)

    official = official_scores(gold, predicted, task.label_ids)
    assert metric_value(data, "macro_f1") == pytest.approx(official.macro_f1, abs=1e-12)
    assert metric_value(data, "f1_name") == pytest.approx(official.per_type["name"].f1, abs=1e-12)
    assert metric_value(data, "span_micro_f1") == pytest.approx(
        span_micro_f1(gold, predicted), abs=1e-12
    )


def test_per_example_rejects_nan():
    with pytest.raises(ValueError, match="non-finite value nan"):
        per_example_data(["a"], {"score": [float("nan")]}, {})


def test_undefined_interval_stays_out_of_json():
    data = per_example_data(
        [str(index) for index in range(4)],
        {"cosine": [0.1, 0.2, 0.3, 0.4], "gold": [1.0, 1.0, 1.0, 1.0]},
        {"spearman": {"statistic": "spearman", "columns": ["cosine", "gold"]}},
    )
    result = CaseResult(
        case_id="sts",
        task="similarity-sts",
        benchmark="similarity",
        split="",
        model="fake",
        method="embedding",
        tier="smoke",
        shots=0,
        seed=1,
        main_metric="spearman",
        metrics={"spearman": 0.5},
        per_example=data,
    )

    apply_gates(result, (), None)

    text = json.dumps(result.to_dict(), allow_nan=False)
    assert result.gates[0]["low"] is None
    assert result.gates[0]["high"] is None
    assert "NaN" not in text


def test_binary_column_packs_to_string():
    data = per_example_data(
        ["a", "b", "c"],
        {"correct": [True, False, True]},
        {"accuracy": {"statistic": "proportion", "columns": ["correct"]}},
    )

    assert data["columns"]["correct"] == "101"
    assert metric_value(data, "accuracy") == pytest.approx(2 / 3)
