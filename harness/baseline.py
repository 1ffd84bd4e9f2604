"""Baseline files: the scores and per-example outcomes that later runs of a suite are gated on.

One JSON file per suite, meant to be committed and reviewed in pull requests:

    {
      "format": "clue-harness-baseline/1",
      "updated": "2026-12-05T10:00:00+00:00",
      "harness_version": "0.1.0",
      "cases": {
        "<case id>": {
          "task", "split", "tier", "seed", "main_metric",
          "metrics": {metric: score},
          "n_scored", "data_file", "data_sha256",
          "provenance": {model, backend, source, revision, weights_sha256, dtype,
                         batch_size, prompt_sha256, harness_version, date},
          "per_example": {"ids", "columns", "metrics"}   (harness.metrics.per_example)
        }
      }
    }

Every list and every packed 0/1 column is written on one line, so a diff shows which case
and which field changed. Cases are sorted by id. A case whose data file (sha256) or example
ids differ from a run's cannot be compared with it, and `comparison_problem` returns why.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import HarnessError
from harness.metrics.per_example import column_array, is_binary_metric
from harness.outputs import write_atomic
from harness.results import CaseResult

logger = logging.getLogger(__name__)

BASELINE_FORMAT = "clue-harness-baseline/1"
# Provenance fields that change on every run and so are not listed as changes.
VOLATILE_PROVENANCE = ("date",)

_cache: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


@dataclass
class BaselineUpdate:
    """The outcome of `--update-baseline` for one file: written or not, and what changed."""

    path: Path
    written: bool
    changes: list[str] = field(default_factory=list)


def load_baseline(path: Path) -> dict[str, Any] | None:
    """Read a baseline file, or return None when it does not exist.

    The parsed file is kept per process until the file changes, because every case of a
    suite reads the same file. Raises HarnessError for a file that is not a baseline.
    """
    path = Path(path).resolve()
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    stamp = (status.st_mtime_ns, status.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HarnessError(f"baseline {path}: cannot be read as JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise HarnessError(
            f'baseline {path}: not a baseline file (expected "format": "{BASELINE_FORMAT}"); '
            "write one with --update-baseline"
        )
    cases = data.get("cases")
    if not isinstance(cases, dict) or not all(isinstance(entry, dict) for entry in cases.values()):
        raise HarnessError(f'baseline {path}: "cases" must map case ids to objects')
    _cache[path] = (stamp, data)
    return data


def _short_data_file(data_file: str) -> str:
    """Return the data file's last two path parts ("ocnli/dev.json"), not a machine's path."""
    parts = Path(data_file).parts
    return "/".join(parts[-2:]) if parts else ""


def baseline_entry(result: CaseResult) -> dict[str, Any]:
    """Return what a baseline stores for one scored case."""
    entry = {
        "task": result.task,
        "split": result.split,
        "tier": result.tier,
        "seed": result.seed,
        "main_metric": result.main_metric,
        "metrics": {
            name: round(value, 6) for name, value in result.metrics.items() if math.isfinite(value)
        },
        "n_scored": result.n_scored,
        "data_file": _short_data_file(result.data_file),
        "data_sha256": result.data_sha256,
        "provenance": dict(result.provenance),
        "per_example": result.per_example,
    }
    if result.repeats:
        entry["repeats"] = {
            key: value for key, value in result.repeats.items() if key != "predictions_files"
        }
    return entry


def _render(value: Any, indent: int, depth: int) -> str:
    """Render mappings over several lines; lists and scalars on one line."""
    if isinstance(value, dict) and value and depth < 5:
        pad = " " * (indent * (depth + 1))
        items = [
            f"{pad}{json.dumps(str(key), ensure_ascii=False)}: {_render(item, indent, depth + 1)}"
            for key, item in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * (indent * depth) + "}"
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def render_baseline(data: dict[str, Any]) -> str:
    """Serialise a baseline with sorted case ids; NaN and infinity are refused."""
    ordered = {**data, "cases": dict(sorted(data["cases"].items()))}
    return _render(ordered, 2, 0) + "\n"


def comparison_problem(entry: dict[str, Any], result: CaseResult, path: str | Path) -> str | None:
    """Return why a baseline entry cannot be compared with a run of the same case, or None.

    The data file must have the same sha256, and the examples the same ids.
    """
    if entry.get("data_sha256") != result.data_sha256:
        return (
            f"case {result.case_id}: baseline {path} was recorded on a data file with sha256 "
            f"{entry.get('data_sha256')} ({entry.get('data_file')}), but this run read "
            f"{result.data_file} with sha256 {result.data_sha256}; score the same file, or "
            "record a new baseline with --update-baseline --force-baseline"
        )
    baseline_ids = (entry.get("per_example") or {}).get("ids")
    run_ids = (result.per_example or {}).get("ids")
    if baseline_ids is None or run_ids is None:
        return None
    difference = id_difference(baseline_ids, run_ids)
    if difference is None:
        return None
    return (
        f"case {result.case_id}: the example ids differ from baseline {path} "
        f"(baseline: tier {entry.get('tier')}, seed {entry.get('seed')}, "
        f"{len(baseline_ids)} examples; this run: tier {result.tier}, seed {result.seed}, "
        f"{len(run_ids)} examples): {difference}; run with the baseline's tier, seed and "
        "smoke_size, or record a new baseline with --update-baseline --force-baseline"
    )


def _first(values: Sequence[str], count: int = 5) -> str:
    listed = ", ".join(values[:count])
    return listed + (", ..." if len(values) > count else "")


def id_difference(baseline_ids: Sequence[str], run_ids: Sequence[str]) -> str | None:
    """Describe how two id lists differ as sets, or return None when they can be paired.

    >>> id_difference(["1", "2", "3"], ["3", "1", "2"]) is None
    True
    >>> id_difference(["1", "2", "3"], ["1", "2", "4"])
    '1 id only in the baseline (3) and 1 only in this run (4)'
    """
    if list(baseline_ids) == list(run_ids):
        return None
    for name, ids in (("baseline", baseline_ids), ("this run", run_ids)):
        if len(set(ids)) != len(ids):
            return f"ids repeat in {name}, so examples cannot be paired by id"
    run_set = set(run_ids)
    baseline_set = set(baseline_ids)
    only_baseline = [value for value in baseline_ids if value not in run_set]
    only_run = [value for value in run_ids if value not in baseline_set]
    if not only_baseline and not only_run:
        return None
    noun = "id" if len(only_baseline) == 1 else "ids"
    return (
        f"{len(only_baseline)} {noun} only in the baseline ({_first(only_baseline)}) and "
        f"{len(only_run)} only in this run ({_first(only_run)})"
    )


def aligned_order(baseline_ids: Sequence[str], run_ids: Sequence[str]) -> list[int]:
    """Return, for each run id, the position of the same id in the baseline."""
    position = {value: index for index, value in enumerate(baseline_ids)}
    return [position[value] for value in run_ids]


def _flips(old: dict[str, Any], new: dict[str, Any], metric: str) -> int | None:
    """Count examples whose 0/1 outcome of `metric` changed, when both runs have them."""
    old_data, new_data = old.get("per_example"), new.get("per_example")
    if not old_data or not new_data or old_data["ids"] != new_data["ids"]:
        return None
    if metric not in old_data["metrics"] or metric not in new_data["metrics"]:
        return None
    if not (is_binary_metric(old_data, metric) and is_binary_metric(new_data, metric)):
        return None
    column = new_data["metrics"][metric]["columns"][0]
    return int((column_array(old_data, column) != column_array(new_data, column)).sum())


def describe_change(case_id: str, old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Describe in one line how a case's baseline entry changes."""
    metric = new["main_metric"]
    score = new["metrics"].get(metric)
    score_text = "undefined" if score is None else f"{score:.4f}"
    if old is None:
        return f"{case_id}: added ({metric} {score_text}, {new['n_scored']} examples)"

    parts = []
    old_score = old.get("metrics", {}).get(metric)
    if old_score != score and old_score is not None and score is not None:
        parts.append(f"{metric} {old_score:.4f} -> {score:.4f} ({score - old_score:+.4f})")
    flips = _flips(old, new, metric)
    if flips:
        parts.append(f"{flips} examples changed outcome")
    if old.get("n_scored") != new["n_scored"]:
        parts.append(f"examples {old.get('n_scored')} -> {new['n_scored']}")
    if old.get("data_sha256") != new["data_sha256"]:
        parts.append(f"data_sha256 {old.get('data_sha256')} -> {new['data_sha256']}")
    old_provenance = old.get("provenance", {})
    for name, value in new["provenance"].items():
        if name not in VOLATILE_PROVENANCE and old_provenance.get(name) != value:
            parts.append(f"{name} {old_provenance.get(name)} -> {value}")
    if not parts:
        return f"{case_id}: unchanged ({metric} {score_text})"
    return f"{case_id}: " + "; ".join(parts)


def update_baseline(
    path: Path, results: Sequence[CaseResult], *, force: bool = False
) -> BaselineUpdate:
    """Record the scored results in a baseline file and describe what changed.

    Cases of the file that this run did not score are kept. While any case failed or had
    an error, nothing is written unless `force` is set. With `force`, every case with scores
    is recorded, including one whose old entry its gate could not compare.
    """
    path = Path(path)
    failing = [result.case_id for result in results if not result.passed]
    if failing and not force:
        return BaselineUpdate(
            path,
            written=False,
            changes=[
                f"not written: {len(failing)} case(s) failed ({_first(failing)}); fix them, "
                "or rerun with --force-baseline to record these scores anyway"
            ],
        )

    existing = load_baseline(path)
    cases = dict(existing["cases"]) if existing else {}
    changes = []
    for result in results:
        if not result.metrics:
            if result.error:
                changes.append(f"{result.case_id}: not recorded, because it has no scores")
            continue
        entry = baseline_entry(result)
        changes.append(describe_change(result.case_id, cases.get(result.case_id), entry))
        cases[result.case_id] = entry
    run_ids = {result.case_id for result in results}
    unscored = sorted(case_id for case_id in cases if case_id not in run_ids)
    if unscored:
        changes.append(
            f"kept {len(unscored)} case(s) that this run did not score ({_first(unscored)})"
        )

    data = {
        "format": BASELINE_FORMAT,
        "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "harness_version": __version__,
        "cases": cases,
    }
    write_atomic(path, render_baseline(data))
    logger.info("wrote baseline %s with %d cases", path, len(cases))
    return BaselineUpdate(path, written=True, changes=changes)
