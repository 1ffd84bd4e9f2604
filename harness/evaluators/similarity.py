"""Similarity cases: an embedding model (backend hf-embedding) scored by cosine.

Case keys on top of the common ones (harness.spec), by task:

- every task: `roles` (default `[query, query]`): which of the model's prefixes the first
  and the second text of each pair get (`query_prefix` or `passage_prefix` in the model's
  options). An ordering item compares the pairs (a, b), (a, c) and (b, c), and in a
  generation check the first text is the prediction.
- `similarity-pairs`: `pairs` (inline list) or `data` (JSON-lines file of the same items);
  see harness.tasks.similarity for the two kinds of item. The case fails naming every
  item that missed its bound, whatever the thresholds.
- `similarity-sts` and `similarity-pair-classification`: `data` (a JSON-lines file) or
  `source: {task, split}` (a labelled CLUE task file under the data root), and `fields:
  {text1, text2, label}` (default sentence1, sentence2, label). STS takes `score_range:
  [low, high]` (default: the lowest and highest gold score of the data), which maps gold
  scores onto [0, 1]. Pair classification takes `positive` and `negative` label lists
  (default ["1"] and ["0"]); pairs with any other label are skipped and counted.
- `similarity-generation`: `data` (a JSON-lines file), `fields: {prediction, reference}`
  (default prediction, and references or reference), and `cutoff` (default 0.8): a
  prediction whose cosine is at least `cutoff` counts towards `above_cutoff`.

`data` is read relative to the spec's folder, then relative to the data root. The smoke
tier and `limit` score a seeded sample (stratified by label for pair classification). A
metric that is undefined for the data, such as a correlation with constant cosines, fails
the case with a message and is left out of the metrics, so no NaN reaches a report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.backends.base import Backend
from harness.cases import CaseConfig
from harness.data.jsonl import sha256_file
from harness.data.subset import stratified_subset
from harness.errors import DataError
from harness.evaluators.base import Evaluator, RunContext, new_result
from harness.evaluators.similarity_scoring import (
    Outcome,
    score_generation,
    score_pair_checks,
    score_pair_classification,
    score_sts,
)
from harness.evaluators.similarity_spec import case_id_parts, validate_similarity_case
from harness.results import CaseResult
from harness.tasks import get_task
from harness.tasks.similarity import (
    LoadedRows,
    SimilarityTask,
    gold_score,
    load_generation_rows,
    load_pair_checks,
    load_pair_rows,
    parse_pair_check,
)

PAIR_FIELDS = {"text1": "sentence1", "text2": "sentence2", "label": "label"}
DEFAULT_CUTOFF = 0.8


def resolve_data_path(context: RunContext, case: CaseConfig) -> Path:
    """Find a case's `data` file: as given when absolute, else beside the spec, else under
    the data root."""
    value = Path(case.options["data"]).expanduser()
    if value.is_absolute():
        tried = [value]
    else:
        tried = [Path(case.spec_path).parent / value]
        if context.data_root is not None:
            tried.append(context.data_root / value)
    for path in tried:
        if path.is_file():
            context.data_files.append(path)
            return path
    raise DataError(
        tried[0],
        "file not found",
        hint="Looked in " + " and ".join(str(path) for path in tried),
    )


def data_path(context: RunContext, case: CaseConfig) -> Path:
    """Return the file a case reads: its `data` file or its `source` task file."""
    source = case.options.get("source")
    if source is None:
        return resolve_data_path(context, case)
    task = get_task(source["task"])
    return context.locate(task.directory, task.split(source["split"]).filename)


def sample_indices(
    context: RunContext, case: CaseConfig, count: int, strata: list[str] | None = None
) -> list[int]:
    """Return the rows a case scores, in file order: all, or a seeded (stratified) sample."""
    size = context.subset_size(case)
    if size is None or size >= count:
        return list(range(count))
    return stratified_subset(strata if strata is not None else [None] * count, size, case.seed)


def score_range(case: CaseConfig, rows: list, gold: list[float], path: Path) -> tuple[float, float]:
    """Return the case's `score_range`, or the data's lowest and highest gold score.

    A gold score outside a configured range is a DataError naming its line.
    """
    if "score_range" not in case.options:
        return min(gold), max(gold)
    low, high = case.options["score_range"]
    for row, value in zip(rows, gold):
        if not low <= value <= high:
            raise DataError(
                path,
                f"gold score {value:g} is outside score_range [{low:g}, {high:g}]",
                line=row.line,
                hint="Fix the case's score_range",
            )
    return low, high


class SimilarityEvaluator(Evaluator):
    family = "similarity"
    methods = {"hf-embedding": ("embedding",)}
    case_keys = (
        "pairs",
        "data",
        "source",
        "fields",
        "score_range",
        "positive",
        "negative",
        "cutoff",
        "roles",
    )

    def validate_case(self, check, key, raw, merged, task, method):
        return {"options": validate_similarity_case(check, key, raw, task)}

    def id_parts(self, raw: dict, values: dict[str, Any]) -> tuple[str, ...]:
        return case_id_parts(values["options"])

    def run(
        self, context: RunContext, case: CaseConfig, task: SimilarityTask, backend: Backend
    ) -> CaseResult:
        result = new_result(case, task, backend, full=context.full_tier)
        started = time.perf_counter()
        if task.kind == "pairs":
            outcome = self._pairs(context, case, backend, result)
        elif task.kind == "generation":
            outcome = self._generation(context, case, backend, result)
        else:
            outcome = self._labelled_pairs(context, case, task, backend, result)
        result.eval_seconds = time.perf_counter() - started

        result.metrics = outcome.metrics
        result.n_scored = outcome.scored
        result.n_skipped = outcome.skipped
        result.checks = outcome.checks
        result.per_example = outcome.per_example
        result.predictions_file = context.write_predictions(case, outcome.records)
        result.check_thresholds()
        result.failures = outcome.undefined + outcome.broken + result.failures
        return result

    def _select(
        self,
        context: RunContext,
        case: CaseConfig,
        result: CaseResult,
        loaded: LoadedRows,
        strata: list[str] | None = None,
    ) -> list[int]:
        if not loaded.rows:
            raise DataError(loaded.path, "the file has no records", hint="Give a JSON-lines file")
        result.data_file = str(loaded.path)
        result.data_sha256 = loaded.sha256
        result.n_rows = len(loaded.rows)
        chosen = sample_indices(context, case, len(loaded.rows), strata)
        result.n_selected = len(chosen)
        return chosen

    def _pairs(self, context, case, backend, result) -> Outcome:
        if "pairs" in case.options:
            checks = [
                parse_pair_check(item, position)
                for position, item in enumerate(case.options["pairs"])
            ]
            result.data_file = f"{case.spec_path} (inline pairs)"
            result.data_sha256 = case.options["pairs_sha256"]
        else:
            path = resolve_data_path(context, case)
            checks = load_pair_checks(path)
            if not checks:
                raise DataError(path, "the file has no pair asserts")
            result.data_file = str(path)
            result.data_sha256 = sha256_file(path)
        result.n_rows = len(checks)
        chosen = sample_indices(context, case, len(checks))
        result.n_selected = len(chosen)
        selected = [checks[index] for index in chosen]
        return score_pair_checks(case, backend, selected, context.progress)

    def _labelled_pairs(self, context, case, task, backend, result) -> Outcome:
        fields = {**PAIR_FIELDS, **case.options.get("fields", {})}
        loaded = load_pair_rows(
            data_path(context, case), fields["text1"], fields["text2"], fields["label"]
        )
        if task.kind == "pair_classification":
            chosen = self._select(
                context, case, result, loaded, [repr(row.label) for row in loaded.rows]
            )
            rows = [loaded.rows[index] for index in chosen]
            return score_pair_classification(case, backend, rows, loaded.path, context.progress)

        # Every gold score is read before sampling, so the default range is the whole file's.
        gold = [gold_score(row, loaded.path, fields["label"]) for row in loaded.rows]
        bounds = score_range(case, loaded.rows, gold, loaded.path)
        chosen = self._select(context, case, result, loaded)
        rows = [loaded.rows[index] for index in chosen]
        selected_gold = [gold[index] for index in chosen]
        return score_sts(case, backend, rows, selected_gold, bounds, context.progress)

    def _generation(self, context, case, backend, result) -> Outcome:
        fields = case.options.get("fields", {})
        loaded = load_generation_rows(
            resolve_data_path(context, case),
            fields.get("prediction", "prediction"),
            fields.get("reference"),
        )
        chosen = self._select(context, case, result, loaded)
        rows = [loaded.rows[index] for index in chosen]
        cutoff = case.options.get("cutoff", DEFAULT_CUTOFF)
        return score_generation(case, backend, rows, loaded.path, cutoff, context.progress)
