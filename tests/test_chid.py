"""ChID: loading both layouts, blank windows, one-to-one assignment, scoring and submissions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_backends import ScriptedBackend
from tiny_models import FIXTURES

from harness.errors import DataError, SpecError
from harness.evaluators.chid import EMPTY_CONTEXT, assign_candidates
from harness.runner import CaseRunner
from harness.spec import CaseConfig, load_spec
from harness.tasks import get_task
from harness.tasks.chid import blank_window, load_chid

DATA_ROOT = FIXTURES / "clue"
CHID_DIR = DATA_ROOT / "chid"
FEWCLUE_DIR = DATA_ROOT / "fewclue" / "chid"
REAL_FEWCLUE = Path("/work/shared/data/clue/fewclue/chid")

# The idiom a scripted model prefers after a context ending with each key. The dev fixture
# has 8 blanks; its first line's two blanks share the candidates 胸有成竹 and 一丝不苟.
PREFERRED = {
    "老王对这次谈判": "胸有成竹",
    "再加结尾就是": "画蛇添足",
    "就能": "事半功倍",
    "真相终于": "水落石出",
    "个个": "兴高采烈",
    EMPTY_CONTEXT: "雷厉风行",
    "____的球员在决赛中": "大显身手",
}


def oracle_score(context: str, continuation: str) -> float:
    """Score the gold idiom of each dev blank 0 and every other idiom -5.

    After "她做实验" (gold 一丝不苟) the model prefers 胸有成竹, the first blank's idiom,
    so only a one-to-one assignment gets that line right.
    """
    if context.endswith("她做实验"):
        return {"胸有成竹": 0.0, "一丝不苟": -1.0}.get(continuation[:4], -5.0)
    for key, idiom in PREFERRED.items():
        if context.endswith(key):
            return 0.0 if continuation.startswith(idiom) else -5.0
    raise AssertionError(f"unexpected context {context!r}")


def make_case(task: str, split: str, method: str = "loglikelihood", **settings) -> CaseConfig:
    values = {
        "id": f"{task}-{split}-fake",
        "task": task,
        "split": split,
        "model": "fake",
        "method": method,
        "spec_path": "spec.yaml",
        "tier": "full",
    }
    return CaseConfig(**{**values, **settings})


def load_fixture(split: str):
    task = get_task("chid")
    chid_split = task.split(split)
    answers = CHID_DIR / chid_split.answers if chid_split.answers else None
    return load_chid(task, split, CHID_DIR / chid_split.filename, answers)


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


# Assignment


def test_hungarian_avoids_repeated_candidate():
    scores = [[0.9, 0.8, 0.1], [0.7, 0.2, 0.1]]

    assert assign_candidates(scores, "argmax") == [0, 0]
    assert assign_candidates(scores, "hungarian") == [1, 0]


def test_more_blanks_than_candidates_fall_back():
    scores = [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]]

    # Rows 0 and 2 take the two candidates (0.9 + 0.3); row 1 is left over and takes its argmax.
    assert assign_candidates(scores, "hungarian") == [0, 0, 1]


def test_single_blank_is_argmax():
    assert assign_candidates([[0.1, 0.5, 0.2]], "hungarian") == [1]


# Loading


def test_clue_dev_blanks_and_gold():
    loaded = load_fixture("dev")

    assert len(loaded.records) == 4
    assert loaded.blank_count == 8
    assert [blank.gold for blank in loaded.records[0].blanks] == [5, 3]
    assert [blank.passage for blank in loaded.records[2].blanks] == [0, 1, 2]
    assert loaded.records[3].blanks[0].start == 0


def test_clue_test_has_no_gold():
    loaded = load_fixture("test")

    assert loaded.answers_path is None
    assert loaded.blank_count == 5
    assert loaded.records[0].blanks[0].tag == "#idiom623377#"
    assert {blank.gold for record in loaded.records for blank in record.blanks} == {None}


def test_missing_answer_names_line(tmp_path):
    data = write_lines(
        tmp_path / "dev.json",
        [{"content": ["他#idiom000001#。"], "candidates": ["甲乙丙丁", "戊己庚辛"]}],
    )
    answers = tmp_path / "dev_answer.json"
    answers.write_text('{"#idiom000002#": 0}', encoding="utf-8")

    with pytest.raises(DataError) as caught:
        load_chid(get_task("chid"), "dev", data, answers)

    assert caught.value.line == 1
    assert caught.value.field == "content[0]"
    assert "blank #idiom000001# has no answer" in str(caught.value)


def test_answer_out_of_range_rejected(tmp_path):
    data = write_lines(
        tmp_path / "dev.json",
        [{"content": ["他#idiom000001#。"], "candidates": ["甲乙丙丁", "戊己庚辛"]}],
    )
    answers = tmp_path / "dev_answer.json"
    answers.write_text('{"#idiom000001#": 2}', encoding="utf-8")

    with pytest.raises(DataError) as caught:
        load_chid(get_task("chid"), "dev", data, answers)

    assert caught.value.path == str(answers)
    assert "index 2 is outside the 2 candidates" in str(caught.value)


def test_duplicate_tag_names_both_lines(tmp_path):
    row = {"content": ["他#idiom000001#。"], "candidates": ["甲乙丙丁", "戊己庚辛"]}
    data = write_lines(tmp_path / "test1.1.json", [row, row])

    with pytest.raises(DataError) as caught:
        load_chid(get_task("chid"), "test", data, None)

    assert caught.value.line == 2
    assert "duplicate blank #idiom000001# (first on line 1)" in str(caught.value)


def test_line_without_blank_rejected(tmp_path):
    data = write_lines(
        tmp_path / "test1.1.json", [{"content": ["没有空"], "candidates": ["甲", "乙"]}]
    )

    with pytest.raises(DataError) as caught:
        load_chid(get_task("chid"), "test", data, None)

    assert caught.value.field == "content"


def test_fewclue_record_needs_one_blank(tmp_path):
    row = {"id": 1, "candidates": ["甲", "乙"], "content": "#idiom#和#idiom#", "answer": 0}
    data = write_lines(tmp_path / "dev_0.json", [row])

    with pytest.raises(DataError) as caught:
        load_chid(get_task("fewclue-chid"), "dev_0", data, None)

    assert "expected exactly one #idiom# blank, found 2" in str(caught.value)


def test_fewclue_fixture_loads():
    task = get_task("fewclue-chid")

    loaded = load_chid(task, "test_public", FEWCLUE_DIR / "test_public.json", None)

    assert [record.id for record in loaded.records] == [300, 301, 302]
    assert [record.blanks[0].gold for record in loaded.records] == [5, 2, 6]


# Windows


def test_window_hides_other_blanks():
    record = load_fixture("dev").records[3]

    before, after = blank_window(record, record.blanks[1], None, 20, "____")

    assert before == "____的球员在决赛中"
    assert after == "，赢得了冠军。"


def test_window_bounds_both_sides():
    record = load_fixture("dev").records[0]

    before, after = blank_window(record, record.blanks[0], 3, 4, "____")

    assert before == "次谈判"
    assert after == "，一点也"


# Scoring


def test_hungarian_beats_argmax_on_dev(tmp_path):
    runner = CaseRunner(DATA_ROOT, tmp_path)

    joint = runner.run(
        make_case("chid", "dev", id="joint"), ScriptedBackend("hf-causal", oracle_score)
    )
    alone = runner.run(
        make_case("chid", "dev", id="alone", options={"assignment": "argmax"}),
        ScriptedBackend("hf-causal", oracle_score),
    )

    assert joint.metrics == {"accuracy": 1.0}
    assert alone.metrics == {"accuracy": 0.875}
    assert joint.n_scored == 8
    assert joint.n_rows == 4


def test_continuation_adds_text_after_blank(tmp_path):
    backend = ScriptedBackend("hf-causal", oracle_score)

    CaseRunner(DATA_ROOT, tmp_path).run(make_case("chid", "dev"), backend)

    first = backend.requests[0]
    assert first.context == "老王对这次谈判"
    assert first.continuations[5] == "胸有成竹，一点也不紧张。"
    assert len(first.continuations) == 10
    assert backend.requests[6].context == EMPTY_CONTEXT


def test_predictions_record_every_blank(tmp_path):
    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("chid", "dev"), ScriptedBackend("hf-causal", oracle_score)
    )

    records = [json.loads(line) for line in Path(result.predictions_file).read_text().splitlines()]
    assert len(records) == 8
    assert records[1]["tag"] == "#idiom900006#"
    assert records[1]["prediction"] == 3
    assert records[1]["gold"] == 3


def test_encoder_gets_marked_passage(tmp_path):
    backend = ScriptedBackend("hf-multiple-choice", lambda request: [0.0] * len(request.choices))
    case = make_case("chid", "dev", method="multiple_choice")

    result = CaseRunner(DATA_ROOT, tmp_path).run(case, backend)

    assert backend.requests[7].context == "____的球员在决赛中[MASK][MASK][MASK][MASK]，赢得了冠军。"
    assert backend.requests[7].question == ""
    assert result.n_scored == 8


# Submissions


def test_clue_submission_is_complete_object(tmp_path):
    tags = [blank.tag for record in load_fixture("test").records for blank in record.blanks]

    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("chid", "test"), ScriptedBackend("hf-causal", lambda context, text: len(text))
    )

    path = Path(result.submission_file)
    submitted = json.loads(path.read_text(encoding="utf-8"))
    assert path.name == "chid11_predict.json"
    assert list(submitted) == tags
    assert all(type(value) is int for value in submitted.values())
    assert result.metrics == {}


def test_clue_test10_submission_name(tmp_path):
    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("chid", "test1.0"), ScriptedBackend("hf-causal", lambda context, text: 0.0)
    )

    submitted = json.loads(Path(result.submission_file).read_text(encoding="utf-8"))
    assert Path(result.submission_file).name == "chid10_predict.json"
    assert list(submitted) == ["#idiom577157#", "#idiom577158#"]


def test_fewclue_submission_lines(tmp_path):
    def prefer_second(context: str, text: str) -> float:
        return 1.0 if text.startswith(("优柔寡断", "杞人忧天")) else 0.0

    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("fewclue-chid", "test"), ScriptedBackend("hf-causal", prefer_second)
    )

    lines = [json.loads(line) for line in Path(result.submission_file).read_text().splitlines()]
    assert Path(result.submission_file).name == "chidf_predict.json"
    assert lines == [
        {"id": 0, "answer": 1},
        {"id": 1, "answer": 1},
        {"id": 2, "answer": 1},
        {"id": 3, "answer": 1},
    ]


# Spec keys


def write_spec(tmp_path: Path, case_lines: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "models:\n  lm: {backend: hf-causal, path: /nonexistent}\n"
        "cases:\n  - task: chid\n    split: dev\n    model: lm\n" + case_lines,
        encoding="utf-8",
    )
    return path


def test_spec_assignment_defaults_hungarian(tmp_path):
    case = load_spec(write_spec(tmp_path, "")).cases[0]

    assert case.options["assignment"] == "hungarian"
    assert case.options["continuation_chars"] == 20
    assert case.options["context_chars"] is None


def test_spec_unknown_assignment_rejected(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, "    assignment: greedy\n"))

    assert "cases[0].assignment: invalid value 'greedy'" in str(caught.value)


def test_spec_marker_needs_encoder(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, "    blank_marker: '[MASK]'\n"))

    assert "applies only to method 'multiple_choice'" in str(caught.value)


# Real data


@pytest.mark.skipif(not REAL_FEWCLUE.is_dir(), reason="the shared FewCLUE data is not mounted")
@pytest.mark.parametrize(
    ("split", "count"),
    [("dev_0", 42), ("train_few_all", 202), ("test_public", 2002), ("test", 2000)],
)
def test_real_fewclue_counts(split, count):
    task = get_task("fewclue-chid")

    loaded = load_chid(task, split, REAL_FEWCLUE / task.split(split).filename, None)

    assert len(loaded.records) == count
    assert loaded.blank_count == count
