"""Tests for YAML spec validation: every error names the file, the line and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import SpecError
from harness.spec import DEFAULT_SEED, DEFAULT_SMOKE_SIZE, load_spec

MODELS = """\
models:
  gemma270m:
    backend: hf-causal
    packaged: gemma-3-270m
  albert:
    backend: hf-classifier
    packaged: albert-tiny-chinese
"""

# With MODELS above it, the case's keys sit on lines 9 (task), 10 (split) and 11 (model),
# and any extra key on line 12.
ONE_CASE = (
    MODELS
    + """\
cases:
  - task: afqmc
    split: dev
    model: gemma270m
"""
)


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def spec_error(tmp_path: Path, text: str) -> tuple[SpecError, Path]:
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value, path


def case_with(extra: str) -> str:
    """Return the one-case spec with `extra` (already indented) appended to the case."""
    return ONE_CASE + extra


# Errors


def test_unknown_top_key_suggests_match(tmp_path):
    error, path = spec_error(tmp_path, "datroot: data\n" + ONE_CASE)

    assert error.line == 1
    assert error.key == "datroot"
    assert str(error) == f"{path}:1: datroot: unknown key. Did you mean 'data_root'?"


def test_unknown_case_key_names_path(tmp_path):
    error, path = spec_error(tmp_path, case_with("    shot: 2\n"))

    assert error.key == "cases[0].shot"
    assert str(error).startswith(f"{path}:12: cases[0].shot: unknown key")
    assert "Did you mean 'shots'?" in str(error)


def test_unknown_task_names_line(tmp_path):
    error, path = spec_error(tmp_path, ONE_CASE.replace("task: afqmc", "task: afqmcc"))

    assert error.line == 9
    assert error.key == "cases[0].task"
    assert str(error) == (f"{path}:9: cases[0].task: unknown task 'afqmcc'. Did you mean 'afqmc'?")


def test_unknown_split_lists_splits(tmp_path):
    error, path = spec_error(tmp_path, ONE_CASE.replace("split: dev", "split: validation"))

    assert error.line == 10
    assert error.key == "cases[0].split"
    assert f"{path}:10: cases[0].split: invalid value 'validation'" in str(error)
    assert "Use one of: train, dev, test" in str(error)


def test_unknown_model_lists_defined(tmp_path):
    error, path = spec_error(tmp_path, ONE_CASE.replace("model: gemma270m", "model: gemma"))

    assert error.line == 11
    assert error.key == "cases[0].model"
    assert f"{path}:11: cases[0].model: unknown model 'gemma'" in str(error)
    assert "defined: gemma270m, albert" in str(error)


def test_threshold_on_test_split_is_error(tmp_path):
    text = case_with("    thresholds: {accuracy: 0.5}\n").replace("split: dev", "split: test")

    error, path = spec_error(tmp_path, text)

    assert error.line == 12
    assert error.key == "cases[0].thresholds"
    assert str(error).startswith(
        f"{path}:12: cases[0].thresholds: split 'test' has hidden labels, "
        "so no score can be checked"
    )


def test_limit_on_test_split_is_error(tmp_path):
    text = case_with("    limit: 10\n").replace("split: dev", "split: test")

    error, path = spec_error(tmp_path, text)

    assert error.line == 12
    assert error.key == "cases[0].limit"
    assert f"{path}:12: cases[0].limit: split 'test' is a test split" in str(error)


def test_smoke_tier_on_test_split_is_error(tmp_path):
    text = case_with("    tier: smoke\n").replace("split: dev", "split: test1.0")

    error, path = spec_error(tmp_path, text.replace("task: afqmc", "task: tnews"))

    assert error.key == "cases[0].tier"
    assert f"{path}:12: cases[0].tier: split 'test1.0' is a test split" in str(error)


def test_unknown_metric_in_thresholds(tmp_path):
    error, path = spec_error(tmp_path, case_with("    thresholds: {acc: 0.5}\n"))

    assert error.line == 12
    assert error.key == "cases[0].thresholds.acc"
    assert str(error) == (
        f"{path}:12: cases[0].thresholds.acc: unknown key. Allowed keys: accuracy, macro_f1"
    )


@pytest.mark.parametrize("value", ["1.5", "-0.1", "true", "high"])
def test_invalid_threshold_value_is_error(tmp_path, value):
    text = case_with(f"    thresholds:\n      macro_f1: 0.2\n      accuracy: {value}\n")

    error, path = spec_error(tmp_path, text)

    assert error.line == 14
    assert error.key == "cases[0].thresholds.accuracy"
    assert f"{path}:14: cases[0].thresholds.accuracy: expected a number in [0, 1]" in str(error)


def test_duplicate_case_ids_name_second(tmp_path):
    text = ONE_CASE + "  - task: afqmc\n    split: dev\n    model: gemma270m\n"

    error, path = spec_error(tmp_path, text)

    assert error.line == 12
    assert error.key == "cases[1]"
    assert str(error) == (
        f"{path}:12: cases[1]: duplicate case id 'afqmc-dev-gemma270m' (also cases[0]). "
        "Give one of them an explicit `id:`"
    )


def test_explicit_id_clashing_generated_is_error(tmp_path):
    text = (
        ONE_CASE + "  - id: afqmc-dev-gemma270m\n    task: csl\n    split: dev\n    model: albert\n"
    )

    error, _ = spec_error(tmp_path, text)

    assert error.key == "cases[1]"


def test_prompt_unknown_placeholder_is_error(tmp_path):
    error, path = spec_error(tmp_path, case_with('    prompt: "句子：{sentence}\\n答："\n'))

    assert error.line == 12
    assert error.key == "cases[0].prompt"
    assert str(error) == (
        f"{path}:12: cases[0].prompt: unknown placeholder {{sentence}}. Known: sentence1, sentence2"
    )


def test_prompt_unbalanced_brace_is_error(tmp_path):
    error, path = spec_error(tmp_path, case_with('    prompt: "{sentence1"\n'))

    assert error.key == "cases[0].prompt"
    assert f"{path}:12: cases[0].prompt: invalid template" in str(error)


def test_shared_verbalizer_is_error(tmp_path):
    error, path = spec_error(tmp_path, case_with('    verbalizers: {"0": 相同}\n'))

    assert error.line == 12
    assert error.key == "cases[0].verbalizers"
    assert f"{path}:12: cases[0].verbalizers: two labels share a verbalizer" in str(error)


def test_unknown_verbalizer_label_is_error(tmp_path):
    error, _ = spec_error(tmp_path, case_with('    verbalizers: {"2": 也许}\n'))

    assert error.key == "cases[0].verbalizers.2"
    assert "Did you mean" not in str(error)


def test_model_path_and_packaged_is_error(tmp_path):
    text = ONE_CASE.replace(
        "    packaged: gemma-3-270m\n", "    packaged: gemma-3-270m\n    path: org/m\n"
    )

    error, path = spec_error(tmp_path, text)

    assert error.line == 2
    assert error.key == "models.gemma270m"
    assert str(error) == (
        f"{path}:2: models.gemma270m: give exactly one of 'path' (folder or hub id) and 'packaged'"
    )


def test_model_without_source_is_error(tmp_path):
    text = ONE_CASE.replace("    packaged: gemma-3-270m\n", "")

    error, _ = spec_error(tmp_path, text)

    assert error.key == "models.gemma270m"
    assert "give exactly one of 'path'" in str(error)


def test_model_unknown_backend_is_error(tmp_path):
    error, path = spec_error(tmp_path, ONE_CASE.replace("backend: hf-causal", "backend: vllm"))

    assert error.key == "models.gemma270m.backend"
    assert f"{path}:3: models.gemma270m.backend: invalid value 'vllm'" in str(error)


def test_shots_with_classifier_is_error(tmp_path):
    text = case_with("    shots: 2\n").replace("model: gemma270m", "model: albert")

    error, _ = spec_error(tmp_path, text)

    assert error.key == "cases[0].shots"
    assert "do not apply to method 'classifier'" in str(error)


def test_non_ascii_id_is_error(tmp_path):
    error, path = spec_error(tmp_path, case_with("    id: 蚂蚁金服\n"))

    assert error.key == "cases[0].id"
    assert f"{path}:12: cases[0].id: case id '蚂蚁金服' must use only ASCII" in str(error)


def test_id_trailing_newline_is_error(tmp_path):
    error, _ = spec_error(tmp_path, case_with('    id: "afqmc-dev\\n"\n'))

    assert error.key == "cases[0].id"


def test_integer_id_is_error(tmp_path):
    error, path = spec_error(tmp_path, case_with("    id: 7\n"))

    assert error.key == "cases[0].id"
    assert str(error) == f"{path}:12: cases[0].id: expected a non-empty string, found 7"


def test_empty_id_is_error(tmp_path):
    error, _ = spec_error(tmp_path, case_with('    id: ""\n'))

    assert error.key == "cases[0].id"


def test_missing_cases_is_error(tmp_path):
    error, path = spec_error(tmp_path, MODELS)

    assert error.key == "cases"
    assert str(error) == f"{path}:1: cases: expected a non-empty list of cases"


def test_invalid_yaml_names_line(tmp_path):
    error, path = spec_error(tmp_path, ONE_CASE + "  - task: [afqmc\n")

    assert error.line == 13
    assert str(error).startswith(f"{path}:13: invalid YAML")


def test_missing_spec_file_is_error(tmp_path):
    path = tmp_path / "absent.yaml"

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert str(caught.value).startswith(f"{path}: cannot read spec")


# Valid specs


def test_valid_spec_builds_case_ids(tmp_path):
    text = (
        ONE_CASE
        + "  - task: fewclue-iflytek\n    split: test_public\n    model: gemma270m\n    shots: 2\n"
        + "  - task: csl\n    split: test\n    model: albert\n"
        + "  - id: my.case_1\n    task: afqmc\n    split: dev\n    model: albert\n"
    )

    spec = load_spec(write_spec(tmp_path, text))
    ids = [case.id for case in spec.cases]

    assert ids == [
        "afqmc-dev-gemma270m",
        "fewclue-iflytek-test_public-gemma270m-2shot",
        "csl-test-albert",
        "my.case_1",
    ]
    assert all(case_id.isascii() for case_id in ids)
    assert [case.spec_index for case in spec.cases] == [0, 1, 2, 3]
    assert [case.spec_line for case in spec.cases] == [9, 12, 16, 19]


def test_valid_spec_applies_defaults(tmp_path):
    case = load_spec(write_spec(tmp_path, ONE_CASE)).cases[0]

    assert case.seed == DEFAULT_SEED == 1234
    assert case.smoke_size == DEFAULT_SMOKE_SIZE == 200
    assert case.shots == 0
    assert case.method == "loglikelihood"
    assert case.length_normalization == "none"
    assert case.limit is None
    assert case.thresholds == {}
    assert case.verbalizers == {}
    assert case.prompt is None
    assert case.fewshot_split is None


def test_defaults_block_overrides_builtins(tmp_path):
    text = "defaults:\n  seed: 7\n  smoke_size: 50\n  tier: full\n" + ONE_CASE

    case = load_spec(write_spec(tmp_path, text)).cases[0]

    assert case.seed == 7
    assert case.smoke_size == 50
    assert case.tier == "full"


def test_case_keys_override_defaults(tmp_path):
    text = "defaults:\n  seed: 7\n" + case_with("    seed: 9\n")

    case = load_spec(write_spec(tmp_path, text)).cases[0]

    assert case.seed == 9


def test_tier_defaults_by_split(tmp_path):
    text = ONE_CASE + "  - task: afqmc\n    split: test\n    model: gemma270m\n"

    cases = load_spec(write_spec(tmp_path, text)).cases

    assert cases[0].tier == "smoke"
    assert cases[1].tier == "full"


def test_default_tier_ignored_for_test(tmp_path):
    text = "defaults:\n  tier: smoke\n" + ONE_CASE.replace("split: dev", "split: test")

    case = load_spec(write_spec(tmp_path, text)).cases[0]

    assert case.tier == "full"
    assert case.labelled is False


def test_classifier_method_is_default(tmp_path):
    text = ONE_CASE.replace("model: gemma270m", "model: albert")

    case = load_spec(write_spec(tmp_path, text)).cases[0]

    assert case.method == "classifier"


def test_thresholds_become_floats(tmp_path):
    text = case_with("    thresholds: {accuracy: 1, macro_f1: 0.25}\n")

    case = load_spec(write_spec(tmp_path, text)).cases[0]

    assert case.thresholds == {"accuracy": 1.0, "macro_f1": 0.25}
    assert type(case.thresholds["accuracy"]) is float


def test_integer_verbalizer_keys_are_strings(tmp_path):
    case = load_spec(write_spec(tmp_path, case_with("    verbalizers: {1: 一样}\n"))).cases[0]

    assert case.verbalizers == {"1": "一样"}


def test_data_root_resolves_beside_spec(tmp_path):
    spec = load_spec(write_spec(tmp_path, "data_root: clue\n" + ONE_CASE))

    assert spec.data_root == (tmp_path / "clue").resolve()


def test_models_keep_config(tmp_path):
    spec = load_spec(write_spec(tmp_path, ONE_CASE))
    model = spec.models["gemma270m"]

    assert list(spec.models) == ["gemma270m", "albert"]
    assert model.packaged == "gemma-3-270m"
    assert model.batch_size == "auto"
    assert model.dtype == "float32"
