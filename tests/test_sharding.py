"""`--clue-shard I/N` and `clue-harness merge`: the assignment rule, a real run split in two
shards and merged, and the merge's refusals."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from tiny_models import FIXTURES

from harness.cli import main
from harness.merge import MergeError, merge_outputs
from harness.plugin.sharding import Shard, parse_shard, select_shard
from harness.reports import write_reports
from harness.results import CaseResult

TEST_MODULE = """
import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("clue.yaml")
def test_clue(clue_case, clue_evaluate):
    result = clue_evaluate(clue_case)
    assert_thresholds(result)
"""

# Five cases in spec order: shard 1/2 runs positions 0, 2 and 4, shard 2/2 positions 1 and 3.
CASES = """
  - {task: afqmc, split: dev, model: llama}
  - {task: afqmc, split: test, model: llama}
  - {task: ocnli, split: dev, model: llama}
  - {task: ocnli, split: test, model: llama}
  - {task: fewclue-tnews, split: test, model: llama}
"""
CASE_IDS = [
    "afqmc-dev-llama",
    "afqmc-test-llama",
    "ocnli-dev-llama",
    "ocnli-test-llama",
    "fewclue-tnews-test-llama",
]
RUN_OPTIONS = ("-p", "no:cacheprovider", "--clue-threads=1", "--clue-tier=full")
SPEC_PATH = "evals/clue.yaml"


def spec_text(llama_dir: Path) -> str:
    return (
        f"data_root: {FIXTURES / 'clue'}\n"
        "models:\n"
        "  llama:\n"
        "    backend: hf-causal\n"
        f"    path: {llama_dir}\n"
        "    device: cpu\n"
        "cases:" + CASES
    )


def read_report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


# Assignment rule -----------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("total", [3, 17])
def test_shards_partition_case_list(count, total):
    case_ids = [f"case-{number:02d}" for number in range(total)]

    shards = [select_shard(case_ids, Shard(index, count)) for index in range(1, count + 1)]

    flattened = [case_id for shard in shards for case_id in shard]
    sizes = [len(shard) for shard in shards]
    assert sorted(flattened) == case_ids
    assert len(flattened) == len(set(flattened))
    assert max(sizes) - min(sizes) <= 1


def test_shard_deals_round_robin():
    assert select_shard(CASE_IDS, Shard(1, 2)) == CASE_IDS[0::2]
    assert select_shard(CASE_IDS, Shard(2, 2)) == CASE_IDS[1::2]


def test_parse_shard_accepts_spaces():
    assert parse_shard(" 2/3 ") == Shard(2, 3)


@pytest.mark.parametrize("value", ["0/2", "3/2", "x", "1/0", "1/2/3"])
def test_invalid_shard_is_usage_error(pytester: pytest.Pytester, value):
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--clue-shard={value}")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"argument --clue-shard: invalid shard {value!r}" in result.stderr.str()


# A real run in two shards ---------------------------------------------------------------


def run_suite(suite: pytest.Pytester, monkeypatch, name: str, *options: str):
    """Run the spec in this process into output folder `name`, with its own empty
    prediction cache, so that no run reuses the predictions of another."""
    monkeypatch.setenv("CLUE_PREDICTION_CACHE", str(suite.path / f"cache-{name}"))
    return suite.runpytest_inprocess(*RUN_OPTIONS, f"--clue-output={name}", *options)


def test_merged_shards_equal_unsharded(pytester, monkeypatch, llama_dir, capsys):
    monkeypatch.delenv("CLUE_DATA_DIR", raising=False)
    evals = pytester.mkdir("evals")
    (evals / "test_evals.py").write_text(TEST_MODULE, encoding="utf-8")
    (evals / "clue.yaml").write_text(spec_text(llama_dir), encoding="utf-8")

    whole = run_suite(pytester, monkeypatch, "whole")
    first = run_suite(pytester, monkeypatch, "shard1", "--clue-shard=1/2", "-n", "2")
    second = run_suite(pytester, monkeypatch, "shard2", "--clue-shard=2/2")

    whole.assert_outcomes(passed=5)
    first.assert_outcomes(passed=3)
    second.assert_outcomes(passed=2, deselected=3)
    first_report = read_report(pytester.path / "shard1")
    assert [row["case"] for row in first_report["rows"]] == CASE_IDS[0::2]
    assert first_report["run"]["shard"] == {"index": 1, "count": 2}
    assert first_report["run"]["cases_total"] == 5
    assert [spec["path"] for spec in first_report["run"]["specs"]] == [SPEC_PATH]

    capsys.readouterr()
    status = main(
        [
            "merge",
            str(pytester.path / "merged"),
            str(pytester.path / "shard1"),
            str(pytester.path / "shard2"),
        ]
    )

    assert status == 0
    assert "merged 5 cases from 2 shard folders" in capsys.readouterr().out
    merged = read_report(pytester.path / "merged")
    unsharded = read_report(pytester.path / "whole")
    assert [row["case"] for row in merged["rows"]] == CASE_IDS
    assert merged["rows"] == unsharded["rows"]
    assert merged["passed"] is True
    for archive in ("submit.zip", "fewclue_submit.zip"):
        assert zip_members(pytester.path / "merged" / archive) == zip_members(
            pytester.path / "whole" / archive
        )
    merged_cases = sorted(path.name for path in (pytester.path / "merged" / "cases").iterdir())
    assert merged_cases == sorted(f"{case_id}.json" for case_id in CASE_IDS)
    predictions = sorted(path.name for path in (pytester.path / "merged" / "predictions").iterdir())
    assert predictions == sorted(f"{case_id}.jsonl" for case_id in CASE_IDS)
    assert "| afqmc-dev-llama | accuracy |" in (pytester.path / "merged" / "report.md").read_text(
        encoding="utf-8"
    )


def test_empty_shard_writes_report(pytester, monkeypatch, llama_dir):
    monkeypatch.delenv("CLUE_DATA_DIR", raising=False)
    evals = pytester.mkdir("evals")
    (evals / "test_evals.py").write_text(TEST_MODULE, encoding="utf-8")
    (evals / "clue.yaml").write_text(spec_text(llama_dir), encoding="utf-8")

    result = run_suite(pytester, monkeypatch, "shard6", "--clue-shard=6/6")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(deselected=5)
    report = read_report(pytester.path / "shard6")
    assert report["rows"] == []
    assert report["run"]["shard"] == {"index": 6, "count": 6}


# Merge refusals ------------------------------------------------------------------------


def case_result(case_id: str, accuracy: float, spec_index: int) -> CaseResult:
    return CaseResult(
        case_id=case_id,
        task="afqmc",
        benchmark="clue",
        split="dev",
        model="llama",
        method="loglikelihood",
        tier="full",
        shots=0,
        seed=1234,
        main_metric="accuracy",
        metrics={"accuracy": accuracy},
        spec_path=f"/checkout/{SPEC_PATH}",
        spec_index=spec_index,
    )


def write_shard(
    folder: Path, index: int, results: list[CaseResult], spec_sha256: str = "a" * 64, count: int = 2
) -> Path:
    run = {
        "shard": {"index": index, "count": count},
        "cases_total": 2,
        "specs": [{"path": SPEC_PATH, "sha256": spec_sha256}],
    }
    write_reports(results, folder, [], run=run)
    return folder


def test_merge_rejects_conflicting_case(tmp_path):
    first = write_shard(tmp_path / "one", 1, [case_result("afqmc-dev-llama", 0.5, 0)])
    second = write_shard(tmp_path / "two", 2, [case_result("afqmc-dev-llama", 0.75, 0)])

    with pytest.raises(MergeError) as caught:
        merge_outputs(tmp_path / "merged", [first, second])

    message = str(caught.value)
    assert message.startswith("case afqmc-dev-llama has different results in ")
    assert f"{first} (shard 1/2) and {second} (shard 2/2) (fields: metrics)" in message
    assert not (tmp_path / "merged").exists()


def test_merge_rejects_different_specs(tmp_path):
    first = write_shard(tmp_path / "one", 1, [case_result("afqmc-dev-llama", 0.5, 0)])
    second = write_shard(
        tmp_path / "two", 2, [case_result("afqmc-test-llama", 0.5, 1)], spec_sha256="b" * 64
    )

    with pytest.raises(MergeError) as caught:
        merge_outputs(tmp_path / "merged", [first, second])

    message = str(caught.value)
    assert "were run from different specs" in message
    assert f"{SPEC_PATH} has sha256 {'a' * 64} in the first and {'b' * 64} in the second" in message


def test_merge_rejects_missing_shard(tmp_path):
    first = write_shard(tmp_path / "one", 1, [case_result("afqmc-dev-llama", 0.5, 0)])

    with pytest.raises(MergeError) as caught:
        merge_outputs(tmp_path / "merged", [first])

    assert str(caught.value).startswith("shards 2/2 are missing")


def test_merge_partial_when_allowed(tmp_path):
    first = write_shard(tmp_path / "one", 1, [case_result("afqmc-dev-llama", 0.5, 0)])

    summary = merge_outputs(tmp_path / "merged", [first], allow_partial=True)

    assert summary.missing_shards == [2]
    assert read_report(tmp_path / "merged")["run"]["missing_shards"] == [2]


def test_merge_rejects_shard_count_mismatch(tmp_path):
    first = write_shard(tmp_path / "one", 1, [case_result("afqmc-dev-llama", 0.5, 0)])
    second = write_shard(tmp_path / "two", 2, [case_result("afqmc-test-llama", 0.5, 1)], count=3)

    with pytest.raises(MergeError) as caught:
        merge_outputs(tmp_path / "merged", [first, second])

    assert "split the cases into different numbers of shards" in str(caught.value)


def test_merge_orders_rows_by_spec(tmp_path):
    # Shard 2 ran in another checkout folder and contains the spec's first case; rows follow
    # the spec, not the folder paths or the order of the shard folders.
    first = write_shard(tmp_path / "one", 1, [case_result("b-case", 0.5, 1)])
    moved = case_result("a-case", 0.5, 0)
    moved.spec_path = f"/other-checkout/{SPEC_PATH}"
    second = write_shard(tmp_path / "two", 2, [moved])

    merge_outputs(tmp_path / "merged", [first, second])

    rows = read_report(tmp_path / "merged")["rows"]
    assert [row["case"] for row in rows] == ["a-case", "b-case"]


def test_merge_rejects_differing_files(tmp_path):
    first = write_shard(tmp_path / "one", 1, [case_result("afqmc-dev-llama", 0.5, 0)])
    second = write_shard(tmp_path / "two", 2, [case_result("afqmc-test-llama", 0.5, 1)])
    for folder, text in ((first, "one\n"), (second, "two\n")):
        (folder / "predictions").mkdir()
        (folder / "predictions" / "extra.jsonl").write_text(text, encoding="utf-8")

    with pytest.raises(MergeError) as caught:
        merge_outputs(tmp_path / "merged", [first, second])

    first_file = first / "predictions" / "extra.jsonl"
    second_file = second / "predictions" / "extra.jsonl"
    assert str(caught.value).startswith(f"{first_file} and {second_file} differ")
    assert not (tmp_path / "merged" / "predictions").exists()
