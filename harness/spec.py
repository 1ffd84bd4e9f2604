"""YAML specs: models, a data root and cases, validated before any model loads.

Every mistake raises one SpecError that names the file, the line and the key path, such as
`evals/clue.yaml:14: cases[2].thresholds.acc: unknown metric`. Specs are read with
`yaml.safe_load` only.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.backends import BACKEND_KINDS
from harness.backends.base import ModelConfig
from harness.backends.loading import DTYPES
from harness.backends.openai_wire import (
    ENV_NAME_PATTERN,
    GENERATION_ENDPOINTS,
    base_url_problem,
)
from harness.backends.packaged import PACKAGED
from harness.cases import (
    DEFAULT_SEED,
    DEFAULT_SMOKE_SIZE,
    ID_PATTERN,
    TIERS,
    CaseConfig,
    SpecChecker,
)
from harness.errors import SpecError
from harness.evaluators import evaluator_for
from harness.gates import validate_gates
from harness.tasks import TASKS, get_task

__all__ = ["DEFAULT_SEED", "DEFAULT_SMOKE_SIZE", "CaseConfig", "Spec", "load_spec"]

TOP_KEYS = ("data_root", "baseline", "defaults", "models", "cases")
DEFAULT_KEYS = ("tier", "smoke_size", "seed", "shots", "length_normalization")
COMMON_CASE_KEYS = (
    "id",
    "task",
    "split",
    "model",
    "method",
    "seed",
    "tier",
    "limit",
    "smoke_size",
    "thresholds",
    "gate",
    "marks",
)
MODEL_KEYS = tuple(item.name for item in dataclasses.fields(ModelConfig) if item.name != "name")
# Keys of a model that backend "openai" serves over HTTP; `path` is the served model name.
SERVED_MODEL_KEYS = (
    "base_url",
    "api_key_env",
    "endpoint",
    "concurrency",
    "timeout",
    "max_attempts",
    "backoff",
)
OPENAI_MODEL_KEYS = ("backend", "path", "options") + SERVED_MODEL_KEYS


@dataclass(frozen=True)
class Spec:
    """A validated spec file."""

    path: Path
    data_root: Path | None
    models: dict[str, ModelConfig]
    cases: list[CaseConfig]
    baseline: Path | None = None


def _line_index(text: str) -> dict[tuple, int]:
    """Map each key path of a YAML document to its 1-based line."""
    lines: dict[tuple, int] = {}

    def walk(node: Any, path: tuple) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[path + (key.value,)] = key.start_mark.line + 1
                walk(value, path + (key.value,))
                lines[path + (key.value,)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, path + (index,))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _model(check: SpecChecker, name: Any, raw: Any) -> ModelConfig:
    key = ("models", name)
    if not isinstance(name, str) or not ID_PATTERN.match(name):
        raise check.fail(key, "model names may use only ASCII letters, digits, '_', '.' and '-'")
    raw = check.mapping(raw, key, MODEL_KEYS)
    if "backend" not in raw:
        raise check.fail(key, "missing key 'backend'", f"Use one of: {', '.join(BACKEND_KINDS)}")
    check.choice(raw["backend"], key + ("backend",), BACKEND_KINDS)
    if raw["backend"] == "openai":
        return _served_model(check, name, raw)
    for served_key in SERVED_MODEL_KEYS:
        if served_key in raw:
            raise check.fail(key + (served_key,), "applies only to backend 'openai'")
    if ("path" in raw) == ("packaged" in raw):
        raise check.fail(key, "give exactly one of 'path' (folder or hub id) and 'packaged'")
    if "packaged" in raw:
        check.choice(raw["packaged"], key + ("packaged",), tuple(PACKAGED))
    else:
        check.text(raw["path"], key + ("path",))
    check.choice(raw.get("dtype", "float32"), key + ("dtype",), DTYPES)
    batch_size = raw.get("batch_size", "auto")
    if batch_size != "auto":
        check.integer(batch_size, key + ("batch_size",), minimum=1)
    for name_key in ("max_batch_size", "max_batch_tokens", "max_length"):
        if raw.get(name_key) is not None:
            check.integer(raw[name_key], key + (name_key,), minimum=1)
    if not isinstance(raw.get("trust_remote_code", False), bool):
        raise check.fail(key + ("trust_remote_code",), "expected true or false")
    labels = raw.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(item, (str, int)) for item in labels):
            raise check.fail(key + ("labels",), "expected a list of label ids in head order")
        labels = tuple(str(item) for item in labels)
    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise check.fail(key + ("options",), "expected a mapping")
    values = {**raw, "labels": labels, "options": options}
    if "path" in raw:
        values["path"] = _model_path(check.path, raw["path"])
    return ModelConfig(name=name, **values)


def _served_model(check: SpecChecker, name: str, raw: dict) -> ModelConfig:
    """Validate a model that an OpenAI-compatible server serves (backend "openai").

    `path` is the model name sent in each request, so it is not resolved as a folder.
    """
    key = ("models", name)
    for item in raw:
        if item not in OPENAI_MODEL_KEYS:
            raise check.fail(
                key + (item,),
                "does not apply to backend 'openai', which sends requests to a server",
                f"Keys of a served model: {', '.join(OPENAI_MODEL_KEYS)}",
            )
    for required, meaning in (("path", "the served model name"), ("base_url", "the API root")):
        if required not in raw:
            raise check.fail(key, f"missing key '{required}' ({meaning})")
    check.text(raw["path"], key + ("path",))

    base_url = check.text(raw["base_url"], key + ("base_url",))
    problem = base_url_problem(base_url)
    if problem:
        # The URL is not repeated, because it may carry credentials.
        raise check.fail(
            key + ("base_url",),
            f"invalid URL: {problem}",
            "Write the API root, such as http://127.0.0.1:8080/v1",
        )
    api_key_env = raw.get("api_key_env")
    if api_key_env is not None and (
        not isinstance(api_key_env, str) or not ENV_NAME_PATTERN.match(api_key_env)
    ):
        # The value is not repeated either: it may be the key itself, written by mistake.
        raise check.fail(
            key + ("api_key_env",),
            "expected the name of an environment variable (letters, digits and '_'), "
            "such as OPENAI_API_KEY",
            "Never write the key itself into a spec",
        )
    check.choice(raw.get("endpoint", "completions"), key + ("endpoint",), GENERATION_ENDPOINTS)
    for count_key in ("concurrency", "max_attempts"):
        if count_key in raw:
            check.integer(raw[count_key], key + (count_key,), minimum=1)
    seconds = {}
    for seconds_key, bound in (("timeout", "> 0"), ("backoff", ">= 0")):
        if seconds_key not in raw:
            continue
        value = raw[seconds_key]
        valid = not isinstance(value, bool) and isinstance(value, (int, float))
        if not valid or value < 0 or (bound == "> 0" and value == 0):
            raise check.fail(
                key + (seconds_key,), f"expected a number of seconds {bound}, found {value!r}"
            )
        seconds[seconds_key] = float(value)
    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise check.fail(key + ("options",), "expected a mapping")
    return ModelConfig(name=name, **{**raw, **seconds, "options": options})


def _model_path(spec_path: Path, value: str) -> str:
    """Resolve a filesystem path against the spec's folder; leave hub ids ("org/name") alone.

    A value is a filesystem path when it starts with "/", "./", "../" or "~", or when it
    names an existing folder relative to the spec.
    """
    if value.startswith(("/", "./", "../", "~")):
        return str((spec_path.parent / Path(value).expanduser()).resolve())
    beside_spec = spec_path.parent / value
    if beside_spec.exists():
        return str(beside_spec.resolve())
    return value


def _case(
    check: SpecChecker, index: int, raw: Any, defaults: dict, models: dict[str, ModelConfig]
) -> CaseConfig:
    key = ("cases", index)
    if not isinstance(raw, dict):
        raise check.fail(key, f"expected a mapping, found {type(raw).__name__}")
    for required in ("task", "model"):
        if required not in raw:
            raise check.fail(key, f"missing key '{required}'")

    task_name = check.text(raw["task"], key + ("task",))
    if task_name not in TASKS:
        close = difflib.get_close_matches(task_name, list(TASKS), n=1)
        raise check.fail(
            key + ("task",),
            f"unknown task '{task_name}'",
            f"Did you mean '{close[0]}'?" if close else f"Known: {', '.join(TASKS)}",
        )
    task = get_task(task_name)
    evaluator = evaluator_for(task)
    check.mapping(raw, key, COMMON_CASE_KEYS + evaluator.case_keys)

    split_names = tuple(split.name for split in task.splits)
    if split_names:
        if "split" not in raw:
            raise check.fail(key, "missing key 'split'", f"Use one of: {', '.join(split_names)}")
        split_name = check.choice(str(raw["split"]), key + ("split",), split_names)
        labelled = evaluator.split_labelled(task, split_name)
    else:
        split_name = ""
        labelled = True

    model_name = raw["model"]
    if model_name not in models:
        raise check.fail(
            key + ("model",),
            f"unknown model '{model_name}'",
            f"Define it under models: (defined: {', '.join(models) or 'none'})",
        )
    model = models[model_name]
    methods = evaluator.methods.get(model.backend, ())
    if not methods:
        supported = ", ".join(evaluator.methods) or "none"
        raise check.fail(
            key + ("model",),
            f"backend '{model.backend}' of model '{model_name}' cannot score {task.family} tasks",
            f"Use a model with one of these backends: {supported}",
        )
    method = check.choice(raw.get("method", methods[0]), key + ("method",), methods)

    merged = {**defaults, **raw}
    default_tier = "smoke" if labelled else "full"
    tier = check.choice(
        raw.get("tier", defaults.get("tier", default_tier) if labelled else default_tier),
        key + ("tier",),
        TIERS,
    )
    limit = raw.get("limit")
    if not labelled and (tier != "full" or limit is not None):
        raise check.fail(
            key + ("tier" if tier != "full" else "limit",),
            f"split '{split_name}' is a test split: every row is predicted for the submission",
            "Remove tier/limit from this case",
        )
    if limit is not None:
        check.integer(limit, key + ("limit",), minimum=1)

    thresholds = raw.get("thresholds", {})
    check.mapping(thresholds, key + ("thresholds",), task.metrics)
    if thresholds and not labelled:
        raise check.fail(
            key + ("thresholds",),
            f"split '{split_name}' has hidden labels, so no score can be checked",
            "Remove the thresholds, or score a labelled split such as dev",
        )
    for metric, value in thresholds.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 <= value <= task_scale(task, metric)
        ):
            raise check.fail(
                key + ("thresholds", metric),
                f"expected a number in [0, {task_scale(task, metric):g}], found {value!r}",
            )

    thresholds, gates = validate_gates(
        check,
        key + ("gate",),
        raw.get("gate"),
        task=task,
        labelled=labelled,
        thresholds={metric: float(value) for metric, value in thresholds.items()},
        scales={metric: task_scale(task, metric) for metric in task.metrics},
    )

    marks = raw.get("marks", [])
    if not isinstance(marks, list) or not all(
        isinstance(mark, str) and mark.isidentifier() for mark in marks
    ):
        raise check.fail(key + ("marks",), "expected a list of pytest mark names")

    family_values = evaluator.validate_case(check, key, raw, merged, task, method)
    shots = family_values.get("shots", 0)
    if "id" in raw:
        case_id = check.text(raw["id"], key + ("id",))
    else:
        data_parts = list(evaluator.id_parts(raw, family_values))
        parts = [task_name, *data_parts, split_name, model_name]
        parts += [f"{shots}shot"] if shots else []
        case_id = "-".join(part for part in parts if part)
    if not ID_PATTERN.match(case_id):
        raise check.fail(
            key + ("id",),
            f"case id {case_id!r} must use only ASCII letters, digits, '_', '.' and '-'",
        )

    return CaseConfig(
        id=case_id,
        task=task_name,
        split=split_name,
        model=model_name,
        method=method,
        spec_path=str(check.path),
        spec_line=check.lines.get(key),
        spec_index=index,
        seed=check.integer(merged.get("seed", DEFAULT_SEED), key + ("seed",)),
        tier=tier,
        limit=limit,
        smoke_size=check.integer(
            merged.get("smoke_size", DEFAULT_SMOKE_SIZE), key + ("smoke_size",), minimum=1
        ),
        thresholds=thresholds,
        gates=gates,
        marks=tuple(marks),
        **family_values,
    )


def task_scale(task: Any, metric: str) -> float:
    """Return the largest value a metric takes: 1 for fractions, 100 for percentages."""
    return getattr(task, "metric_scales", {}).get(metric, 1.0)


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(path, "", f"cannot read spec: {error.strerror}") from None
    try:
        raw = yaml.safe_load(text)
        lines = _line_index(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise SpecError(
            path,
            "",
            f"invalid YAML: {getattr(error, 'problem', error)}",
            line=mark.line + 1 if mark else None,
        ) from None

    check = SpecChecker(path, lines)
    raw = check.mapping(raw if raw is not None else {}, (), TOP_KEYS)
    defaults = check.mapping(raw.get("defaults", {}) or {}, ("defaults",), DEFAULT_KEYS)
    models_raw = check.mapping(
        raw.get("models", {}) or {}, ("models",), tuple(raw.get("models", {}) or {})
    )
    models = {name: _model(check, name, value) for name, value in models_raw.items()}

    cases_raw = raw.get("cases")
    if not isinstance(cases_raw, list) or not cases_raw:
        raise check.fail(("cases",), "expected a non-empty list of cases")
    cases = [_case(check, index, value, defaults, models) for index, value in enumerate(cases_raw)]

    first_index: dict[str, int] = {}
    for index, case in enumerate(cases):
        if case.id in first_index:
            raise check.fail(
                ("cases", index),
                f"duplicate case id '{case.id}' (also cases[{first_index[case.id]}])",
                "Give one of them an explicit `id:`",
            )
        first_index[case.id] = index

    data_root = raw.get("data_root")
    if data_root is not None:
        data_root = (
            path.parent / Path(check.text(data_root, ("data_root",))).expanduser()
        ).resolve()
    baseline = raw.get("baseline")
    if baseline is not None:
        baseline = (path.parent / Path(check.text(baseline, ("baseline",))).expanduser()).resolve()
    return Spec(path=path, data_root=data_root, models=models, cases=cases, baseline=baseline)
