"""ChID cases: every candidate idiom is scored in every blank, then blanks get candidates.

Scoring, per blank:
- `loglikelihood` (causal LM): the context is the passage text before the blank and each
  continuation is a candidate followed by the first `continuation_chars` characters after
  the blank (default 20). The shared text after the blank lets the model judge how the
  idiom fits what follows, at the cost of scoring those characters once per candidate.
  `context_chars` can bound the text before the blank (default: all of it). Other blanks
  of the passage are shown as "____", never as their tags.
- `multiple_choice` (encoder with a multiple-choice head): the passage window, with this
  blank written as `blank_marker` (default four [MASK] tokens, one per idiom character),
  is paired with each candidate. The window defaults to 64 characters on each side.

Decoding, per line: a CLUE line's blanks share one candidate list and take distinct
idioms, so by default candidates are assigned one-to-one by maximising the summed scores
(`scipy.optimize.linear_sum_assignment`, the Hungarian method). `assignment: argmax`
picks each blank's best candidate on its own instead. Accuracy is over blanks.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from harness.backends.base import Backend, ChoiceRequest, MultipleChoiceRequest
from harness.cases import NORMALIZATIONS, CaseConfig
from harness.data.jsonl import files_sha256
from harness.data.subset import stratified_subset
from harness.errors import BackendError, HarnessError
from harness.evaluators.base import (
    Evaluator,
    RunContext,
    correctness_per_example,
    finish_progress,
    input_digest,
    new_result,
)
from harness.evaluators.classification import argmax, normalised_scores
from harness.metrics.classification import accuracy
from harness.outputs import dumps_line
from harness.results import CaseResult
from harness.tasks.chid import (
    CLUE_LAYOUT,
    ChidTask,
    LoadedChid,
    blank_window,
    load_chid,
)

logger = logging.getLogger(__name__)

ASSIGNMENTS = ("hungarian", "argmax")
PLACEHOLDER = "____"
DEFAULT_MARKER = "[MASK]" * 4
# A blank at the very start of a passage has no text before it, but a causal LM needs at
# least one context token to predict the first continuation token from.
EMPTY_CONTEXT = "\n"
DEFAULT_WINDOWS = {"loglikelihood": (None, 20), "multiple_choice": (64, 64)}


def case_options(case: CaseConfig) -> dict[str, Any]:
    """Return the case's ChID options, with the defaults of its method filled in."""
    before, after = DEFAULT_WINDOWS.get(case.method, DEFAULT_WINDOWS["loglikelihood"])
    defaults = {
        "assignment": "hungarian",
        "context_chars": before,
        "continuation_chars": after,
        "blank_marker": DEFAULT_MARKER,
    }
    return {**defaults, **case.options}


def assign_candidates(scores: Sequence[Sequence[float]], assignment: str) -> list[int]:
    """Pick a candidate index for each blank (row) from a blanks-by-candidates score matrix.

    "hungarian" gives distinct candidates with the largest total score; rows beyond the
    number of candidates fall back to their own argmax. "argmax" decides each row alone.

    >>> assign_candidates([[0.9, 0.8], [0.7, 0.1]], "argmax")
    [0, 0]
    >>> assign_candidates([[0.9, 0.8], [0.7, 0.1]], "hungarian")
    [1, 0]
    """
    picks = [argmax(list(row)) for row in scores]
    if assignment == "argmax" or len(picks) < 2:
        return picks
    rows, columns = linear_sum_assignment(np.asarray(scores, dtype=float), maximize=True)
    for row, column in zip(rows, columns):
        picks[int(row)] = int(column)
    return picks


class ClozeEvaluator(Evaluator):
    family = "cloze"
    methods = {
        "hf-causal": ("loglikelihood",),
        "hf-multiple-choice": ("multiple_choice",),
        "openai": ("loglikelihood",),
    }
    case_keys = (
        "assignment",
        "context_chars",
        "continuation_chars",
        "blank_marker",
        "length_normalization",
    )

    def validate_case(self, check, key, raw, merged, task, method):
        assignment = check.choice(
            raw.get("assignment", "hungarian"), key + ("assignment",), ASSIGNMENTS
        )
        default_before, default_after = DEFAULT_WINDOWS[method]
        before = raw.get("context_chars", default_before)
        if before is not None:
            before = check.integer(before, key + ("context_chars",), minimum=1)
        after = check.integer(
            raw.get("continuation_chars", default_after), key + ("continuation_chars",)
        )
        marker = check.text(raw.get("blank_marker", DEFAULT_MARKER), key + ("blank_marker",))
        if "blank_marker" in raw and method != "multiple_choice":
            raise check.fail(key + ("blank_marker",), "applies only to method 'multiple_choice'")
        normalization = check.choice(
            merged.get("length_normalization", "none"),
            key + ("length_normalization",),
            NORMALIZATIONS,
        )
        if "length_normalization" in raw and method != "loglikelihood":
            raise check.fail(
                key + ("length_normalization",), "applies only to method 'loglikelihood'"
            )
        options = {
            "assignment": assignment,
            "context_chars": before,
            "continuation_chars": after,
            "blank_marker": marker,
        }
        return {"length_normalization": normalization, "options": options}

    def load(self, context: RunContext, task: ChidTask, split_name: str) -> LoadedChid:
        split = task.split(split_name)
        path = context.locate(task.directory, split.filename)
        answers = None
        if task.layout == CLUE_LAYOUT and split.labelled:
            answers = context.locate(task.directory, split.answers)
        return load_chid(task, split_name, path, answers)

    def run(
        self, context: RunContext, case: CaseConfig, task: ChidTask, backend: Backend
    ) -> CaseResult:
        loaded = self.load(context, task, case.split)
        labelled = loaded.split.labelled
        selected = loaded.records
        size = context.subset_size(case) if labelled else None
        if size is not None:
            indices = stratified_subset([None] * len(selected), size, seed=case.seed)
            selected = [selected[index] for index in indices]

        result = new_result(case, task, backend, full=context.full_tier or not labelled)
        result.n_rows = len(loaded.records)
        result.n_selected = len(selected)
        result.data_file = str(loaded.path)
        paths = (loaded.path,) + ((loaded.answers_path,) if loaded.answers_path else ())
        result.data_sha256 = files_sha256(paths)

        options = case_options(case)
        started = time.perf_counter()
        blanks = [(record, blank) for record in selected for blank in record.blanks]
        progress = context.progress(case, len(blanks))
        if case.method == "multiple_choice":
            inputs, scores = self._by_choice(blanks, options, backend, progress)
        else:
            inputs, scores = self._by_loglikelihood(case, blanks, options, backend, progress)
        result.eval_seconds = time.perf_counter() - started
        finish_progress(progress)

        predictions = self._decode(blanks, scores, options["assignment"])
        gold = [blank.gold for _, blank in blanks]
        if labelled:
            result.n_scored = len(gold)
            result.metrics = {"accuracy": accuracy(gold, predictions)}
            # NOTE: blanks of one line share a candidate list, so their outcomes are not
            # independent; intervals and paired tests still treat each blank as one example.
            result.per_example = correctness_per_example(
                [blank.tag for _, blank in blanks], gold, predictions
            )

        records = [
            {
                "id": record.id,
                "line": record.line,
                "tag": blank.tag,
                "input_sha256": input_digest(text),
                "prediction": prediction,
                "gold": blank.gold,
                "correct": None if blank.gold is None else prediction == blank.gold,
                "scores": [round(float(value), 6) for value in values],
            }
            for (record, blank), prediction, text, values in zip(
                blanks, predictions, inputs, scores
            )
        ]
        result.predictions_file = context.write_predictions(case, records)
        if not labelled:
            result.submission_file = self.write_submission(context, case, task, loaded, predictions)
        result.check_thresholds()
        return result

    def _by_loglikelihood(self, case, blanks, options, backend, progress):
        requests = []
        for record, blank in blanks:
            before, after = blank_window(
                record, blank, options["context_chars"], options["continuation_chars"], PLACEHOLDER
            )
            continuations = tuple(candidate + after for candidate in record.candidates)
            requests.append(ChoiceRequest(before or EMPTY_CONTEXT, continuations))
        outputs = backend.loglikelihood(requests, progress)

        scores = [
            normalised_scores(case, output, request.continuations)
            for request, output in zip(requests, outputs)
        ]
        inputs = [request.context + "\n" + "\n".join(request.continuations) for request in requests]
        return inputs, scores

    def _by_choice(self, blanks, options, backend, progress):
        requests = []
        for record, blank in blanks:
            before, after = blank_window(
                record, blank, options["context_chars"], options["continuation_chars"], PLACEHOLDER
            )
            passage = before + options["blank_marker"] + after
            requests.append(MultipleChoiceRequest(passage, "", record.candidates))
        scores = backend.choose(requests, progress)
        for request, values in zip(requests, scores):
            if len(values) != len(request.choices) or not all(
                math.isfinite(value) for value in values
            ):
                raise BackendError(
                    f"model '{backend.config.name}' returned {len(values)} finite scores for "
                    f"{len(request.choices)} candidates"
                )
        return [request.context for request in requests], [list(values) for values in scores]

    @staticmethod
    def _decode(blanks, scores: list[list[float]], assignment: str) -> list[int]:
        """Decode each line's blanks together; blanks of one line are adjacent in `blanks`."""
        predictions: list[int] = []
        start = 0
        while start < len(blanks):
            record = blanks[start][0]
            end = start + len(record.blanks)
            predictions.extend(assign_candidates(scores[start:end], assignment))
            start = end
        return predictions

    def write_submission(
        self,
        context: RunContext,
        case: CaseConfig,
        task: ChidTask,
        loaded: LoadedChid,
        predictions: list[int],
    ) -> str:
        """Write the CLUE object {tag: index} or the FewCLUE lines {"id", "answer"}."""
        if len(predictions) != loaded.blank_count:
            raise HarnessError(
                f"case {case.id}: {len(predictions)} predictions for {loaded.blank_count} blanks"
            )
        if task.layout == CLUE_LAYOUT:
            tags = [blank.tag for record in loaded.records for blank in record.blanks]
            text = json.dumps(dict(zip(tags, predictions)), ensure_ascii=False, indent=1) + "\n"
        else:
            lines = [
                dumps_line({"id": record.id, "answer": prediction})
                for record, prediction in zip(loaded.records, predictions)
            ]
            text = "\n".join(lines) + "\n"
        return context.write_submission(case, task.benchmark, loaded.split.submission, text)
