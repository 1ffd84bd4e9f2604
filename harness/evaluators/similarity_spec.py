"""Validation of the similarity case keys, and the parts of a similarity case's default id.

The keys are described in harness.evaluators.similarity. Every mistake raises one
SpecError naming the file, the line and the key path.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from harness.cases import SpecChecker
from harness.tasks.base import FieldProblem
from harness.tasks.similarity import SimilarityTask, parse_pair_check

ROLES = ("query", "passage")
# Keys each kind of task accepts on top of `roles`.
KIND_KEYS = {
    "pairs": ("pairs", "data"),
    "sts": ("data", "source", "fields", "score_range"),
    "pair_classification": ("data", "source", "fields", "positive", "negative"),
    "generation": ("data", "fields", "cutoff"),
}
DATA_KEYS = tuple(dict.fromkeys(key for keys in KIND_KEYS.values() for key in keys))
FIELD_NAMES = {
    "sts": ("text1", "text2", "label"),
    "pair_classification": ("text1", "text2", "label"),
    "generation": ("prediction", "reference"),
}
UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


def _tasks_for(name: str) -> str:
    kinds = [kind for kind, keys in KIND_KEYS.items() if name in keys]
    return ", ".join(f"similarity-{kind.replace('_', '-')}" for kind in kinds)


def _source(check: SpecChecker, key: tuple, value: Any) -> dict[str, str]:
    """Validate `source: {task, split}`: a labelled split of a CLUE classification task."""
    from harness.tasks import TASKS

    check.mapping(value, key, ("task", "split"))
    for required in ("task", "split"):
        if required not in value:
            raise check.fail(
                key, f"missing key '{required}'", "Write source: {task: afqmc, split: dev}"
            )
    task_name = check.text(value["task"], key + ("task",))
    task = TASKS.get(task_name)
    if task is None or task.family != "classification":
        pair_tasks = [name for name, item in TASKS.items() if item.family == "classification"]
        raise check.fail(
            key + ("task",),
            f"'{task_name}' is not a CLUE classification task",
            f"Use one of: {', '.join(pair_tasks)}",
        )
    split_names = tuple(split.name for split in task.splits)
    split_name = check.choice(str(value["split"]), key + ("split",), split_names)
    if not task.split(split_name).labelled:
        raise check.fail(
            key + ("split",),
            f"split '{split_name}' of {task_name} has hidden labels, so it cannot be scored",
            "Use a labelled split such as dev",
        )
    return {"task": task_name, "split": split_name}


def _labels(check: SpecChecker, key: tuple, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise check.fail(key, f"expected a non-empty list of labels, found {value!r}")
    labels = []
    for position, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int)) or item == "":
            raise check.fail(key + (position,), f"expected a label string, found {item!r}")
        labels.append(str(item))
    return labels


def _pair_labels(check: SpecChecker, key: tuple, raw: dict, options: dict) -> None:
    """Validate `positive` and `negative`; against the source task's labels when it has one."""
    positive = _labels(check, key + ("positive",), raw.get("positive", ["1"]))
    negative = _labels(check, key + ("negative",), raw.get("negative", ["0"]))
    shared = sorted(set(positive) & set(negative))
    if shared:
        raise check.fail(key + ("negative",), f"label {shared[0]!r} is also listed as positive")

    if "source" in options:
        from harness.tasks import get_task

        task = get_task(options["source"]["task"])
        for name, labels in (("positive", positive), ("negative", negative)):
            for label in labels:
                if label not in task.label_ids:
                    raise check.fail(
                        key + (name,),
                        f"'{label}' is not a label of {task.name} "
                        f"(labels: {', '.join(task.label_ids)})",
                        "List the task's labels under positive: and negative:",
                    )
    options["positive"] = positive
    options["negative"] = negative


def validate_similarity_case(
    check: SpecChecker, key: tuple, raw: dict, task: SimilarityTask
) -> dict[str, Any]:
    """Validate the similarity keys of one case and return the case's `options`."""
    allowed = KIND_KEYS[task.kind]
    for name in raw:
        if name in DATA_KEYS and name not in allowed:
            raise check.fail(
                key + (name,),
                f"does not apply to task {task.name}",
                f"It applies to: {_tasks_for(name)}",
            )
    options: dict[str, Any] = {}

    given = [name for name in ("pairs", "data", "source") if name in raw]  # data keys used
    choices = [name for name in ("pairs", "data", "source") if name in allowed]
    if len(given) != 1:
        raise check.fail(
            key,
            f"give exactly one of {' and '.join(repr(name) for name in choices)}"
            + (f" (found {', '.join(given)})" if given else ""),
        )
    if "pairs" in raw:
        pairs = raw["pairs"]
        if not isinstance(pairs, list) or not pairs:
            raise check.fail(key + ("pairs",), "expected a non-empty list of pair asserts")
        for position, item in enumerate(pairs):
            try:
                parse_pair_check(item, position)
            except FieldProblem as problem:
                where = key + ("pairs", position) + ((problem.field,) if problem.field else ())
                raise check.fail(where, problem.problem) from None
        options["pairs"] = pairs
        canonical = json.dumps(pairs, ensure_ascii=False, sort_keys=True)
        options["pairs_sha256"] = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    if "data" in raw:
        options["data"] = check.text(raw["data"], key + ("data",))
    if "source" in raw:
        options["source"] = _source(check, key + ("source",), raw["source"])

    if "fields" in raw:
        check.mapping(raw["fields"], key + ("fields",), FIELD_NAMES[task.kind])
        options["fields"] = {
            name: check.text(value, key + ("fields", name)) for name, value in raw["fields"].items()
        }
    if "score_range" in raw:
        bounds = raw["score_range"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise check.fail(key + ("score_range",), f"expected [low, high], found {bounds!r}")
        low = check.number(bounds[0], key + ("score_range", 0))
        high = check.number(bounds[1], key + ("score_range", 1))
        if not high > low:
            raise check.fail(key + ("score_range",), f"high {high:g} must be above low {low:g}")
        options["score_range"] = [low, high]
    if task.kind == "pair_classification":
        _pair_labels(check, key, raw, options)
    if "cutoff" in raw:
        options["cutoff"] = check.number(raw["cutoff"], key + ("cutoff",), -1.0, 1.0)

    roles = raw.get("roles", ["query", "query"])
    if not isinstance(roles, list) or len(roles) != 2:
        raise check.fail(
            key + ("roles",), f"expected two roles such as [query, passage], found {roles!r}"
        )
    options["roles"] = [
        check.choice(role, key + ("roles", position), ROLES) for position, role in enumerate(roles)
    ]
    return options


def case_id_parts(options: dict[str, Any]) -> tuple[str, ...]:
    """Return the parts that name a case's data in its default id.

    These are the source task and split, or the data file's stem with characters outside
    [A-Za-z0-9_.-] replaced by "_". Inline pairs add no part.
    """
    if "source" in options:
        return (options["source"]["task"], options["source"]["split"])
    if "data" in options:
        stem = UNSAFE_ID_CHARACTERS.sub("_", Path(options["data"]).stem).strip("_")
        return (stem or "data",)
    return ()
