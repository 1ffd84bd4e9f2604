"""Similarity cases end to end: spec keys, the four task kinds, reports and the plugin.

A scripted embedding backend makes every cosine known: a text listed in VECTORS gets that
vector, and any other text gets its character counts over 64 buckets (ord % 64), so
cos("ab", "abc") = 2 / sqrt(6). Its token vectors are one-hot per character.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
from tiny_models import FIXTURES

from harness.backends import BACKENDS
from harness.backends.base import Backend, ModelConfig, NoProgress
from harness.errors import DataError, SpecError
from harness.reports import write_reports
from harness.runner import CaseRunner
from harness.spec import load_spec

BUCKETS = 64


def at_cosine(value: float) -> list[float]:
    """A unit vector whose cosine with "anchor" ([1, 0, ...]) is `value`."""
    return [value, math.sqrt(1.0 - value * value)] + [0.0] * (BUCKETS - 2)


VECTORS = {
    "anchor": [1.0] + [0.0] * (BUCKETS - 1),
    **{f"c{round(value * 1000):03d}": at_cosine(value) for value in (0.1, 0.4, 0.35, 0.8)},
    **{f"c{round(value * 1000):03d}": at_cosine(value) for value in (0.875, 0.75, 0.625, 0.25)},
    "c500": at_cosine(0.5),
}


class ScriptedEmbedding(Backend):
    """Sentence vectors from VECTORS or character counts; token vectors one-hot per character."""

    kind = "hf-embedding"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config)
        self.calls: list[tuple[str, list[str]]] = []

    def embed(self, texts, progress=NoProgress(), *, role="query"):
        self.calls.append((role, list(texts)))
        progress.advance(len(texts))
        return np.array([self.vector(text) for text in texts], dtype=np.float32)

    def vector(self, text: str) -> list[float]:
        if text in VECTORS:
            return VECTORS[text]
        counts = [0.0] * BUCKETS
        for char in text:
            counts[ord(char) % BUCKETS] += 1.0
        return counts

    def embed_tokens(self, texts, progress=NoProgress()):
        progress.advance(len(texts))
        return [np.eye(BUCKETS)[[ord(char) % BUCKETS for char in text]] for text in texts]


MODELS = """
models:
  fake:
    backend: hf-embedding
    path: fake
"""


def write_spec(folder: Path, cases: str, extra: str = "") -> Path:
    path = folder / "similarity.yaml"
    path.write_text(MODELS + extra + "cases:\n" + cases, encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cases(spec_path: Path, output: Path, data_root: Path | None = None) -> list:
    spec = load_spec(spec_path)
    backend = ScriptedEmbedding(spec.models["fake"])
    runner = CaseRunner(data_root, output)
    return [runner.run(case, backend) for case in spec.cases]


def run_one(spec_path: Path, output: Path, data_root: Path | None = None):
    [result] = run_cases(spec_path, output, data_root)
    return result


def read_predictions(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def strict_json(text: str):
    """Parse JSON and reject NaN and Infinity, which json.loads accepts by default."""

    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


# Spec keys


def test_default_ids_name_the_data(tmp_path):
    extra = "  llm:\n    backend: hf-causal\n    path: x\n"
    cases = """
  - {task: similarity-sts, model: fake, source: {task: afqmc, split: dev}}
  - {task: similarity-sts, model: fake, data: data/STS-B 中文.jsonl}
  - task: similarity-pairs
    model: fake
    pairs: [{text1: a, text2: b, min: 0.5}]
  - {task: afqmc, split: dev, model: llm}
"""
    spec = load_spec(write_spec(tmp_path, cases, extra))

    assert [case.id for case in spec.cases] == [
        "similarity-sts-afqmc-dev-fake",
        "similarity-sts-STS-B-fake",
        "similarity-pairs-fake",
        "afqmc-dev-llm",
    ]


def test_pair_without_bound_names_key(tmp_path):
    cases = """
  - task: similarity-pairs
    model: fake
    pairs:
      - {text1: a, text2: b, min: 0.5}
      - {text1: a, text2: c}
"""
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, cases))

    assert "similarity.yaml:12: cases[0].pairs[1]: a pair needs 'min', 'max' or both" in str(
        caught.value
    )


def test_bound_outside_cosine_range_rejected(tmp_path):
    cases = """
  - task: similarity-pairs
    model: fake
    pairs: [{text1: a, text2: b, min: 1.5}]
"""
    with pytest.raises(SpecError, match=r"cases\[0\].pairs\[0\].min: expected a cosine in"):
        load_spec(write_spec(tmp_path, cases))


def test_key_of_other_task_rejected(tmp_path):
    cases = """
  - task: similarity-pairs
    model: fake
    pairs: [{text1: a, text2: b, min: 0.5}]
    score_range: [0, 5]
"""
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, cases))

    assert "cases[0].score_range: does not apply to task similarity-pairs" in str(caught.value)
    assert "It applies to: similarity-sts" in str(caught.value)


def test_data_and_source_together_rejected(tmp_path):
    cases = """
  - {task: similarity-sts, model: fake, data: a.jsonl, source: {task: afqmc, split: dev}}
"""
    with pytest.raises(SpecError, match="give exactly one of 'data' and 'source'"):
        load_spec(write_spec(tmp_path, cases))


def test_source_labels_checked_against_task(tmp_path):
    cases = """
  - {task: similarity-pair-classification, model: fake, source: {task: ocnli, split: dev}}
"""
    with pytest.raises(SpecError, match="'1' is not a label of ocnli"):
        load_spec(write_spec(tmp_path, cases))


def test_source_test_split_rejected(tmp_path):
    cases = """
  - {task: similarity-sts, model: fake, source: {task: afqmc, split: test}}
"""
    with pytest.raises(SpecError, match="has hidden labels"):
        load_spec(write_spec(tmp_path, cases))


def test_causal_model_cannot_score_similarity(tmp_path):
    extra = "  llm:\n    backend: hf-causal\n    path: x\n"
    cases = """
  - {task: similarity-sts, model: llm, data: a.jsonl}
"""
    with pytest.raises(SpecError, match="backend 'hf-causal' of model 'llm' cannot score"):
        load_spec(write_spec(tmp_path, cases, extra))


def test_roles_must_be_known(tmp_path):
    cases = """
  - {task: similarity-sts, model: fake, data: a.jsonl, roles: [query, document]}
"""
    with pytest.raises(SpecError, match=r"cases\[0\].roles\[1\]: invalid value 'document'"):
        load_spec(write_spec(tmp_path, cases))


def test_threshold_on_unknown_metric_rejected(tmp_path):
    cases = """
  - {task: similarity-sts, model: fake, data: a.jsonl, thresholds: {spearmann: 0.2}}
"""
    with pytest.raises(SpecError, match="Did you mean 'spearman'"):
        load_spec(write_spec(tmp_path, cases))


# Pair asserts

PAIR_CASE = """
  - task: similarity-pairs
    model: fake
    pairs:
      - {id: close, text1: ab, text2: abc, min: 0.8}
      - {id: apart, text1: ab, text2: a, max: 0.5}
      - {id: too-low, text1: abc, text2: a, min: 0.9}
      - {closer: [ab, abc], than: a}
      - {id: wrong-order, closer: [ab, a], than: abc, margin: 0.05}
"""


def test_pair_asserts_name_every_broken_pair(tmp_path):
    result = run_one(write_spec(tmp_path, PAIR_CASE), tmp_path / "out")

    assert result.failures == [
        "apart: cosine('ab', 'a') = 0.7071, above max 0.5000",
        "too-low: cosine('abc', 'a') = 0.5774, below min 0.9000",
        "wrong-order: cosine('ab', 'a') = 0.7071 is not above cosine('ab', 'abc') = 0.8165 "
        "and cosine('a', 'abc') = 0.5774 by more than 0.05",
    ]
    assert result.metrics == {"checks_passed": 0.4}


def test_pair_asserts_record_every_cosine(tmp_path):
    result = run_one(write_spec(tmp_path, PAIR_CASE), tmp_path / "out")
    records = read_predictions(result.predictions_file)

    assert [record["cosine"] for record in records] == [
        round(2 / math.sqrt(6), 6),
        round(1 / math.sqrt(2), 6),
        round(1 / math.sqrt(3), 6),
        round(2 / math.sqrt(6), 6),
        round(1 / math.sqrt(2), 6),
    ]
    assert records[3]["cosine_than"] == [round(1 / math.sqrt(2), 6), round(1 / math.sqrt(3), 6)]
    assert [check["name"] for check in result.checks] == [
        "close",
        "apart",
        "too-low",
        "closer-4",
        "wrong-order",
    ]
    assert [check["passed"] for check in result.checks] == [True, False, False, True, False]


def test_pair_asserts_from_file(tmp_path):
    write_jsonl(
        tmp_path / "checks" / "weather.jsonl",
        [{"text1": "ab", "text2": "abc", "min": 0.8}, {"closer": ["ab", "abc"], "than": "a"}],
    )
    cases = "  - {task: similarity-pairs, model: fake, data: checks/weather.jsonl}\n"

    result = run_one(write_spec(tmp_path, cases), tmp_path / "out")

    assert result.case_id == "similarity-pairs-weather-fake"
    assert result.passed
    assert result.n_scored == 2


def test_pair_file_error_names_line(tmp_path):
    write_jsonl(
        tmp_path / "checks.jsonl",
        [{"text1": "ab", "text2": "abc", "min": 0.8}, {"text1": "ab", "text2": "a", "low": 0.1}],
    )
    cases = "  - {task: similarity-pairs, model: fake, data: checks.jsonl}\n"

    with pytest.raises(DataError, match=r"checks.jsonl:2: field 'low': unknown key"):
        run_one(write_spec(tmp_path, cases), tmp_path / "out")


# STS


def sts_rows(cosine_names: list[str], labels: list) -> list[dict]:
    return [
        {"sentence1": "anchor", "sentence2": name, "label": label}
        for name, label in zip(cosine_names, labels)
    ]


def test_sts_spearman_with_ties(tmp_path):
    write_jsonl(tmp_path / "ties.jsonl", sts_rows(["c100", "c400", "c350", "c800"], list("0011")))
    cases = "  - {task: similarity-sts, model: fake, data: ties.jsonl}\n"

    result = run_one(write_spec(tmp_path, cases), tmp_path / "out")

    assert round(result.metrics["spearman"], 4) == 0.4472
    assert result.passed
    assert result.n_scored == 4


def test_sts_gold_normalised_by_range(tmp_path):
    write_jsonl(tmp_path / "sts.jsonl", sts_rows(["c100", "c400", "c800"], [1, 2.5, 4]))
    cases = "  - {task: similarity-sts, model: fake, data: sts.jsonl, score_range: [0, 5]}\n"

    result = run_one(write_spec(tmp_path, cases), tmp_path / "out")
    records = read_predictions(result.predictions_file)

    assert [record["gold_normalised"] for record in records] == [0.2, 0.5, 0.8]
    assert result.metrics["spearman"] == 1.0


def test_sts_score_outside_range_rejected(tmp_path):
    write_jsonl(tmp_path / "sts.jsonl", sts_rows(["c100", "c400"], [1, 6]))
    cases = "  - {task: similarity-sts, model: fake, data: sts.jsonl, score_range: [0, 5]}\n"

    with pytest.raises(DataError, match=r"sts.jsonl:2: gold score 6 is outside score_range"):
        run_one(write_spec(tmp_path, cases), tmp_path / "out")


def test_sts_constant_cosines_fail_case(tmp_path):
    write_jsonl(tmp_path / "flat.jsonl", sts_rows(["c500", "c500", "c500"], [0, 1, 2]))
    cases = (
        "  - {task: similarity-sts, model: fake, data: flat.jsonl, thresholds: {spearman: 0.1}}\n"
    )

    result = run_one(write_spec(tmp_path, cases), tmp_path / "out")

    assert "correlation undefined" in result.failures[0]
    assert "spearman" not in result.metrics
    assert not result.passed


def test_undefined_correlation_report_is_valid_json(tmp_path):
    write_jsonl(tmp_path / "flat.jsonl", sts_rows(["c500", "c500", "c500"], [0, 1, 2]))
    cases = "  - {task: similarity-sts, model: fake, data: flat.jsonl}\n"
    result = run_one(write_spec(tmp_path, cases), tmp_path / "out")

    json_path, markdown_path = write_reports([result], tmp_path / "out", [])
    report = strict_json(json_path.read_text(encoding="utf-8"))

    assert report["passed"] is False
    assert report["rows"][0]["status"] == "fail"
    assert report["rows"][0]["score"] is None
    assert "correlation undefined" in report["cases"][0]["failures"][0]


def test_smoke_limit_takes_seeded_sample(tmp_path):
    names = ["c100", "c400", "c350", "c800", "c875", "c750", "c625", "c250"]
    write_jsonl(tmp_path / "sts.jsonl", sts_rows(names, [0, 1, 2, 3, 4, 5, 0, 1]))
    cases = "  - {task: similarity-sts, model: fake, data: sts.jsonl, limit: 5, seed: 7}\n"
    spec_path = write_spec(tmp_path, cases)

    first = run_one(spec_path, tmp_path / "out1")
    second = run_one(spec_path, tmp_path / "out2")
    first_lines = [record["line"] for record in read_predictions(first.predictions_file)]
    second_lines = [record["line"] for record in read_predictions(second.predictions_file)]

    assert first.n_rows == 8
    assert first.n_selected == 5
    assert first_lines == second_lines
    assert first_lines == sorted(first_lines)


def test_roles_choose_prefix_side(tmp_path):
    write_jsonl(tmp_path / "sts.jsonl", sts_rows(["c100", "c400"], [0, 1]))
    cases = "  - {task: similarity-sts, model: fake, data: sts.jsonl, roles: [query, passage]}\n"
    spec = load_spec(write_spec(tmp_path, cases))
    backend = ScriptedEmbedding(spec.models["fake"])

    CaseRunner(None, tmp_path / "out").run(spec.cases[0], backend)

    assert backend.calls == [("query", ["anchor"]), ("passage", ["c100", "c400"])]


def test_data_found_under_data_root(tmp_path):
    root = tmp_path / "root"
    write_jsonl(root / "pairs" / "sts.jsonl", sts_rows(["c100", "c400"], [0, 1]))
    spec_folder = tmp_path / "specs"
    spec_folder.mkdir()
    cases = "  - {task: similarity-sts, model: fake, data: pairs/sts.jsonl}\n"

    result = run_one(write_spec(spec_folder, cases), tmp_path / "out", data_root=root)

    assert result.data_file == str(root / "pairs" / "sts.jsonl")


def test_missing_data_lists_places_tried(tmp_path):
    cases = "  - {task: similarity-sts, model: fake, data: nowhere.jsonl}\n"

    with pytest.raises(DataError, match="file not found. Looked in .*nowhere.jsonl and"):
        run_one(write_spec(tmp_path, cases), tmp_path / "out", data_root=tmp_path / "root")


def test_source_reads_clue_task_file(tmp_path):
    cases = "  - {task: similarity-sts, model: fake, source: {task: afqmc, split: dev}}\n"

    result = run_one(write_spec(tmp_path, cases), tmp_path / "out", data_root=FIXTURES / "clue")

    assert result.data_file == str(FIXTURES / "clue" / "afqmc" / "dev.json")
    assert result.n_scored == 12
    assert math.isfinite(result.metrics["spearman"])


# Pair classification

NLI_ROWS = [
    {"sentence1": "anchor", "sentence2": "c875", "label": "entailment"},
    {"sentence1": "anchor", "sentence2": "c750", "label": "contradiction"},
    {"sentence1": "anchor", "sentence2": "c500", "label": "neutral"},
    {"sentence1": "anchor", "sentence2": "c625", "label": "entailment"},
    {"sentence1": "anchor", "sentence2": "c250", "label": "contradiction"},
]
NLI_CASE = """
  - task: similarity-pair-classification
    model: fake
    data: nli.jsonl
    positive: [entailment]
    negative: [contradiction]
"""


def test_pair_classification_golden_values(tmp_path):
    write_jsonl(tmp_path / "nli.jsonl", NLI_ROWS)

    result = run_one(write_spec(tmp_path, NLI_CASE), tmp_path / "out")

    # Ranked: 0.875 P, 0.75 N, 0.625 P, 0.25 N. AP = (1/1 + 2/3) / 2. The thresholds are
    # midpoints of cosines of float32 vectors, so they match to float32 precision.
    assert result.metrics["average_precision"] == pytest.approx(5 / 6, abs=1e-12)
    assert result.metrics["max_accuracy"] == 0.75
    assert result.metrics["max_accuracy_threshold"] == pytest.approx(0.8125, abs=1e-7)
    assert result.metrics["max_f1"] == 0.8
    assert result.metrics["max_f1_threshold"] == pytest.approx(0.4375, abs=1e-7)


def test_pair_classification_skips_other_labels(tmp_path):
    write_jsonl(tmp_path / "nli.jsonl", NLI_ROWS)

    result = run_one(write_spec(tmp_path, NLI_CASE), tmp_path / "out")
    records = read_predictions(result.predictions_file)

    assert result.n_scored == 4
    assert result.n_skipped == 1
    assert records[2]["cosine"] is None
    assert records[2]["gold"] is None


def test_nan_label_skipped_not_written(tmp_path):
    rows = NLI_ROWS + [{"sentence1": "anchor", "sentence2": "c100", "label": float("nan")}]
    write_jsonl(tmp_path / "nli.jsonl", rows)

    result = run_one(write_spec(tmp_path, NLI_CASE), tmp_path / "out")
    records = [strict_json(line) for line in Path(result.predictions_file).read_text().splitlines()]

    assert result.n_skipped == 2
    assert records[5]["label"] is None


def test_pair_classification_without_known_labels_rejected(tmp_path):
    write_jsonl(tmp_path / "nli.jsonl", NLI_ROWS)
    cases = "  - {task: similarity-pair-classification, model: fake, data: nli.jsonl}\n"

    with pytest.raises(DataError, match="no selected pair has a label in positive"):
        run_one(write_spec(tmp_path, cases), tmp_path / "out")


# Generated texts


def test_generation_scores_predictions_file(tmp_path):
    write_jsonl(
        tmp_path / "cmrc.jsonl",
        [
            {"id": "q1", "prediction": "ab", "references": ["abc", "xy"], "em": 0},
            {"id": "q2", "prediction": "xy", "references": ["xy"], "em": 1},
            {"id": "q3", "prediction": "ab", "references": None, "em": None},
        ],
    )
    cases = "  - {task: similarity-generation, model: fake, data: cmrc.jsonl, cutoff: 0.9}\n"

    result = run_one(write_spec(tmp_path, cases), tmp_path / "out")

    # q1: cos(ab, abc) = 2/sqrt(6); tokens: precision 1, recall 2/3, F1 0.8. q2: all 1.
    assert result.metrics["mean_cosine"] == pytest.approx((2 / math.sqrt(6) + 1) / 2, abs=1e-12)
    assert result.metrics["above_cutoff"] == 0.5
    assert result.metrics["bertscore_precision"] == 1.0
    assert result.metrics["bertscore_recall"] == pytest.approx(5 / 6, abs=1e-12)
    assert result.metrics["bertscore_f1"] == pytest.approx(0.9, abs=1e-12)
    assert result.n_scored == 2
    assert result.n_skipped == 1


def test_generation_field_names_configurable(tmp_path):
    write_jsonl(tmp_path / "answers.jsonl", [{"output": "ab", "answer": "ab"}])
    cases = """
  - task: similarity-generation
    model: fake
    data: answers.jsonl
    fields: {prediction: output, reference: answer}
"""

    result = run_one(write_spec(tmp_path, cases), tmp_path / "out")

    assert result.metrics["mean_cosine"] == 1.0
    assert result.metrics["bertscore_f1"] == 1.0


# The plugin

TEST_MODULE = """
import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("similarity.yaml")
def test_similarity(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
"""


def test_plugin_reports_undefined_without_nan(pytester, monkeypatch):
    monkeypatch.setitem(
        BACKENDS, "hf-embedding", f"{ScriptedEmbedding.__module__}:ScriptedEmbedding"
    )
    monkeypatch.delenv("CLUE_DATA_DIR", raising=False)
    pytester.makepyfile(test_evals=TEST_MODULE)
    pytester.makefile(".ini", pytest="[pytest]\njunit_family = xunit1\n")
    write_jsonl(pytester.path / "flat.jsonl", sts_rows(["c500", "c500", "c500"], [0, 1, 2]))
    cases = (
        "  - {task: similarity-sts, model: fake, data: flat.jsonl, thresholds: {spearman: 0.1}}\n"
    )
    write_spec(pytester.path, cases + PAIR_CASE, f"data_root: {pytester.path}\n")

    outcome = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--clue-output=out", "--junitxml=junit.xml"
    )

    outcome.assert_outcomes(failed=2)
    outcome.stdout.fnmatch_lines(["*correlation undefined*", "*apart: cosine('ab', 'a')*"])
    report = strict_json((pytester.path / "out" / "report.json").read_text(encoding="utf-8"))
    assert [row["status"] for row in report["rows"]] == ["fail", "fail"]
    assert "| similarity-pairs-fake | apart | 0.7071 | <= 0.5000 | FAIL |" in (
        pytester.path / "out" / "report.md"
    ).read_text(encoding="utf-8")

    xml_text = (pytester.path / "junit.xml").read_text(encoding="utf-8")
    properties = {
        item.get("name"): item.get("value")
        for item in ElementTree.fromstring(xml_text).iter("property")
    }
    assert properties["clue.check.apart"] == "0.707107 <= 0.5000: fail"
    assert "nan" not in xml_text.lower()
    assert "inf" not in " ".join(properties.values()).lower()
