"""C3: loading the JSON arrays, gold indices, prompts, scoring and submissions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_backends import ScriptedBackend
from tiny_models import FIXTURES

from harness.errors import DataError
from harness.runner import CaseRunner
from harness.spec import CaseConfig
from harness.tasks import get_task
from harness.tasks.c3 import load_c3

DATA_ROOT = FIXTURES / "clue"
C3_DIR = DATA_ROOT / "c3"
REAL_C3 = Path("/work/shared/data/clue/c3")


def make_case(split: str, method: str = "loglikelihood", **settings) -> CaseConfig:
    values = {
        "id": f"c3-{split}-fake",
        "task": "c3",
        "split": split,
        "model": "fake",
        "method": method,
        "spec_path": "spec.yaml",
        "tier": "full",
    }
    return CaseConfig(**{**values, **settings})


def load(split: str, root: Path = C3_DIR):
    task = get_task("c3")
    return load_c3(task, split, tuple(root / name for name in task.split(split).files))


def write_c3(path: Path, documents: list) -> Path:
    path.write_text(json.dumps(documents, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def prefer(word: str):
    """Return a scripted log-likelihood that prefers every option equal to `word`."""
    return lambda context, option: 0.0 if option == word else -1.0


# Loading


def test_dev_questions_in_file_order():
    loaded = load("d-dev")

    assert [question.question for question in loaded.questions] == [
        "衬衫现在卖多少钱？",
        "他们在哪儿说话？",
        "男的为什么迟到？",
    ]
    assert loaded.documents == 2
    assert [question.line for question in loaded.questions] == [2, 2, 30]


@pytest.mark.parametrize(
    ("position", "choices", "gold"),
    [(0, 3, 0), (1, 4, 0), (2, 2, 1)],
    ids=["three-choices", "four-choices", "two-choices"],
)
def test_gold_is_answer_index(position, choices, gold):
    question = load("d-dev").questions[position]

    assert len(question.choices) == choices
    assert question.gold == gold


def test_repeated_option_takes_first(tmp_path):
    document = [["甲"], [{"question": "问", "choice": ["对", "错", "对"], "answer": "对"}], "1"]
    path = write_c3(tmp_path / "d-dev.json", [document])

    loaded = load_c3(get_task("c3"), "d-dev", (path,))

    assert loaded.questions[0].gold == 0


def test_combined_dev_reads_both_files():
    loaded = load("dev")

    assert len(loaded.questions) == 5
    assert [question.source for question in loaded.questions] == ["d-dev.json"] * 3 + [
        "m-dev.json"
    ] * 2
    assert [question.index for question in loaded.questions] == [0, 1, 2, 3, 4]
    assert loaded.data_file == f"{C3_DIR / 'd-dev.json'} + {C3_DIR / 'm-dev.json'}"


def test_test_split_keeps_ids():
    loaded = load("test")

    assert [question.id for question in loaded.questions] == [0, 1, 2]
    assert {question.gold for question in loaded.questions} == {None}


def test_answer_not_in_choices_names_field(tmp_path):
    documents = [
        [["甲"], [{"question": "问", "choice": ["对", "错"], "answer": "对"}], "1"],
        [["乙"], [{"question": "问", "choice": ["对", "错"], "answer": "好"}], "2"],
    ]
    path = write_c3(tmp_path / "d-dev.json", documents)

    with pytest.raises(DataError) as caught:
        load_c3(get_task("c3"), "d-dev", (path,))

    assert caught.value.line == 18
    assert caught.value.field == "[1][1][0].answer"
    assert "answer '好' is not one of ['对', '错']" in str(caught.value)


def test_one_choice_is_rejected(tmp_path):
    path = write_c3(
        tmp_path / "d-dev.json", [[["甲"], [{"question": "问", "choice": ["对"]}], "1"]]
    )

    with pytest.raises(DataError) as caught:
        load_c3(get_task("c3"), "d-dev", (path,))

    assert caught.value.field == "[0][1][0].choice"


def test_duplicate_test_id_rejected(tmp_path):
    question = {"question": "问", "choice": ["对", "错"], "id": 7}
    path = write_c3(tmp_path / "test1.1.json", [[["甲"], [question, question], "1"]])

    with pytest.raises(DataError) as caught:
        load_c3(get_task("c3"), "test", (path,))

    assert "duplicate question id 7" in str(caught.value)


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "d-dev.json"
    path.write_text('[\n ["甲", [], "1"],\n ["乙" [], "2"]\n]', encoding="utf-8")

    with pytest.raises(DataError) as caught:
        load_c3(get_task("c3"), "d-dev", (path,))

    assert caught.value.line == 3


def test_not_an_array_rejected(tmp_path):
    path = tmp_path / "d-dev.json"
    path.write_text('{"data": []}', encoding="utf-8")

    with pytest.raises(DataError) as caught:
        load_c3(get_task("c3"), "d-dev", (path,))

    assert "expected a JSON array of documents" in str(caught.value)


# Scoring


def test_prompt_holds_context_and_question(tmp_path):
    backend = ScriptedBackend("hf-causal", prefer("商店"))

    CaseRunner(DATA_ROOT, tmp_path).run(make_case("d-dev"), backend)

    request = backend.requests[1]
    assert request.context == (
        "男：这件衬衫多少钱？\n女：原价两百，现在打八折。\n问题：他们在哪儿说话？\n答案："
    )
    assert request.continuations == ("商店", "医院", "学校", "银行")


def test_accuracy_over_questions(tmp_path):
    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("dev"), ScriptedBackend("hf-causal", prefer("放风筝"))
    )

    # Only the m-dev question about kites is answered right; every other question takes
    # its first option, which is gold for 3 of the other 4.
    assert result.metrics == {"accuracy": 0.8}
    assert result.n_scored == 5


def test_length_normalization_by_chars(tmp_path):
    # Summed scores favour the shortest option; per character, "一百六" (-3/3) beats "八十" (-2.2/2).
    def by_length(context: str, option: str) -> float:
        return -1.1 * len(option) if option == "八十" else -1.0 * len(option)

    backend = ScriptedBackend("hf-causal", by_length)
    case = make_case("d-dev", length_normalization="chars")

    result = CaseRunner(DATA_ROOT, tmp_path).run(case, backend)

    records = [json.loads(line) for line in Path(result.predictions_file).read_text().splitlines()]
    assert records[0]["prediction"] == 0
    assert records[0]["scores"] == [-1.0, -1.0, -1.1]


def test_fewshot_prefix_uses_gold_option(tmp_path):
    backend = ScriptedBackend("hf-causal", prefer("堵车"))
    case = make_case("d-dev", shots=1, seed=3)

    CaseRunner(DATA_ROOT, tmp_path).run(case, backend)

    # Seed 3 draws the d-train question about the weather from the train split.
    shot, query = backend.requests[2].context.split("\n\n")
    assert shot == "女：明天降温吗？\n男：听说要降十度。\n问题：明天天气怎样？\n答案：变冷"
    assert query.startswith("女：你怎么又迟到了？")


def test_encoder_gets_question_and_options(tmp_path):
    def second_option(request) -> list[float]:
        return [1.0 if index == 1 else 0.0 for index in range(len(request.choices))]

    backend = ScriptedBackend("hf-multiple-choice", second_option)
    case = make_case("d-dev", method="multiple_choice")

    result = CaseRunner(DATA_ROOT, tmp_path).run(case, backend)

    assert backend.requests[2].context == "女：你怎么又迟到了？\n男：路上堵车，我下次早点出门。"
    assert backend.requests[2].question == "男的为什么迟到？"
    assert backend.requests[2].choices == ("起晚了", "堵车")
    assert result.metrics == {"accuracy": 1 / 3}


# Submissions


def test_submission_lines_in_file_order(tmp_path):
    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("test"), ScriptedBackend("hf-causal", prefer("高峰期"))
    )

    path = Path(result.submission_file)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert path.name == "c311_predict.json"
    assert lines == [{"id": 0, "label": 0}, {"id": 1, "label": 1}, {"id": 2, "label": 0}]


def test_test10_submission_name(tmp_path):
    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("test1.0"), ScriptedBackend("hf-causal", prefer("有点咳嗽"))
    )

    assert Path(result.submission_file).name == "c310_predict.json"
    assert Path(result.submission_file).read_text() == '{"id": 0, "label": 1}\n'


# Real data


@pytest.mark.skipif(not REAL_C3.is_dir(), reason="the shared C3 data is not mounted")
@pytest.mark.parametrize(
    ("split", "documents", "questions"),
    [("d-dev", 1628, 1825), ("m-dev", 1046, 1991), ("dev", 2674, 3816)],
)
def test_real_dev_counts(split, documents, questions):
    loaded = load(split, REAL_C3)

    assert loaded.documents == documents
    assert len(loaded.questions) == questions
