"""CMRC2018: the task declaration, the SQuAD loader, spec keys and the evaluator with fakes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tiny_models import FIXTURES

from harness.backends.base import (
    Backend,
    GenerationRequest,
    ModelConfig,
    NoProgress,
    Progress,
    SpanAnswer,
    SpanRequest,
)
from harness.errors import DataError, HarnessError, SpecError
from harness.evaluators import evaluator_for
from harness.evaluators.span_extraction import clean_answer
from harness.runner import CaseRunner
from harness.spec import CaseConfig, load_spec
from harness.tasks import get_task
from harness.tasks.cmrc import load_squad

DATA_ROOT = FIXTURES / "clue"
CMRC_DIR = DATA_ROOT / "cmrc2018"
TASK = get_task("cmrc2018")


def read_document(split: str) -> dict:
    return json.loads((CMRC_DIR / f"{split}.json").read_text(encoding="utf-8"))


def all_questions(document: dict) -> list[dict]:
    return [
        question
        for article in document["data"]
        for paragraph in article["paragraphs"]
        for question in paragraph["qas"]
    ]


def first_reference(split: str) -> dict[str, str]:
    """Map each question text of a fixture split to its first reference answer."""
    return {
        question["question"]: question["answers"][0]["text"]
        for question in all_questions(read_document(split))
    }


class FakeGenerator(Backend):
    """A causal LM whose output for a prompt is `answer(prompt)`. It keeps the requests."""

    kind = "fake-generator"

    def __init__(self, answer: Callable[[str], str]) -> None:
        super().__init__(ModelConfig(name="fake", backend="hf-causal", path="fake"))
        self.answer = answer
        self.requests: list[GenerationRequest] = []

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress = NoProgress()
    ) -> list[str]:
        self.requests = list(requests)
        progress.advance(len(requests))
        return [self.answer(request.prompt) for request in requests]


class FakeReader(Backend):
    """An extractive QA model that answers with the first reference's span in the passage."""

    kind = "fake-reader"

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__(ModelConfig(name="fake", backend="hf-qa", path="fake"))
        self.answers = answers

    def extract_answers(
        self, requests: Sequence[SpanRequest], progress: Progress = NoProgress()
    ) -> list[SpanAnswer]:
        spans = []
        for request in requests:
            text = self.answers.get(request.question, "")
            start = request.context.find(text) if text else -1
            spans.append(SpanAnswer(text if start >= 0 else "", start, 1.0))
        return spans


def question_of(prompt: str) -> str:
    """Return the question of the last example in a prompt built from the default template."""
    return prompt.rsplit("问题：", 1)[1].split("\n", 1)[0]


def echoing_answers(split: str) -> Callable[[str], str]:
    """Answer like a chatty LM: an "答案：" echo, quotes, then a second line."""
    answers = first_reference(split)
    return lambda prompt: f" 答案：“{answers[question_of(prompt)]}”\n问题：还有吗？"


def make_case(split: str, **settings) -> CaseConfig:
    values = {
        "id": f"cmrc2018-{split}-fake",
        "task": "cmrc2018",
        "split": split,
        "model": "fake",
        "method": "generate",
        "spec_path": "spec.yaml",
        "tier": "full" if split == "test" else "smoke",
    }
    return CaseConfig(**{**values, **settings})


def read_lines(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def write_document(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


# Declaration


def test_task_declares_clue_files():
    names = {split.name: split.filename for split in TASK.splits}

    assert names == {
        "train": "train.json",
        "dev": "dev.json",
        "trial": "trial.json",
        "test": "test.json",
    }
    assert TASK.split("test").submission == "cmrc2018_predict.json"
    assert not TASK.split("test").labelled
    assert TASK.family == "span_extraction"
    assert TASK.benchmark == "clue"


def test_metrics_use_percent_scale():
    assert TASK.main_metric == "em"
    assert TASK.metrics == ("em", "f1")
    assert TASK.metric_scales == {"em": 100.0, "f1": 100.0}


def test_evaluator_offers_both_methods():
    evaluator = evaluator_for(TASK)

    assert evaluator.methods["hf-qa"] == ("extractive",)
    assert evaluator.methods["hf-causal"] == ("generate",)


# Loader


def test_dev_fixture_keeps_all_references():
    loaded = load_squad(TASK, "dev", CMRC_DIR / "dev.json")

    assert len(loaded.questions) == 10
    assert loaded.questions[0].id == "DEV_0_QUERY_0"
    assert loaded.questions[0].references == ("1862年", "1862年", "1862")
    assert loaded.questions[7].location == "data[2].paragraphs[0].qas[1]"


def test_test_fixture_ignores_placeholders():
    loaded = load_squad(TASK, "test", CMRC_DIR / "test.json")

    assert [question.id for question in loaded.questions] == [
        "TEST_0_QUERY_0",
        "TEST_0_QUERY_1",
        "TEST_0_QUERY_2",
        "TEST_1_QUERY_0",
        "TEST_1_QUERY_1",
    ]
    assert all(question.references == () for question in loaded.questions)


def test_placeholder_answers_in_dev_rejected():
    with pytest.raises(DataError) as caught:
        load_squad(TASK, "dev", CMRC_DIR / "test.json")

    assert caught.value.field == "data[0].paragraphs[0].qas[0].answers"
    assert "Score it as split 'test'" in str(caught.value)


def break_answers(document: dict) -> None:
    document["data"][1]["paragraphs"][0]["qas"][2]["answers"] = "七个"


def drop_paragraphs(document: dict) -> None:
    del document["data"][3]["paragraphs"]


def empty_answers(document: dict) -> None:
    document["data"][0]["paragraphs"][0]["qas"][1]["answers"] = []


def repeat_id(document: dict) -> None:
    document["data"][2]["paragraphs"][0]["qas"][0]["id"] = "DEV_0_QUERY_0"


def float_id(document: dict) -> None:
    document["data"][0]["paragraphs"][0]["qas"][2]["id"] = 1.5


def numeric_answer(document: dict) -> None:
    document["data"][1]["paragraphs"][0]["qas"][0]["answers"][1] = {"text": 7, "answer_start": 3}


def missing_context(document: dict) -> None:
    del document["data"][2]["paragraphs"][0]["context"]


LOADER_ERRORS = [
    (break_answers, "data[1].paragraphs[0].qas[2].answers", "expected a list, found str"),
    (drop_paragraphs, "data[3].paragraphs", "missing field"),
    (empty_answers, "data[0].paragraphs[0].qas[1].answers", "at least one reference answer"),
    (repeat_id, "data[2].paragraphs[0].qas[0].id", "first at data[0].paragraphs[0].qas[0]"),
    (float_id, "data[0].paragraphs[0].qas[2].id", "expected a non-empty string id"),
    (numeric_answer, "data[1].paragraphs[0].qas[0].answers[1]", "string 'text'"),
    (missing_context, "data[2].paragraphs[0].context", "expected a non-empty string"),
]


@pytest.mark.parametrize(
    ("damage", "location", "problem"), LOADER_ERRORS, ids=[row[0].__name__ for row in LOADER_ERRORS]
)
def test_loader_error_names_json_path(tmp_path, damage, location, problem):
    document = copy.deepcopy(read_document("dev"))
    damage(document)
    path = write_document(tmp_path, document)

    with pytest.raises(DataError) as caught:
        load_squad(TASK, "dev", path)

    assert caught.value.path == str(path)
    assert caught.value.field == location
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"{path}: field '{location}':")


def test_non_squad_file_is_rejected(tmp_path):
    path = write_document(tmp_path, [{"context": "文章"}])

    with pytest.raises(DataError) as caught:
        load_squad(TASK, "dev", path)

    assert "expected an object with a 'data' list" in str(caught.value)
    assert "SQuAD layout" in str(caught.value)


def test_empty_question_text_is_kept(tmp_path):
    document = copy.deepcopy(read_document("dev"))
    document["data"][0]["paragraphs"][0]["qas"][0]["question"] = ""
    path = write_document(tmp_path, document)

    loaded = load_squad(TASK, "dev", path)

    assert loaded.questions[0].question == ""


# Spec keys

SPEC_HEAD = """\
models:
  lm:
    backend: hf-causal
    packaged: gemma-3-270m
  reader:
    backend: hf-qa
    path: ./reader
cases:
  - task: cmrc2018
    split: dev
"""


def spec_case(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC_HEAD + extra, encoding="utf-8")
    return path


def test_spec_accepts_generation_keys(tmp_path):
    extra = (
        "    model: lm\n"
        "    shots: 1\n"
        '    stop: ["\\n", "。"]\n'
        "    max_new_tokens: 16\n"
        "    cleanup: false\n"
        "    thresholds: {em: 60, f1: 80}\n"
    )

    case = load_spec(spec_case(tmp_path, extra)).cases[0]

    assert case.method == "generate"
    assert case.options == {"stop": ("\n", "。"), "max_new_tokens": 16, "cleanup": False}
    assert case.thresholds == {"em": 60.0, "f1": 80.0}
    assert case.id == "cmrc2018-dev-lm-1shot"


def test_spec_rejects_threshold_over_100(tmp_path):
    path = spec_case(tmp_path, "    model: lm\n    thresholds: {em: 101}\n")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert caught.value.key == "cases[0].thresholds.em"
    assert "expected a number in [0, 100]" in str(caught.value)


def test_spec_rejects_non_bool_cleanup(tmp_path):
    path = spec_case(tmp_path, "    model: lm\n    cleanup: 'yes'\n")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert str(caught.value).startswith(f"{path}:12: cases[0].cleanup: expected true or false")


def test_spec_rejects_generation_keys_extractive(tmp_path):
    path = spec_case(tmp_path, "    model: reader\n    max_new_tokens: 8\n")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert caught.value.key == "cases[0].max_new_tokens"
    assert "applies only to method 'generate', not 'extractive'" in str(caught.value)


def test_spec_rejects_empty_stop_string(tmp_path):
    path = spec_case(tmp_path, "    model: lm\n    stop: ['']\n")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert caught.value.key == "cases[0].stop"


# Evaluator with fake backends


def test_generate_cleanup_scores_answers(tmp_path):
    case = make_case("dev", thresholds={"em": 100.0})

    result = CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(
        case, FakeGenerator(echoing_answers("dev"))
    )

    assert result.metrics == {"em": 100.0, "f1": 100.0}
    assert result.n_selected == 10
    assert result.n_scored == 10
    assert result.passed


def test_generate_without_cleanup_keeps_text(tmp_path):
    case = make_case("dev", options={"cleanup": False})

    result = CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(
        case, FakeGenerator(echoing_answers("dev"))
    )

    records = read_lines(result.predictions_file)
    assert records[0]["prediction"] == " 答案：“1862年”\n问题：还有吗？"
    assert records[0]["em"] == 0
    assert result.metrics["em"] == 0.0
    assert result.failures == []


def test_requests_carry_generation_settings(tmp_path):
    backend = FakeGenerator(echoing_answers("dev"))
    case = make_case("dev", limit=2, options={"stop": ("。",), "max_new_tokens": 8})

    CaseRunner(DATA_ROOT, tmp_path).run(case, backend)

    assert [request.stop for request in backend.requests] == [("。",), ("。",)]
    assert [request.max_new_tokens for request in backend.requests] == [8, 8]


def test_default_prompt_ends_with_answer_cue(tmp_path):
    backend = FakeGenerator(echoing_answers("dev"))

    CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(make_case("dev"), backend)

    first = backend.requests[0]
    assert first.prompt.startswith("阅读文章，用文章中的原文回答问题。\n文章：青石桥位于云溪镇东口")
    assert first.prompt.endswith("\n问题：青石桥始建于哪一年？\n答案：")
    assert first.stop == ("\n",)
    assert first.max_new_tokens == 32


def test_case_prompt_replaces_template(tmp_path):
    backend = FakeGenerator(lambda prompt: "七个")
    case = make_case("dev", limit=1, prompt="问：{question}\n文：{context}\n答：")

    CaseRunner(DATA_ROOT, tmp_path).run(case, backend)

    assert backend.requests[0].prompt.startswith("问：")
    assert backend.requests[0].prompt.endswith("\n答：")


def test_fewshot_shots_come_from_train(tmp_path):
    train_answers = first_reference("train")
    backend = FakeGenerator(echoing_answers("dev"))
    case = make_case("dev", limit=3, shots=2, seed=7)

    CaseRunner(DATA_ROOT, tmp_path).run(case, backend)

    parts = [request.prompt.split("\n\n") for request in backend.requests]
    assert {len(part) for part in parts} == {3}
    assert {tuple(part[:2]) for part in parts} == {tuple(parts[0][:2])}
    for shot in parts[0][:2]:
        question = shot.split("问题：", 1)[1].split("\n", 1)[0]
        assert shot.endswith("答案：" + train_answers[question])


def test_too_many_shots_is_error(tmp_path):
    case = make_case("dev", limit=1, shots=6, fewshot_split="trial")

    with pytest.raises(HarnessError, match="6 few-shot examples requested but split 'trial' has 3"):
        CaseRunner(DATA_ROOT, tmp_path).run(case, FakeGenerator(echoing_answers("dev")))


def test_smoke_subset_is_deterministic(tmp_path):
    case = make_case("dev", smoke_size=4, seed=1234)

    first = CaseRunner(DATA_ROOT, tmp_path / "first").run(
        case, FakeGenerator(echoing_answers("dev"))
    )
    second = CaseRunner(DATA_ROOT, tmp_path / "second").run(
        case, FakeGenerator(echoing_answers("dev"))
    )

    first_ids = [record["id"] for record in read_lines(first.predictions_file)]
    second_ids = [record["id"] for record in read_lines(second.predictions_file)]
    assert len(first_ids) == 4
    assert first_ids == second_ids
    assert first_ids == sorted(first_ids)
    assert first.tier == "smoke"
    assert first.n_selected == 4


def test_smoke_subset_follows_seed(tmp_path):
    ids = []
    for seed in (1, 2):
        case = make_case("dev", smoke_size=4, seed=seed)
        result = CaseRunner(DATA_ROOT, tmp_path / str(seed)).run(
            case, FakeGenerator(echoing_answers("dev"))
        )
        ids.append([record["id"] for record in read_lines(result.predictions_file)])

    assert ids[0] != ids[1]


def test_prediction_records_per_question(tmp_path):
    backend = FakeGenerator(lambda prompt: "北辰工作室" if "星河列车" in prompt else "不知道")

    result = CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(make_case("dev"), backend)

    records = read_lines(result.predictions_file)
    assert result.predictions_file == str(tmp_path / "predictions" / "cmrc2018-dev-fake.jsonl")
    assert len(records) == 10
    assert set(records[3]) >= {"id", "prediction", "references", "em", "f1"}
    assert records[3]["id"] == "DEV_1_QUERY_0"
    assert records[3]["references"] == [
        "北辰工作室和Moonlight Games",
        "北辰工作室和Moonlight Games",
        "北辰工作室与Moonlight Games",
    ]
    assert records[3]["em"] == 0
    assert records[3]["f1"] == 2 * (5 / 5) * (5 / 8) / (5 / 5 + 5 / 8)
    assert records[3]["in_passage"] is True
    assert records[0]["in_passage"] is False


def test_extractive_sends_span_requests(tmp_path):
    backend = FakeReader(first_reference("dev"))
    case = make_case("dev", method="extractive")

    result = CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(case, backend)

    records = read_lines(result.predictions_file)
    assert result.metrics == {"em": 100.0, "f1": 100.0}
    assert records[0]["start"] == 14
    assert records[0]["prediction"] == "1862年"


def test_submission_maps_every_test_id(tmp_path):
    backend = FakeGenerator(lambda prompt: "宁波" if "陈明远" in prompt else "2015年")

    result = CaseRunner(DATA_ROOT, tmp_path).run(make_case("test"), backend)

    path = Path(result.submission_file)
    text = path.read_text(encoding="utf-8")
    answers = json.loads(text)
    assert path == tmp_path / "submission" / "clue-fake" / "cmrc2018_predict.json"
    assert list(answers) == [
        "TEST_0_QUERY_0",
        "TEST_0_QUERY_1",
        "TEST_0_QUERY_2",
        "TEST_1_QUERY_0",
        "TEST_1_QUERY_1",
    ]
    assert answers["TEST_0_QUERY_0"] == "宁波"
    assert answers["TEST_1_QUERY_1"] == "2015年"
    assert "宁波" in text
    assert result.metrics == {}
    assert result.tier == "full"


def test_submission_from_extractive_model(tmp_path):
    backend = FakeReader({"陈明远是哪里人？": "浙江宁波"})

    result = CaseRunner(DATA_ROOT, tmp_path).run(make_case("test", method="extractive"), backend)

    answers = json.loads(Path(result.submission_file).read_text(encoding="utf-8"))
    assert answers == {
        "TEST_0_QUERY_0": "浙江宁波",
        "TEST_0_QUERY_1": "",
        "TEST_0_QUERY_2": "",
        "TEST_1_QUERY_0": "",
        "TEST_1_QUERY_1": "",
    }


def test_short_backend_output_is_error(tmp_path):
    backend = FakeGenerator(lambda prompt: "北京")
    backend.generate = lambda requests, progress=NoProgress(): ["北京"]

    with pytest.raises(HarnessError, match="returned 1 generations for 10 prompts"):
        CaseRunner(DATA_ROOT, tmp_path, full_tier=True).run(make_case("dev"), backend)


# Answer clean-up


@pytest.mark.parametrize(
    ("generated", "expected"),
    [
        ("  北京  ", "北京"),
        ("北京\n上海", "北京"),
        ("\n北京\n", "北京"),
        ("答案：北京", "北京"),
        ("答案: 北京", "北京"),
        ("答：“北京”", "北京"),
        ("'Moonlight Games'", "Moonlight Games"),
        ("「北京」。", "北京」。"),
        ("答案是北京", "答案是北京"),
        ("", ""),
    ],
)
def test_clean_answer_rules(generated, expected):
    assert clean_answer(generated) == expected


def test_clean_answer_never_shortens(tmp_path):
    # "青石桥很长" is not in the passage while its prefix "青石桥" is: the answer stays whole.
    backend = FakeGenerator(lambda prompt: "青石桥很长")

    result = CaseRunner(DATA_ROOT, tmp_path).run(make_case("dev", limit=1), backend)

    record = read_lines(result.predictions_file)[0]
    assert record["prediction"] == "青石桥很长"
    assert record["in_passage"] is False
