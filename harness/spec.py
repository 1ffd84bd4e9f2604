"""YAML specs: models, a data root and cases, validated before any model loads.

Every mistake raises one SpecError that names the file, the line and the key path, such as
`evals/clue.yaml:14: cases[2].thresholds.acc: unknown metric`. Specs are read with
`yaml.safe_load` only.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.backends import BACKEND_KINDS
from harness.backends.base import ModelConfig
from harness.backends.loading import DTYPES
from harness.backends.packaged import PACKAGED
from harness.errors import SpecError
from harness.tasks import TASKS, get_task
from harness.tasks.base import ClassificationTask

# \Z rather than $, because $ also matches before a trailing newline.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+\Z")
TIERS = ("smoke", "full")
NORMALIZATIONS = ("none", "tokens", "chars")
METHODS = {"hf-causal": ("loglikelihood",), "hf-classifier": ("classifier",)}
DEFAULT_SEED = 1234
DEFAULT_SMOKE_SIZE = 200

TOP_KEYS = ("data_root", "defaults", "models", "cases")
DEFAULT_KEYS = ("tier", "smoke_size", "seed", "shots", "length_normalization")
CASE_KEYS = (
    "id",
    "task",
    "split",
    "model",
    "method",
    "shots",
    "seed",
    "fewshot_split",
    "tier",
    "limit",
    "smoke_size",
    "thresholds",
    "prompt",
    "verbalizers",
    "length_normalization",
    "marks",
)
MODEL_KEYS = tuple(item.name for item in dataclasses.fields(ModelConfig) if item.name != "name")


@dataclass(frozen=True)
class CaseConfig:
    """One case of a spec: a task split scored by one model, with its thresholds."""

    id: str
    task: str
    split: str
    model: str
    method: str
    spec_path: str
    spec_line: int | None = None
    spec_index: int = 0
    shots: int = 0
    seed: int = DEFAULT_SEED
    fewshot_split: str | None = None
    tier: str = "smoke"
    limit: int | None = None
    smoke_size: int = DEFAULT_SMOKE_SIZE
    thresholds: dict[str, float] = field(default_factory=dict)
    prompt: str | None = None
    verbalizers: dict[str, str] = field(default_factory=dict)
    length_normalization: str = "none"
    marks: tuple[str, ...] = ()

    @property
    def labelled(self) -> bool:
        return get_task(self.task).split(self.split).labelled


@dataclass(frozen=True)
class Spec:
    """A validated spec file."""

    path: Path
    data_root: Path | None
    models: dict[str, ModelConfig]
    cases: list[CaseConfig]


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


def _path_text(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Checker:
    """Raise SpecErrors that carry the file and line of a key path."""

    def __init__(self, path: Path, lines: dict[tuple, int]) -> None:
        self.path = path
        self.lines = lines

    def fail(self, key: tuple, problem: str, hint: str | None = None) -> SpecError:
        line = None
        for depth in range(len(key), -1, -1):
            if key[:depth] in self.lines:
                line = self.lines[key[:depth]]
                break
        return SpecError(self.path, _path_text(key), problem, line=line, hint=hint)

    def mapping(self, value: Any, key: tuple, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, found {type(value).__name__}")
        for name in value:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1)
                hint = (
                    f"Did you mean '{close[0]}'?"
                    if close
                    else f"Allowed keys: {', '.join(allowed)}"
                )
                raise self.fail(key + (name,), "unknown key", hint)
        return value

    def integer(self, value: Any, key: tuple, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, found {value!r}")
        return value

    def choice(self, value: Any, key: tuple, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(key, f"invalid value {value!r}", f"Use one of: {', '.join(allowed)}")
        return value

    def text(self, value: Any, key: tuple) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, found {value!r}")
        return value


def _model(check: _Checker, name: Any, raw: Any) -> ModelConfig:
    key = ("models", name)
    if not isinstance(name, str) or not ID_PATTERN.match(name):
        raise check.fail(key, "model names may use only ASCII letters, digits, '_', '.' and '-'")
    raw = check.mapping(raw, key, MODEL_KEYS)
    if "backend" not in raw:
        raise check.fail(key, "missing key 'backend'", f"Use one of: {', '.join(BACKEND_KINDS)}")
    check.choice(raw["backend"], key + ("backend",), BACKEND_KINDS)
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


def _check_prompt(check: _Checker, key: tuple, prompt: Any, task: ClassificationTask) -> str:
    check.text(prompt, key)
    known = set(task.prompt_variables_names())
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None]
    except ValueError as error:
        raise check.fail(
            key, f"invalid template: {error}", "Write literal braces as {{ and }}"
        ) from None
    for name in names:
        if name not in known:
            raise check.fail(
                key, f"unknown placeholder {{{name}}}", f"Known: {', '.join(sorted(known))}"
            )
    return prompt


def _case(
    check: _Checker, index: int, raw: Any, defaults: dict, models: dict[str, ModelConfig]
) -> CaseConfig:
    key = ("cases", index)
    raw = check.mapping(raw, key, CASE_KEYS)
    for required in ("task", "split", "model"):
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
    split_names = tuple(split.name for split in task.splits)
    split_name = check.choice(str(raw["split"]), key + ("split",), split_names)
    split = task.split(split_name)

    model_name = raw["model"]
    if model_name not in models:
        raise check.fail(
            key + ("model",),
            f"unknown model '{model_name}'",
            f"Define it under models: (defined: {', '.join(models) or 'none'})",
        )
    model = models[model_name]
    methods = METHODS[model.backend]
    method = check.choice(raw.get("method", methods[0]), key + ("method",), methods)

    merged = {**defaults, **raw}
    shots = check.integer(merged.get("shots", 0), key + ("shots",))
    if shots and method != "loglikelihood":
        raise check.fail(key + ("shots",), "few-shot examples apply only to method 'loglikelihood'")
    fewshot_split = raw.get("fewshot_split")
    if fewshot_split is not None:
        check.choice(fewshot_split, key + ("fewshot_split",), split_names)
        if not task.split(fewshot_split).labelled:
            raise check.fail(key + ("fewshot_split",), "few-shot examples need a labelled split")

    default_tier = "smoke" if split.labelled else "full"
    tier = check.choice(
        raw.get("tier", defaults.get("tier", default_tier) if split.labelled else default_tier),
        key + ("tier",),
        TIERS,
    )
    limit = raw.get("limit")
    if not split.labelled:
        if tier != "full" or limit is not None:
            raise check.fail(
                key + ("tier" if tier != "full" else "limit",),
                f"split '{split_name}' is a test split: every row is predicted for the submission",
                "Remove tier/limit from this case",
            )
    if limit is not None:
        check.integer(limit, key + ("limit",), minimum=1)

    thresholds = raw.get("thresholds", {})
    check.mapping(thresholds, key + ("thresholds",), task.metrics)
    if thresholds and not split.labelled:
        raise check.fail(
            key + ("thresholds",),
            f"split '{split_name}' has hidden labels, so no score can be checked",
            "Remove the thresholds, or score a labelled split such as dev",
        )
    for metric, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise check.fail(
                key + ("thresholds", metric), f"expected a number in [0, 1], found {value!r}"
            )

    prompt = raw.get("prompt")
    if prompt is not None:
        _check_prompt(check, key + ("prompt",), prompt, task)
    verbalizers = raw.get("verbalizers", {})
    check.mapping(
        {str(k): v for k, v in verbalizers.items()}
        if isinstance(verbalizers, dict)
        else verbalizers,
        key + ("verbalizers",),
        tuple(task.label_ids),
    )
    verbalizers = {
        str(label): check.text(word, key + ("verbalizers", label))
        for label, word in verbalizers.items()
    }
    words = [verbalizers.get(label.id, label.verbalizer) for label in task.labels]
    if len(set(words)) != len(words):
        raise check.fail(
            key + ("verbalizers",), "two labels share a verbalizer, so they cannot be told apart"
        )

    marks = raw.get("marks", [])
    if not isinstance(marks, list) or not all(
        isinstance(mark, str) and mark.isidentifier() for mark in marks
    ):
        raise check.fail(key + ("marks",), "expected a list of pytest mark names")

    if "id" in raw:
        case_id = check.text(raw["id"], key + ("id",))
    else:
        case_id = "-".join(
            [task_name, split_name, model_name] + ([f"{shots}shot"] if shots else [])
        )
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
        shots=shots,
        seed=check.integer(merged.get("seed", DEFAULT_SEED), key + ("seed",)),
        fewshot_split=fewshot_split,
        tier=tier,
        limit=limit,
        smoke_size=check.integer(
            merged.get("smoke_size", DEFAULT_SMOKE_SIZE), key + ("smoke_size",), minimum=1
        ),
        thresholds={metric: float(value) for metric, value in thresholds.items()},
        prompt=prompt,
        verbalizers=verbalizers,
        length_normalization=check.choice(
            merged.get("length_normalization", "none"),
            key + ("length_normalization",),
            NORMALIZATIONS,
        ),
        marks=tuple(marks),
    )


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

    check = _Checker(path, lines)
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
    return Spec(path=path, data_root=data_root, models=models, cases=cases)
