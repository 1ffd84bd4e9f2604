"""C3 cases: a causal LM by log-likelihood of each option, or an encoder's multiple-choice head.

`loglikelihood` fills the task's prompt (context lines, question, then "答案：") and scores
each option as a continuation; `length_normalization` matters here, because options
differ in length. Few-shot examples are that prompt followed by the gold option, drawn
once per case from `fewshot_split` (default `train`). `multiple_choice` pairs the joined
context lines with the question and each option. Accuracy is over questions.
"""

from __future__ import annotations

import math
import time

from harness.backends.base import Backend, ChoiceRequest, MultipleChoiceRequest
from harness.cases import CaseConfig
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
from harness.evaluators.classification import argmax, normalised_scores, validate_prompting
from harness.metrics.classification import accuracy
from harness.outputs import dumps_line
from harness.results import CaseResult
from harness.tasks.c3 import C3Task, LoadedC3, load_c3
from harness.tasks.prompting import SHOT_SEPARATOR, fill, select_shots


class MultipleChoiceEvaluator(Evaluator):
    family = "multiple_choice"
    methods = {
        "hf-causal": ("loglikelihood",),
        "hf-multiple-choice": ("multiple_choice",),
        "openai": ("loglikelihood",),
    }
    case_keys = ("shots", "fewshot_split", "prompt", "length_normalization")

    def validate_case(self, check, key, raw, merged, task, method):
        return validate_prompting(
            check, key, raw, merged, task, method, task.prompt_variables_names()
        )

    def load(self, context: RunContext, task: C3Task, split_name: str) -> LoadedC3:
        split = task.split(split_name)
        paths = tuple(context.locate(task.directory, name) for name in split.files)
        return load_c3(task, split_name, paths)

    def run(
        self, context: RunContext, case: CaseConfig, task: C3Task, backend: Backend
    ) -> CaseResult:
        loaded = self.load(context, task, case.split)
        labelled = loaded.split.labelled
        selected = loaded.questions
        size = context.subset_size(case) if labelled else None
        if size is not None:
            strata = [str(question.gold) for question in selected]
            selected = [selected[index] for index in stratified_subset(strata, size, case.seed)]

        result = new_result(case, task, backend, full=context.full_tier or not labelled)
        result.n_rows = len(loaded.questions)
        result.n_selected = len(selected)
        result.data_file = loaded.data_file
        result.data_sha256 = loaded.sha256

        started = time.perf_counter()
        progress = context.progress(case, len(selected))
        if case.method == "multiple_choice":
            inputs, scores = self._by_choice(selected, backend, progress)
        else:
            inputs, scores = self._by_loglikelihood(
                context, case, task, selected, backend, progress
            )
        result.eval_seconds = time.perf_counter() - started
        finish_progress(progress)

        predictions = [argmax(values) for values in scores]
        if labelled:
            result.n_scored = len(selected)
            gold = [question.gold for question in selected]
            result.metrics = {"accuracy": accuracy(gold, predictions)}
            result.per_example = correctness_per_example(
                [question.id for question in selected], gold, predictions
            )

        records = [
            {
                "id": question.id,
                "file": question.source,
                "line": question.line,
                "document": question.document,
                "input_sha256": input_digest(text),
                "prediction": prediction,
                "gold": question.gold,
                "correct": None if question.gold is None else prediction == question.gold,
                "scores": [round(float(value), 6) for value in values],
            }
            for question, prediction, text, values in zip(selected, predictions, inputs, scores)
        ]
        result.predictions_file = context.write_predictions(case, records)
        if not labelled:
            result.submission_file = self.write_submission(context, case, task, loaded, predictions)
        result.check_thresholds()
        return result

    def _fewshot_prefix(self, context, case, task, template, selected) -> str:
        if not case.shots:
            return ""
        pool_split = case.fewshot_split or task.fewshot_split
        pool = self.load(context, task, pool_split).questions
        if set(task.split(pool_split).files) & set(task.split(case.split).files):
            chosen = {(question.source, question.index) for question in selected}
            pool = [
                question for question in pool if (question.source, question.index) not in chosen
            ]
        try:
            shots = select_shots(pool, case.shots, case.seed)
        except ValueError as error:
            raise HarnessError(f"case {case.id}: {error} ('{pool_split}')") from None
        rendered = [fill(template, shot.fields) + shot.choices[shot.gold] for shot in shots]
        return SHOT_SEPARATOR.join(rendered) + SHOT_SEPARATOR

    def _by_loglikelihood(self, context, case, task, selected, backend, progress):
        template = case.prompt or task.prompt
        prefix = self._fewshot_prefix(context, case, task, template, selected)
        requests = [
            ChoiceRequest(prefix + fill(template, question.fields), question.choices)
            for question in selected
        ]
        outputs = backend.loglikelihood(requests, progress)

        scores = [
            normalised_scores(case, output, request.continuations)
            for request, output in zip(requests, outputs)
        ]
        return [request.context for request in requests], scores

    def _by_choice(self, selected, backend, progress):
        requests = [
            MultipleChoiceRequest("\n".join(question.context), question.question, question.choices)
            for question in selected
        ]
        scores = backend.choose(requests, progress)
        for request, values in zip(requests, scores):
            if len(values) != len(request.choices) or not all(
                math.isfinite(value) for value in values
            ):
                raise BackendError(
                    f"model '{backend.config.name}' returned {len(values)} finite scores for "
                    f"{len(request.choices)} options"
                )
        inputs = [f"{request.context}\n{request.question}" for request in requests]
        return inputs, [list(values) for values in scores]

    def write_submission(
        self,
        context: RunContext,
        case: CaseConfig,
        task: C3Task,
        loaded: LoadedC3,
        predictions: list[int],
    ) -> str:
        """Write `{"id": question id, "label": option index}` lines in test-file order.

        NOTE: the label is written as an integer, as PaddleNLP writes it. bert4keras writes a
        string, and the CLUE rules do not say which one the scorer requires.
        """
        if len(predictions) != len(loaded.questions):
            raise HarnessError(
                f"case {case.id}: {len(predictions)} predictions for "
                f"{len(loaded.questions)} test questions"
            )
        lines = [
            dumps_line({"id": question.id, "label": prediction})
            for question, prediction in zip(loaded.questions, predictions)
        ]
        return context.write_submission(
            case, task.benchmark, loaded.split.submission, "\n".join(lines) + "\n"
        )
