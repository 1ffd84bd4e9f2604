"""The submission validator: what the harness writes passes, and each kind of damage is
reported with its file and line."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from fake_backends import ScriptedBackend
from tiny_models import FIXTURES

from harness.cli import main
from harness.errors import HarnessError
from harness.reports import write_reports
from harness.results import CaseResult
from harness.runner import CaseRunner
from harness.spec import CaseConfig
from harness.submission import Problem, validate, validate_outputs

DATA_ROOT = FIXTURES / "clue"
CLUE_CASES = [
    ("afqmc", "test", "loglikelihood"),
    ("tnews", "test", "loglikelihood"),
    ("tnews", "test1.0", "loglikelihood"),
    ("cluewsc2020", "test", "loglikelihood"),
    ("clue-diagnostics", "test", "loglikelihood"),
    ("c3", "test", "loglikelihood"),
    ("chid", "test", "loglikelihood"),
    ("chid", "test1.0", "loglikelihood"),
    ("cluener", "test", "generate"),
]
FEWCLUE_CASES = [
    ("fewclue-chid", "test", "loglikelihood"),
    ("fewclue-tnews", "test", "loglikelihood"),
]


def longest(context: str, continuation: str) -> float:
    return float(len(continuation))


def one_name(request) -> str:
    return '{"name": ["张伟"]}'


def run_cases(output: Path, cases: list[tuple[str, str, str]]) -> None:
    runner = CaseRunner(DATA_ROOT, output)
    for task, split, method in cases:
        case = CaseConfig(
            id=f"{task}-{split}",
            task=task,
            split=split,
            model="fake",
            method=method,
            spec_path="spec.yaml",
            tier="full",
        )
        backend = ScriptedBackend("hf-causal", one_name if method == "generate" else longest)
        runner.run(case, backend)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """Return the output folder of a run that predicted every fixture test split."""
    output = tmp_path_factory.mktemp("written")
    run_cases(output, CLUE_CASES + FEWCLUE_CASES)
    answers = {"TEST_0_QUERY_0": "宁波", "TEST_0_QUERY_1": "剑桥大学", "TEST_0_QUERY_2": "光学"}
    answers |= {"TEST_1_QUERY_0": "一", "TEST_1_QUERY_1": "二"}
    cmrc = output / "submission" / "clue-fake" / "cmrc2018_predict.json"
    cmrc.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
    return output


@pytest.fixture
def clue_folder(written: Path, tmp_path: Path) -> Path:
    """Return a private copy of the CLUE submission folder, for a test to damage."""
    return Path(shutil.copytree(written / "submission" / "clue-fake", tmp_path / "submit"))


def messages(problems: list[Problem], name: str) -> list[tuple[int | None, str]]:
    return [(problem.line, problem.message) for problem in problems if problem.file == name]


def rewrite_lines(path: Path, change) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(change(lines)) + "\n", encoding="utf-8")


# What the harness writes


def test_written_clue_folder_passes(written):
    report = validate(written / "submission" / "clue-fake", DATA_ROOT)

    assert report.problems == []
    assert sorted(report.checked) == [
        "afqmc_predict.json",
        "c311_predict.json",
        "chid10_predict.json",
        "chid11_predict.json",
        "cluener_predict.json",
        "cluewsc11_predict.json",
        "cmrc2018_predict.json",
        "diagnostics_predict.json",
        "tnews10_predict.json",
        "tnews11_predict.json",
    ]


def test_written_fewclue_folder_passes(written):
    report = validate(written / "submission" / "fewclue-fake", DATA_ROOT)

    assert report.problems == []
    assert sorted(report.checked) == ["chidf_predict.json", "tnewsf_predict.json"]


def test_zip_passes_like_folder(clue_folder, tmp_path):
    archive = tmp_path / "submit.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(clue_folder.iterdir()):
            bundle.write(path, arcname=path.name)

    report = validate(archive, DATA_ROOT)

    assert report.problems == []
    assert len(report.checked) == 10


# Damage to JSON-lines files


def test_missing_line_is_reported(clue_folder):
    rewrite_lines(clue_folder / "afqmc_predict.json", lambda lines: lines[:2] + lines[3:])

    found = messages(validate(clue_folder, DATA_ROOT).problems, "afqmc_predict.json")

    assert (
        None,
        "7 lines, but the test file test.json has 8 test rows; write exactly one line per test row",
    ) in found
    assert (3, "no line for id 2 (test file test.json:3); it belongs on this line") in found
    assert len(found) == 2


def test_wrong_label_is_reported(clue_folder):
    def relabel(lines: list[str]) -> list[str]:
        lines[1] = json.dumps({"id": 1, "label": "2"})
        return lines

    rewrite_lines(clue_folder / "afqmc_predict.json", relabel)

    found = messages(validate(clue_folder, DATA_ROOT).problems, "afqmc_predict.json")

    assert found == [(2, "label '2' is not one of the afqmc labels (allowed: 0, 1)")]


def test_integer_label_is_reported(clue_folder):
    def relabel(lines: list[str]) -> list[str]:
        lines[0] = json.dumps({"id": 0, "label": 1})
        return lines

    rewrite_lines(clue_folder / "afqmc_predict.json", relabel)

    found = messages(validate(clue_folder, DATA_ROOT).problems, "afqmc_predict.json")

    assert found == [(1, 'label 1 is not a string; write "1"')]


def test_shuffled_order_is_reported(clue_folder):
    rewrite_lines(
        clue_folder / "tnews11_predict.json", lambda lines: [lines[1], lines[0]] + lines[2:]
    )

    found = messages(validate(clue_folder, DATA_ROOT).problems, "tnews11_predict.json")

    assert found == [
        (2, "id 0 is out of test-file order: it belongs on line 1 (test file test.json:1)")
    ]


def test_repeated_and_unknown_ids(clue_folder):
    def damage(lines: list[str]) -> list[str]:
        return [lines[0], lines[0], json.dumps({"id": 99, "label": "0"})] + lines[3:]

    rewrite_lines(clue_folder / "afqmc_predict.json", damage)

    found = messages(validate(clue_folder, DATA_ROOT).problems, "afqmc_predict.json")

    assert (2, "id 0 repeats line 1") in found
    assert (3, "id 99 is not in the test file") in found
    assert (2, "no line for id 1 (test file test.json:2); it belongs on this line") in found


def test_string_id_is_warning(clue_folder):
    def stringify(lines: list[str]) -> list[str]:
        rows = [json.loads(line) for line in lines]
        return [json.dumps({"id": str(row["id"]), "label": row["label"]}) for row in rows]

    rewrite_lines(clue_folder / "afqmc_predict.json", stringify)

    problems = [
        p for p in validate(clue_folder, DATA_ROOT).problems if p.file == "afqmc_predict.json"
    ]

    assert {problem.severity for problem in problems} == {"warning"}
    assert problems[0].message == "id '0' is a str, but the test file's id is 0"
    assert problems[-1].message == "3 more lines: id type"


def test_invalid_json_line(clue_folder):
    rewrite_lines(clue_folder / "c311_predict.json", lambda lines: [lines[0], "{oops", lines[2]])

    found = messages(validate(clue_folder, DATA_ROOT).problems, "c311_predict.json")

    assert (
        2,
        "invalid JSON at column 2: Expecting property name enclosed in double quotes",
    ) in found


def test_c3_label_out_of_range(clue_folder):
    def relabel(lines: list[str]) -> list[str]:
        lines[1] = json.dumps({"id": 1, "label": 2})
        return lines

    rewrite_lines(clue_folder / "c311_predict.json", relabel)

    found = messages(validate(clue_folder, DATA_ROOT).problems, "c311_predict.json")

    assert found == [(2, "index 2 is outside the 2 options (0-based)")]


def test_cluener_offsets_checked(clue_folder):
    def move(lines: list[str]) -> list[str]:
        lines[0] = json.dumps({"id": 0, "label": {"name": {"张伟": [[1, 2]]}}}, ensure_ascii=False)
        return lines

    rewrite_lines(clue_folder / "cluener_predict.json", move)

    found = messages(validate(clue_folder, DATA_ROOT).problems, "cluener_predict.json")

    assert found == [
        (
            1,
            "label.name.张伟: text[1:3] is '伟在', not the entity '张伟' (offsets are 0-based "
            "and the end is inclusive)",
        )
    ]


# Damage to JSON-object files


def test_chid_missing_tag(clue_folder):
    path = clue_folder / "chid11_predict.json"
    answers = json.loads(path.read_text(encoding="utf-8"))
    del answers["#idiom623379#"]
    path.write_text(json.dumps(answers, indent=1), encoding="utf-8")

    found = messages(validate(clue_folder, DATA_ROOT).problems, "chid11_predict.json")

    assert found == [(None, "missing '#idiom623379#' (test file test1.1.json:2)")]


def test_chid_bad_index_names_line(clue_folder):
    path = clue_folder / "chid11_predict.json"
    answers = json.loads(path.read_text(encoding="utf-8"))
    answers["#idiom623378#"] = 10
    path.write_text(json.dumps(answers, indent=1), encoding="utf-8")

    found = messages(validate(clue_folder, DATA_ROOT).problems, "chid11_predict.json")

    assert found == [(3, "#idiom623378#: index 10 is outside the 10 candidates (0-based)")]


def test_cmrc_extra_key_and_number(clue_folder):
    path = clue_folder / "cmrc2018_predict.json"
    path.write_text(
        '{"TEST_0_QUERY_0": "宁波", "TEST_0_QUERY_1": 5, "TEST_0_QUERY_2": "光学",\n'
        ' "TEST_1_QUERY_0": "一", "TEST_1_QUERY_1": "二", "TEST_9": "x"}',
        encoding="utf-8",
    )

    found = messages(validate(clue_folder, DATA_ROOT).problems, "cmrc2018_predict.json")

    assert found == [
        (1, "TEST_0_QUERY_1: expected an answer string, found 5"),
        (2, "key 'TEST_9' is not in the test file"),
    ]


# Names and layout


def test_wrong_name_is_reported(clue_folder):
    (clue_folder / "cluewsc11_predict.json").rename(clue_folder / "wsc_predict.json")

    found = messages(validate(clue_folder, DATA_ROOT).problems, "wsc_predict.json")

    assert found == [
        (
            None,
            "unknown file name; the leaderboard expects cluewsc11_predict.json (CLUE 1.1) or "
            "cluewsc10_predict.json (1.0)",
        )
    ]


def test_misspelled_name_gets_hint(clue_folder):
    (clue_folder / "afqmc_predict.json").rename(clue_folder / "afqmc1_predict.json")

    found = messages(validate(clue_folder, DATA_ROOT).problems, "afqmc1_predict.json")

    assert found == [(None, "unknown submission file name; did you mean afqmc_predict.json?")]


def test_nested_zip_member_warned(clue_folder, tmp_path):
    archive = tmp_path / "submit.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(clue_folder / "afqmc_predict.json", arcname="team/afqmc_predict.json")

    report = validate(archive, DATA_ROOT)

    assert [problem.severity for problem in report.problems] == ["warning"]
    assert report.checked == ["team/afqmc_predict.json"]


def test_missing_test_file_not_checked(clue_folder, tmp_path):
    report = validate(clue_folder, tmp_path)

    assert report.checked == []
    assert len(report.errors) == 10
    assert report.errors[0].message.startswith("not checked: ")


# Diagnostics


def test_diagnostics_lines_follow_ocnli(written):
    path = written / "submission" / "clue-fake" / "diagnostics_predict.json"

    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    assert [line["id"] for line in lines] == [0, 1, 2, 3, 4, 5]
    assert {line["label"] for line in lines} <= {"entailment", "neutral", "contradiction"}
    assert [set(line) for line in lines] == [{"id", "label"}] * 6


def test_diagnostics_public_labels_scored(tmp_path):
    case = CaseConfig(
        id="diagnostics",
        task="clue-diagnostics",
        split="test_public",
        model="fake",
        method="loglikelihood",
        spec_path="spec.yaml",
        tier="full",
    )
    always_contradiction = ScriptedBackend("hf-causal", lambda context, word: word == "矛盾")

    result = CaseRunner(DATA_ROOT, tmp_path).run(case, always_contradiction)

    assert result.metrics["accuracy"] == 2 / 6
    assert result.submission_file is None


def test_diagnostics_test_has_no_shots(tmp_path):
    case = CaseConfig(
        id="diagnostics",
        task="clue-diagnostics",
        split="test",
        model="fake",
        method="loglikelihood",
        spec_path="spec.yaml",
        tier="full",
        shots=1,
    )

    # The shots would come from the same file, whose rows the case scores all of.
    with pytest.raises(HarnessError, match="1 few-shot examples requested but the split has 0"):
        CaseRunner(DATA_ROOT, tmp_path).run(case, ScriptedBackend("hf-causal", longest))


# Command line and reports


def test_cli_exit_codes(clue_folder, capsys):
    assert main(["validate", str(clue_folder), "--data", str(DATA_ROOT)]) == 0
    assert "10 files checked, 0 errors, 0 warnings" in capsys.readouterr().out

    rewrite_lines(clue_folder / "afqmc_predict.json", lambda lines: lines[:-1])

    assert main(["validate", str(clue_folder), "--data", str(DATA_ROOT)]) == 1
    output = capsys.readouterr().out
    assert "afqmc_predict.json:8: error: no line for id 7 (test file test.json:8)" in output


def test_outputs_check_uses_case_files(written, tmp_path):
    archive = tmp_path / "submit.zip"
    folder = written / "submission" / "clue-fake"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(folder / "afqmc_predict.json", arcname="afqmc_predict.json")
        bundle.writestr("tnews11_predict.json", '{"id": 0, "label": "105"}\n')
    results = [
        CaseResult(
            case_id=name,
            task=name,
            benchmark="clue",
            split="test",
            model="fake",
            method="loglikelihood",
            tier="full",
            shots=0,
            seed=0,
            main_metric="accuracy",
            submission_file=f"/elsewhere/{name}_predict.json",
            data_file=str(DATA_ROOT / folder / "test.json"),
        )
        for name, folder in (("afqmc", "afqmc"), ("tnews11", "tnews"))
    ]

    problems = validate_outputs([archive], results)

    assert [(item["file"], item["line"]) for item in problems][:2] == [
        ("tnews11_predict.json", None),
        ("tnews11_predict.json", 1),
    ]
    assert all(item["source"] == str(archive) for item in problems)
    assert {item["file"] for item in problems} == {"tnews11_predict.json"}


def test_report_json_lists_problems(tmp_path):
    problem = {"source": "submit.zip", "file": "afqmc_predict.json", "line": 3}
    problem |= {"message": "label '2' is not an afqmc label", "severity": "error"}

    json_path, markdown_path = write_reports([], tmp_path, [], [problem])

    assert json.loads(json_path.read_text())["submission_problems"] == [problem]
    assert "- error: `afqmc_predict.json` line 3: label '2'" in markdown_path.read_text()
