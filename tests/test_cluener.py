"""CLUENER2020: loading and offset checks, the official metric, output parsing, submissions."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from fake_backends import ScriptedBackend
from tiny_models import FIXTURES

import harness.evaluators.ner_output
import harness.metrics.ner
from harness.backends.base import EntitySpan
from harness.errors import BackendError, DataError
from harness.evaluators.ner_output import parse_entities, type_aliases
from harness.metrics.ner import official_scores, span_micro_f1
from harness.runner import CaseRunner
from harness.spec import CaseConfig
from harness.tasks import get_task
from harness.tasks.cluener import TYPE_NAMES, load_ner

DATA_ROOT = FIXTURES / "clue"
NER_DIR = DATA_ROOT / "cluener"
REAL_DEV = Path("/work/shared/data/clue/cluener/dev.json")

TEXT = "北京勘察设计协会的张伟说"
GOLD = {"organization": {"北京勘察设计协会": [[0, 7]]}, "name": {"张伟": [[9, 10]]}}
ALIASES = type_aliases({"name": "人名", "organization": "组织机构", "company": "公司"})


def make_case(split: str, method: str, **settings) -> CaseConfig:
    values = {
        "id": f"cluener-{split}-{method}",
        "task": "cluener",
        "split": split,
        "model": "fake",
        "method": method,
        "spec_path": "spec.yaml",
        "tier": "full",
    }
    return CaseConfig(**{**values, **settings})


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


def read_lines(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


# The worked example


def test_end_offset_is_inclusive():
    assert TEXT[0:8] == "北京勘察设计协会"
    assert TEXT[9:11] == "张伟"


def test_example_loads_from_dev():
    loaded = load_ner(get_task("cluener"), "dev", NER_DIR / "dev.json")

    assert loaded.records[0].text == TEXT
    assert loaded.records[0].gold == {
        "organization": {"北京勘察设计协会": ((0, 7),)},
        "name": {"张伟": ((9, 10),)},
    }


def test_exact_prediction_scores_types():
    scores = official_scores([GOLD], [GOLD], TYPE_NAMES)

    assert scores.per_type["organization"].f1 == 1.0
    assert scores.per_type["name"].f1 == 1.0
    # The 8 types without any gold or predicted entity have no F1 and are left out.
    assert scores.macro_f1 == 1.0
    assert len(scores.absent_types) == 8


def test_moved_offsets_keep_official_score():
    moved = {"organization": {"北京勘察设计协会": [[1, 8]]}, "name": {"张伟": [[0, 1]]}}

    exact = official_scores([GOLD], [GOLD], TYPE_NAMES)
    shifted = official_scores([GOLD], [moved], TYPE_NAMES)

    assert shifted.per_type["organization"].f1 == 1.0
    assert shifted.per_type["name"].f1 == 1.0
    assert shifted.macro_f1 == exact.macro_f1
    assert span_micro_f1([GOLD], [GOLD]) == 1.0
    assert span_micro_f1([GOLD], [moved]) == 0.0


def test_absent_type_left_out():
    scores = official_scores([GOLD], [GOLD], TYPE_NAMES)
    score = scores.per_type["scene"]

    assert (score.true_positives, score.false_positives, score.false_negatives) == (0, 0, 0)
    assert "scene" in scores.absent_types
    assert "name" not in scores.absent_types


# The official metric by hand


HAND_GOLD = [
    {"name": {"张伟": [[0, 1]], "李雷": [[3, 4]]}, "company": {"星河公司": [[6, 9]]}},
    {"name": {"王芳": [[0, 1]]}},
]
HAND_PREDICTED = [
    {"name": {"张伟": [[0, 1]], "王五": [[3, 4]]}},
    {"name": {"王芳": [[0, 1]]}, "address": {"上海": [[3, 4]]}},
]


def test_hand_counts_per_type():
    scores = official_scores(HAND_GOLD, HAND_PREDICTED, TYPE_NAMES).per_type

    assert (scores["name"].true_positives, scores["name"].false_positives) == (2, 1)
    assert scores["name"].false_negatives == 1
    assert (scores["company"].false_negatives, scores["company"].f1) == (1, 0.0)
    assert (scores["address"].false_positives, scores["address"].f1) == (1, 0.0)


def test_hand_f1_values():
    scores = official_scores(HAND_GOLD, HAND_PREDICTED, TYPE_NAMES)

    # name: precision 2/3, recall 2/3, so F1 2/3; company (only in gold) and address (only
    # predicted) score 0; the 7 types with no entity on either side are left out.
    assert scores.per_type["name"].f1 == pytest.approx(2 / 3)
    assert scores.macro_f1 == pytest.approx(2 / 9)


def test_hand_macro_over_three_types():
    scores = official_scores(HAND_GOLD, HAND_PREDICTED, ["name", "company", "address"])

    assert scores.macro_f1 == pytest.approx(2 / 9)


def test_hand_span_micro_f1():
    # 4 predicted and 4 gold spans share 3 triples: the strings are not compared, so 王五
    # at 李雷's offsets counts. Precision and recall are 3/4.
    assert span_micro_f1(HAND_GOLD, HAND_PREDICTED) == 0.75


def test_repeated_string_counts_once():
    gold = [{"name": {"王芳": [[0, 1], [3, 4]]}}]

    scores = official_scores(gold, [{"name": {"王芳": [[0, 1]]}}], ["name"])

    assert scores.per_type["name"].f1 == 1.0
    assert span_micro_f1(gold, [{"name": {"王芳": [[0, 1]]}}]) == pytest.approx(2 / 3)


def test_line_counts_must_match():
    with pytest.raises(ValueError, match="2 gold lines but 1 predicted lines"):
        official_scores(HAND_GOLD, HAND_PREDICTED[:1], TYPE_NAMES)


@pytest.mark.parametrize("module", [harness.metrics.ner, harness.evaluators.ner_output])
def test_docstring_examples_hold(module):
    failures, attempts = doctest.testmod(module)

    assert attempts > 0
    assert failures == 0


# Loading


def test_offset_mismatch_names_line_field(tmp_path):
    rows = [
        {"text": TEXT, "label": GOLD},
        {"text": TEXT, "label": {"organization": {"北京勘察设计协会": [[0, 8]]}}},
    ]
    path = write_lines(tmp_path / "dev.json", rows)

    with pytest.raises(DataError) as caught:
        load_ner(get_task("cluener"), "dev", path)

    assert caught.value.line == 2
    assert caught.value.field == "label.organization.北京勘察设计协会"
    assert f"{path}:2:" in str(caught.value)
    assert "text[0:9] is '北京勘察设计协会的', not the entity '北京勘察设计协会'" in str(
        caught.value
    )


def test_unknown_type_rejected(tmp_path):
    path = write_lines(
        tmp_path / "dev.json", [{"text": TEXT, "label": {"person": {"张伟": [[9, 10]]}}}]
    )

    with pytest.raises(DataError) as caught:
        load_ner(get_task("cluener"), "dev", path)

    assert caught.value.field == "label.person"
    assert "unknown entity type 'person'" in str(caught.value)


def test_offsets_past_end_rejected(tmp_path):
    path = write_lines(
        tmp_path / "dev.json", [{"text": TEXT, "label": {"name": {"张伟": [[9, 12]]}}}]
    )

    with pytest.raises(DataError) as caught:
        load_ner(get_task("cluener"), "dev", path)

    assert "outside the text of length 12" in str(caught.value)


def test_test_file_keeps_ids():
    loaded = load_ner(get_task("cluener"), "test", NER_DIR / "test.json")

    assert [record.id for record in loaded.records] == [0, 1, 2]
    assert {record.gold is None for record in loaded.records} == {True}


# Parsing generated output


@pytest.mark.parametrize(
    "output",
    [
        '{"name": ["张伟"], "organization": ["北京勘察设计协会"]}',
        '```json\n{"name": ["张伟"], "organization": ["北京勘察设计协会"]}\n```',
        "{'人名': ['张伟'], '组织机构': ['北京勘察设计协会'],}",
        '[{"type": "name", "entity": "张伟"}, {"type": "organization", "entity": "北京勘察设计协会"}]',
        '[["name", "张伟"], ["organization", "北京勘察设计协会"]]',
        '答案：{"name": "张伟", "organization": ["北京勘察设计协会",]}。',
    ],
    ids=["plain", "fenced", "single-quotes", "object-list", "pair-list", "prose-and-comma"],
)
def test_lenient_shapes_parse(output):
    parsed = parse_entities(output, TEXT, ALIASES)

    assert parsed.failure is None
    assert parsed.entities == {"name": ["张伟"], "organization": ["北京勘察设计协会"]}


def test_entity_not_in_text_dropped():
    parsed = parse_entities('{"name": ["张伟", "李雷"], "planet": ["火星"]}', TEXT, ALIASES)

    assert parsed.entities == {"name": ["张伟"]}
    assert parsed.dropped == 2
    assert parsed.failure is None


def test_cut_off_output_is_closed():
    parsed = parse_entities('{"name": ["张伟"], "organization": [', TEXT, ALIASES)

    assert parsed.entities == {"name": ["张伟"]}
    assert parsed.failure is None


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("", "no JSON object or array"),
        ("句子里没有实体。", "no JSON object or array"),
        ('{"name": }', "invalid JSON"),
        ('{"name": 5}', "unexpected shape"),
        ("[1, 2]", "unexpected shape"),
    ],
    ids=["empty", "prose", "broken", "number-value", "number-list"],
)
def test_unreadable_output_is_failure(output, reason):
    parsed = parse_entities(output, TEXT, ALIASES)

    assert parsed.failure.startswith(reason)
    assert parsed.entities == {}


# Scoring through the runner


DEV_OUTPUTS = {
    "北京勘察设计协会的张伟说": '{"organization": ["北京勘察设计协会"], "name": ["张伟"]}',
    "星河科技公司总经理王芳和王芳的助理去了故宫": "```json\n{'company': ['星河科技公司'], 'name': ['王芳']}\n```",
    "玩家在《荒野之旅》里重现了电影《远山》的场景": "我不知道",
    "今天天气很好": "{}",
    "杭州市教育局发布了新规定": '{"government": ["杭州市教育局"',
    "他在上海的书店买了《三体》": '{"address": ["上海"], "book": ["三体"]}',
}


def dev_output(request) -> str:
    text = request.prompt.rsplit("句子：", 1)[1].split("\n", 1)[0]
    return DEV_OUTPUTS[text]


def test_generation_counts_parse_failures(tmp_path):
    backend = ScriptedBackend("hf-causal", dev_output)

    result = CaseRunner(DATA_ROOT, tmp_path).run(make_case("dev", "generate"), backend)

    # Right: organization, name, company, government, address. Missed: position, scene,
    # and game and movie on the unreadable line. "三体" is in the text, but it is not the
    # gold "《三体》", so book has one false positive and one false negative.
    assert result.metrics["parse_failures"] == 1.0
    assert result.metrics["f1_organization"] == 1.0
    assert result.metrics["f1_game"] == 0.0
    assert result.metrics["f1_book"] == 0.0
    assert result.metrics["macro_f1"] == 0.5
    # 8 predicted spans, 12 gold spans, 7 shared: F1 = 2 * 7 / (8 + 12).
    assert result.metrics["span_micro_f1"] == pytest.approx(0.7)
    assert result.n_scored == 6


def test_generation_request_settings(tmp_path):
    backend = ScriptedBackend("hf-causal", dev_output)
    case = make_case("dev", "generate", options={"max_new_tokens": 64})

    CaseRunner(DATA_ROOT, tmp_path).run(case, backend)

    assert backend.requests[0].max_new_tokens == 64
    assert backend.requests[0].stop == ("\n\n",)
    assert backend.requests[0].prompt.endswith("句子：北京勘察设计协会的张伟说\n实体：")


def test_generated_entities_get_all_offsets(tmp_path):
    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("dev", "generate"), ScriptedBackend("hf-causal", dev_output)
    )

    records = read_lines(result.predictions_file)
    assert records[1]["prediction"]["name"] == {"王芳": [[9, 10], [12, 13]]}
    assert records[2]["parse_failure"] == "no JSON object or array in the output"
    assert records[2]["output"] == "我不知道"


def test_fewshot_examples_answer_in_json(tmp_path):
    backend = ScriptedBackend("hf-causal", dev_output)

    CaseRunner(DATA_ROOT, tmp_path).run(make_case("dev", "generate", shots=1, seed=0), backend)

    shot = backend.requests[0].prompt.split("\n\n")[0]
    answer = shot.rsplit("实体：", 1)[1]
    assert json.loads(answer) in (
        {"name": ["李雷"], "company": ["星河科技公司"]},
        {"book": ["《三体》"], "address": ["上海"]},
        {"government": ["财政部"], "position": ["副部长"]},
    )


def gold_tagger(text: str) -> list[EntitySpan]:
    """Tag each dev text with its gold entities."""
    loaded = load_ner(get_task("cluener"), "dev", NER_DIR / "dev.json")
    for record in loaded.records:
        if record.text == text:
            return [
                EntitySpan(kind, start, end, entity)
                for kind, by_entity in record.gold.items()
                for entity, offsets in by_entity.items()
                for start, end in offsets
            ]
    return []


def test_gold_tags_score_perfectly(tmp_path):
    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("dev", "tagger"), ScriptedBackend("hf-token-classifier", gold_tagger)
    )

    # The 6 dev lines hold entities of all 10 types, so the macro mean is 1.
    assert result.metrics["macro_f1"] == 1.0
    assert result.metrics["span_micro_f1"] == 1.0
    assert "parse_failures" not in result.metrics


def test_tagger_unknown_type_is_error(tmp_path):
    backend = ScriptedBackend(
        "hf-token-classifier", lambda text: [EntitySpan("PER", 0, 0, text[0])]
    )

    with pytest.raises(BackendError, match="tagged an entity of type 'PER'"):
        CaseRunner(DATA_ROOT, tmp_path).run(make_case("dev", "tagger"), backend)


def test_chinese_type_names_accepted(tmp_path):
    backend = ScriptedBackend(
        "hf-token-classifier", lambda text: [EntitySpan("人名", 0, 1, text[:2])]
    )

    result = CaseRunner(DATA_ROOT, tmp_path).run(make_case("test", "tagger"), backend)

    assert read_lines(result.submission_file)[0]["label"] == {"name": {"张伟": [[0, 1]]}}


# Submissions


def test_submission_writes_offsets_and_empty(tmp_path):
    outputs = {
        "张伟在星河科技公司担任总经理": '{"name": ["张伟"], "position": ["总经理"]}',
        "今天天气很好": "无",
        "他在上海的故宫博物馆前拍照": '{"address": ["上海"], "scene": ["故宫博物馆"]}',
    }

    def answer(request) -> str:
        return outputs[request.prompt.rsplit("句子：", 1)[1].split("\n", 1)[0]]

    result = CaseRunner(DATA_ROOT, tmp_path).run(
        make_case("test", "generate"), ScriptedBackend("hf-causal", answer)
    )

    assert Path(result.submission_file).name == "cluener_predict.json"
    assert read_lines(result.submission_file) == [
        {"id": 0, "label": {"name": {"张伟": [[0, 1]]}, "position": {"总经理": [[11, 13]]}}},
        {"id": 1, "label": {}},
        {"id": 2, "label": {"address": {"上海": [[2, 3]]}, "scene": {"故宫博物馆": [[5, 9]]}}},
    ]
    assert result.metrics == {"parse_failures": 1.0}


# Real data


@pytest.mark.skipif(not REAL_DEV.is_file(), reason="the shared CLUENER data is not mounted")
def test_real_dev_gold_scores_one():
    loaded = load_ner(get_task("cluener"), "dev", REAL_DEV)
    gold = [record.gold for record in loaded.records]

    scores = official_scores(gold, gold, TYPE_NAMES)

    assert len(loaded.records) == 1343
    assert scores.macro_f1 == 1.0
    assert span_micro_f1(gold, gold) == 1.0
