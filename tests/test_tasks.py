"""Tests for task declarations, record validation, label normalisation and few-shot prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data.jsonl import sha256_file
from harness.errors import DataError
from harness.metrics.classification import accuracy
from harness.tasks import TASKS, get_task
from harness.tasks.base import Example
from harness.tasks.examples import load_split, normalize_label
from harness.tasks.prompting import fewshot_prefix, fill, select_shots, verbalizers

FIXTURE_ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "clue"


def fixture_splits() -> list:
    """List (task, split, path) for every classification split whose file is a fixture."""
    params = []
    for task in TASKS.values():
        if task.family != "classification":
            continue
        for split in task.splits:
            path = FIXTURE_ROOT / task.directory / split.filename
            if path.is_file():
                params.append(pytest.param(task, split, path, id=f"{task.name}-{split.name}"))
    return params


FIXTURE_SPLITS = fixture_splits()


def claimed_fixture_files() -> set[Path]:
    """Return every fixture file that a split of any task reads, answer files included."""
    claimed = set()
    for task in TASKS.values():
        for split in task.splits:
            names = list(getattr(split, "files", (split.filename,)))
            if getattr(split, "answers", None):
                names.append(split.answers)
            claimed |= {FIXTURE_ROOT / task.directory / name for name in names}
    return {path for path in claimed if path.is_file()}


UNLABELLED_FIXTURE_SPLITS = [param for param in FIXTURE_SPLITS if not param.values[1].labelled]


def write_rows(tmp_path: Path, rows: list, name: str = "data.json") -> Path:
    """Write rows as JSON lines. A str row is written as-is and anything else as JSON."""
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def nonblank_lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_bytes().decode("utf-8-sig")
    return [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]


def make_example(index: int, gold: str | None, sentence: str = "") -> Example:
    return Example(index=index, line=index + 1, id=index, fields={"sentence": sentence}, gold=gold)


WSC_ROW = {
    "target": {"span1_index": 0, "span1_text": "小王", "span2_index": 6, "span2_text": "他"},
    "idx": 0,
    "label": "true",
    "text": "小王推开门，他看见雪停了。",
}


# Registry and declarations


def test_registry_holds_every_task():
    assert list(TASKS) == [
        "afqmc",
        "tnews",
        "iflytek",
        "cmnli",
        "ocnli",
        "cluewsc2020",
        "csl",
        "clue-diagnostics",
        "fewclue-bustm",
        "fewclue-eprstmt",
        "fewclue-csldcp",
        "fewclue-tnews",
        "fewclue-iflytek",
        "fewclue-ocnli",
        "fewclue-cluewsc",
        "fewclue-csl",
        "chid",
        "fewclue-chid",
        "c3",
        "cluener",
        "cmrc2018",
        "similarity-pairs",
        "similarity-sts",
        "similarity-pair-classification",
        "similarity-generation",
    ]


def test_get_task_unknown_lists_names():
    with pytest.raises(KeyError) as caught:
        get_task("cmrc")

    assert "unknown task 'cmrc'" in str(caught.value)
    assert "afqmc, tnews" in str(caught.value)


def test_tnews_labels_skip_105_and_111():
    ids = get_task("tnews").label_ids

    assert ids == [str(number) for number in range(100, 117) if number not in (105, 111)]


def test_label_set_sizes_match_benchmark():
    assert len(get_task("iflytek").labels) == 119
    assert len(get_task("fewclue-csldcp").labels) == 67
    assert get_task("cmnli").label_ids == ["entailment", "neutral", "contradiction"]
    assert get_task("cluewsc2020").label_ids == ["true", "false"]


def test_verbalizers_are_distinct_per_task():
    for task in TASKS.values():
        words = [label.verbalizer for label in task.labels]
        assert len(set(words)) == len(words), task.name


def test_submission_names_follow_clue_rules():
    names = {
        (task.name, split.name): split.submission
        for task in TASKS.values()
        for split in task.splits
        if not split.labelled
    }

    assert names[("afqmc", "test")] == "afqmc_predict.json"
    assert names[("tnews", "test")] == "tnews11_predict.json"
    assert names[("tnews", "test1.0")] == "tnews10_predict.json"
    assert names[("ocnli", "test")] == "ocnli_50k_predict.json"
    assert names[("cluewsc2020", "test")] == "cluewsc11_predict.json"
    assert names[("cluewsc2020", "test1.0")] == "cluewsc10_predict.json"
    assert names[("fewclue-tnews", "test")] == "tnewsf_predict.json"


def test_only_unlabelled_splits_have_submissions():
    for task in TASKS.values():
        for split in task.splits:
            assert (split.submission is None) == split.labelled, f"{task.name} {split.name}"


def test_split_unknown_name_lists_known():
    with pytest.raises(KeyError) as caught:
        get_task("afqmc").split("validation")

    assert "known: train, dev, test" in str(caught.value)


# Fixture files


def test_every_fixture_file_belongs_to_a_split():
    on_disk = set(FIXTURE_ROOT.rglob("*.json"))

    assert on_disk - claimed_fixture_files() == set()


@pytest.mark.parametrize(("task", "split", "path"), FIXTURE_SPLITS)
def test_fixture_split_loads(task, split, path):
    loaded = load_split(task, split.name, path)

    assert len(loaded.examples) == len(nonblank_lines(path))
    assert loaded.sha256 == sha256_file(path)
    assert [example.index for example in loaded.examples] == list(range(len(loaded.examples)))
    if split.labelled:
        assert all(example.gold in task.label_ids + [None] for example in loaded.examples)
    else:
        assert all(example.gold is None for example in loaded.examples)


@pytest.mark.parametrize(("task", "split", "path"), UNLABELLED_FIXTURE_SPLITS)
def test_test_split_keeps_rows_in_order(task, split, path):
    lines = nonblank_lines(path)
    expected_ids = [
        json.loads(line).get(task.id_field, index) for index, (_, line) in enumerate(lines)
    ]

    loaded = load_split(task, split.name, path)

    assert [example.line for example in loaded.examples] == [number for number, _ in lines]
    assert [example.id for example in loaded.examples] == expected_ids
    assert loaded.skipped == 0


def test_unlabelled_fixture_splits_exist():
    names = {param.id for param in UNLABELLED_FIXTURE_SPLITS}

    assert "tnews-test1.0" in names
    assert "fewclue-tnews-test" in names
    assert "clue-diagnostics-test" in names
    assert len(names) == 18


def test_fixture_nli_dev_skips_dash_rows():
    for name in ("ocnli", "cmnli"):
        task = get_task(name)
        loaded = load_split(task, "dev", FIXTURE_ROOT / name / "dev.json")
        assert loaded.skipped == 1, name


def test_fewclue_tnews_test_keeps_string_ids():
    task = get_task("fewclue-tnews")

    loaded = load_split(task, "test", FIXTURE_ROOT / "fewclue" / "tnews" / "test.json")

    assert [example.id for example in loaded.examples][:3] == ["0", "1", "2"]


# NLI rows without an annotator majority


def test_ocnli_dash_row_is_skipped(tmp_path):
    rows = [
        {"sentence1": "甲", "sentence2": "乙", "label": "entailment", "id": 0},
        {"sentence1": "丙", "sentence2": "丁", "label": "-", "id": 1},
        {"sentence1": "戊", "sentence2": "己", "label": "neutral", "id": 2},
    ]
    path = write_rows(tmp_path, rows, "dev.json")

    loaded = load_split(get_task("ocnli"), "dev", path)
    gold = [example.gold for example in loaded.examples]

    assert gold == ["entailment", None, "neutral"]
    assert loaded.skipped == 1
    assert accuracy(gold, ["entailment", "contradiction", "contradiction"]) == 0.5


def test_dash_label_rejected_outside_nli(tmp_path):
    path = write_rows(tmp_path, [{"sentence1": "甲", "sentence2": "乙", "label": "-"}])

    with pytest.raises(DataError) as caught:
        load_split(get_task("afqmc"), "dev", path)

    assert caught.value.field == "label"
    assert caught.value.line == 1


# Test-file ids


def test_duplicate_test_id_names_both_lines(tmp_path):
    rows = [{"id": number, "sentence1": "甲", "sentence2": "乙"} for number in (0, 1, 1, 3)]
    path = write_rows(tmp_path, rows, "test.json")

    with pytest.raises(DataError) as caught:
        load_split(get_task("afqmc"), "test", path)

    assert caught.value.line == 3
    assert caught.value.field == "id"
    assert f"{path}:3" in str(caught.value)
    assert "duplicate id 1 (first on line 2)" in str(caught.value)


def test_duplicate_ids_allowed_in_labelled_split(tmp_path):
    rows = [{"id": 7, "sentence1": "甲", "sentence2": "乙", "label": "1"}] * 2
    path = write_rows(tmp_path, rows, "dev.json")

    loaded = load_split(get_task("afqmc"), "dev", path)

    assert [example.id for example in loaded.examples] == [7, 7]


def test_test_row_without_id_uses_position(tmp_path):
    path = write_rows(tmp_path, [{"sentence": "甲"}, "", {"sentence": "乙"}], "test.json")

    loaded = load_split(get_task("iflytek"), "test", path)

    assert [example.id for example in loaded.examples] == [0, 1]
    assert [example.line for example in loaded.examples] == [1, 3]


def test_non_scalar_id_is_rejected(tmp_path):
    path = write_rows(tmp_path, [{"id": [1], "sentence": "甲"}], "test.json")

    with pytest.raises(DataError) as caught:
        load_split(get_task("iflytek"), "test", path)

    assert caught.value.field == "id"
    assert "expected an integer or string id" in str(caught.value)


def test_empty_file_is_rejected(tmp_path):
    path = write_rows(tmp_path, [""], "dev.json")

    with pytest.raises(DataError) as caught:
        load_split(get_task("afqmc"), "dev", path)

    assert "holds no records" in str(caught.value)


# Label normalisation


def test_fewclue_iflytek_int_label_normalises():
    assert normalize_label(get_task("fewclue-iflytek"), 56) == "56"


def test_fewclue_tnews_int_label_normalises():
    assert normalize_label(get_task("fewclue-tnews"), 110) == "110"


def test_string_label_is_kept():
    assert normalize_label(get_task("tnews"), "110") == "110"


def test_bool_label_maps_to_wsc_strings():
    task = get_task("fewclue-cluewsc")

    assert normalize_label(task, True) == "true"
    assert normalize_label(task, False) == "false"


def test_nli_dash_label_is_none():
    assert normalize_label(get_task("cmnli"), "-") is None


@pytest.mark.parametrize("value", ["105", "111", 105, 111])
def test_tnews_missing_ids_are_rejected(value):
    with pytest.raises(ValueError) as caught:
        normalize_label(get_task("tnews"), value)

    message = str(caught.value)
    assert f"label '{value}' is not a tnews label" in message
    assert "allowed: 100, 101, 102, 103, 104, 106, 107" in message
    assert "110, 112, 113, 114, 115, 116)" in message


def test_long_label_list_is_shortened():
    with pytest.raises(ValueError) as caught:
        normalize_label(get_task("iflytek"), "119")

    assert "allowed: 0, 1, 2," in str(caught.value)
    assert "19 and 99 more)" in str(caught.value)


def test_float_label_is_rejected():
    with pytest.raises(ValueError) as caught:
        normalize_label(get_task("afqmc"), 1.0)

    assert "expected a label string or integer, found float 1.0" in str(caught.value)


def test_invalid_label_in_file_names_line(tmp_path):
    rows = [
        {"label": "100", "sentence": "甲", "keywords": ""},
        {"label": "105", "sentence": "乙", "keywords": ""},
    ]
    path = write_rows(tmp_path, rows, "dev.json")

    with pytest.raises(DataError) as caught:
        load_split(get_task("tnews"), "dev", path)

    assert caught.value.line == 2
    assert caught.value.field == "label"
    assert f"{path}:2: field 'label':" in str(caught.value)
    assert "allowed: 100, 101" in str(caught.value)


def test_int_labels_load_as_strings(tmp_path):
    rows = [{"id": 0, "label": 56, "sentence": "甲"}, {"id": 1, "label": 0, "sentence": "乙"}]
    path = write_rows(tmp_path, rows, "dev_0.json")

    loaded = load_split(get_task("fewclue-iflytek"), "dev_0", path)

    assert [example.gold for example in loaded.examples] == ["56", "0"]


# Field validation


def test_missing_field_names_file_line_field(tmp_path):
    rows = [
        {"sentence1": "甲", "sentence2": "乙", "label": "0"},
        {"sentence1": "丙", "label": "1"},
    ]
    path = write_rows(tmp_path, rows, "dev.json")

    with pytest.raises(DataError) as caught:
        load_split(get_task("afqmc"), "dev", path)

    assert caught.value.line == 2
    assert caught.value.field == "sentence2"
    assert str(caught.value).startswith(f"{path}:2: field 'sentence2': missing field")


def test_null_required_field_is_missing(tmp_path):
    path = write_rows(tmp_path, [{"sentence1": None, "sentence2": "乙", "label": "0"}])

    with pytest.raises(DataError) as caught:
        load_split(get_task("afqmc"), "dev", path)

    assert caught.value.field == "sentence1"
    assert caught.value.problem == "missing field"


def test_wrong_field_type_names_field(tmp_path):
    path = write_rows(tmp_path, [{"sentence1": 5, "sentence2": "乙", "label": "0"}], "dev.json")

    with pytest.raises(DataError) as caught:
        load_split(get_task("afqmc"), "dev", path)

    assert caught.value.line == 1
    assert caught.value.field == "sentence1"
    assert str(caught.value) == (f"{path}:1: field 'sentence1': expected a string, found int 5")


def test_bool_field_is_wrong_type(tmp_path):
    path = write_rows(tmp_path, [{"sentence": True, "label": "0"}])

    with pytest.raises(DataError) as caught:
        load_split(get_task("iflytek"), "dev", path)

    assert caught.value.field == "sentence"


def test_csl_keyword_string_is_wrong_type(tmp_path):
    path = write_rows(tmp_path, [{"id": 0, "abst": "摘要", "keyword": "关键词", "label": "1"}])

    with pytest.raises(DataError) as caught:
        load_split(get_task("csl"), "dev", path)

    assert caught.value.field == "keyword"
    assert "expected a list, found str" in str(caught.value)


def test_csl_non_string_keyword_names_position(tmp_path):
    path = write_rows(tmp_path, [{"id": 0, "abst": "摘要", "keyword": ["甲", 2], "label": "1"}])

    with pytest.raises(DataError) as caught:
        load_split(get_task("csl"), "dev", path)

    assert caught.value.field == "keyword[1]"


def test_missing_label_in_labelled_split(tmp_path):
    path = write_rows(tmp_path, [{"sentence1": "甲", "sentence2": "乙"}], "dev.json")

    with pytest.raises(DataError) as caught:
        load_split(get_task("afqmc"), "dev", path)

    assert caught.value.field == "label"
    assert caught.value.problem == "missing field"


def test_optional_keywords_default_empty(tmp_path):
    path = write_rows(tmp_path, [{"label": "103", "sentence": "主队绝杀"}], "dev.json")

    loaded = load_split(get_task("tnews"), "dev", path)

    assert loaded.examples[0].fields == {"sentence": "主队绝杀", "keywords": ""}


# CLUEWSC spans


def test_wsc_marks_both_spans(tmp_path):
    path = write_rows(tmp_path, [WSC_ROW], "dev.json")

    example = load_split(get_task("cluewsc2020"), "dev", path).examples[0]

    assert example.fields["marked_text"] == "_小王_推开门，[他]看见雪停了。"
    assert example.fields["span2_text"] == "他"
    assert example.gold == "true"


def test_wsc_marks_pronoun_before_candidate():
    task = get_task("cluewsc2020")
    data = {
        "text": "他说小王来了",
        "target": {"span1_index": 2, "span1_text": "小王", "span2_index": 0, "span2_text": "他"},
    }

    assert task.prompt_variables(data)["marked_text"] == "[他]说_小王_来了"


@pytest.mark.parametrize(("span", "index"), [("span1", 1), ("span2", 5)])
def test_wsc_wrong_span_index_is_rejected(tmp_path, span, index):
    row = json.loads(json.dumps(WSC_ROW))
    row["target"][f"{span}_index"] = index
    path = write_rows(tmp_path, [{**WSC_ROW}, row], "dev.json")

    with pytest.raises(DataError) as caught:
        load_split(get_task("cluewsc2020"), "dev", path)

    assert caught.value.line == 2
    assert caught.value.field == f"target.{span}_index"
    assert f"{path}:2: field 'target.{span}_index':" in str(caught.value)


def test_wsc_missing_span_text_is_rejected(tmp_path):
    row = json.loads(json.dumps(WSC_ROW))
    del row["target"]["span2_text"]
    path = write_rows(tmp_path, [row], "dev.json")

    with pytest.raises(DataError) as caught:
        load_split(get_task("cluewsc2020"), "dev", path)

    assert caught.value.field == "target.span2_text"


# Prompts and few-shot examples


def test_fill_renders_afqmc_prompt():
    task = get_task("afqmc")

    prompt = fill(task.prompt, {"sentence1": "甲", "sentence2": "乙"})

    assert prompt == "句子一：甲\n句子二：乙\n问：这两句话的意思相同吗？\n答："


def test_verbalizers_apply_overrides():
    words = verbalizers(get_task("afqmc"), {"1": "一样"})

    assert words == ["不同", "一样"]


def test_select_shots_is_deterministic():
    pool = [make_example(index, "1" if index % 2 else "0") for index in range(20)]

    first = select_shots(pool, 4, seed=7)
    second = select_shots(pool, 4, seed=7)

    assert [shot.index for shot in first] == [shot.index for shot in second]
    assert len({shot.index for shot in first}) == 4


def test_select_shots_seed_changes_draw():
    pool = [make_example(index, "0") for index in range(50)]

    draws = {tuple(shot.index for shot in select_shots(pool, 5, seed=seed)) for seed in range(5)}

    assert len(draws) > 1


def test_select_shots_skips_unlabelled():
    pool = [make_example(index, None if index % 3 else "0") for index in range(30)]
    labelled = {example.index for example in pool if example.gold is not None}

    for seed in range(20):
        shots = select_shots(pool, len(labelled), seed=seed)
        assert {shot.index for shot in shots} == labelled


def test_select_shots_too_many_is_error():
    pool = [make_example(0, "0"), make_example(1, None)]

    with pytest.raises(ValueError) as caught:
        select_shots(pool, 2, seed=0)

    assert "2 few-shot examples requested but the split has 1" in str(caught.value)


def test_fewshot_prefix_joins_with_blank_lines():
    shots = [make_example(0, "0", "甲"), make_example(1, "1", "乙")]

    prefix = fewshot_prefix("句：{sentence}\n答：", {"0": "不同", "1": "相同"}, shots)

    assert prefix == "句：甲\n答：不同\n\n句：乙\n答：相同\n\n"


def test_fewshot_prefix_empty_for_zero_shot():
    assert fewshot_prefix("句：{sentence}\n答：", {"0": "不同"}, []) == ""
