"""Span-extraction cases (CMRC2018): an extractive QA model, or a causal LM that generates.

- `extractive` (backend hf-qa) sends each (question, passage) pair as a SpanRequest. The
  prediction is the span the model cuts from the passage, unchanged.
- `generate` (backends hf-causal and openai) fills the prompt with the passage and the
  question (the case's `prompt` may replace it, with placeholders {context} and
  {question}), after `shots` few-shot examples drawn once per case with the seed. It
  decodes greedily, or samples when the case sets `sampling: {temperature, top_p, seed}`,
  until a string of `stop` (default a newline) or `max_new_tokens` (default 32), then
  cleans the answer with `clean_answer` unless the case sets `cleanup: false`.

Scores are the official CMRC2018 EM and F1 (harness.metrics.cmrc) over the selected
questions, on a 0-100 scale. The smoke tier scores a seeded sample of questions. The test
split writes `cmrc2018_predict.json`: one JSON object from question id to answer, with
every test question, in test-file order.
"""

from __future__ import annotations

import json
import random
import re
import time
from typing import Any

from harness.backends.base import Backend, GenerationRequest, SpanRequest
from harness.cases import DEFAULT_SEED, CaseConfig
from harness.data.subset import stratified_subset
from harness.errors import BackendError, HarnessError
from harness.evaluators.base import (
    Evaluator,
    RunContext,
    finish_progress,
    input_digest,
    new_result,
    sampling_of,
    validate_sampling,
)
from harness.evaluators.classification import validate_prompting
from harness.metrics.cmrc import corpus_scores, exact_match, f1_score
from harness.metrics.per_example import per_example_data
from harness.results import CaseResult
from harness.tasks.cmrc import LoadedSpans, SpanExtractionTask, SpanQuestion, load_squad
from harness.tasks.prompting import SHOT_SEPARATOR, fill

DEFAULT_STOP = ("\n",)
DEFAULT_MAX_NEW_TOKENS = 32
GENERATION_KEYS = ("fewshot_split", "prompt", "stop", "max_new_tokens", "cleanup", "sampling")

# A leading "答案：" or "答：" (full-width or ASCII colon) repeats the end of the prompt.
ANSWER_ECHO = re.compile(r"^答案?\s*[:：]\s*")
QUOTES = "\"'“”‘’「」『』"


def clean_answer(generated: str) -> str:
    """Clean a generated answer: first line, no "答案：" echo, no surrounding quotes.

    Steps: strip whitespace, keep the text before the first newline, drop one leading
    "答案：" or "答：", then strip quote characters and whitespace from both ends. The
    passage is never consulted: an answer that does not occur in the passage is kept as
    it is, even when a prefix of it does occur, because cutting it to that prefix would
    choose an answer the model did not give.

    >>> clean_answer(' 答案：“1862年”\\n问题：')
    '1862年'
    """
    answer = generated.strip()
    answer = answer.split("\n", 1)[0].strip()
    answer = ANSWER_ECHO.sub("", answer, count=1)
    return answer.strip().strip(QUOTES).strip()


def select_questions(
    context: RunContext, case: CaseConfig, loaded: LoadedSpans
) -> list[SpanQuestion]:
    """Pick the questions a case scores: all of them, or a seeded sample in file order."""
    if not loaded.split.labelled:
        return loaded.questions
    size = context.subset_size(case)
    if size is None:
        return loaded.questions
    indices = stratified_subset([None] * len(loaded.questions), size, seed=case.seed)
    return [loaded.questions[index] for index in indices]


def generation_options(case: CaseConfig) -> dict[str, Any]:
    """Return the case's generation settings with the defaults filled in."""
    return {
        "stop": tuple(case.options.get("stop", DEFAULT_STOP)),
        "max_new_tokens": case.options.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS),
        "cleanup": case.options.get("cleanup", True),
    }


class SpanExtractionEvaluator(Evaluator):
    family = "span_extraction"
    methods = {
        "hf-qa": ("extractive",),
        "hf-causal": ("generate",),
        "openai": ("generate",),
    }
    case_keys = (
        "shots",
        "fewshot_split",
        "prompt",
        "stop",
        "max_new_tokens",
        "cleanup",
        "sampling",
    )

    def validate_case(self, check, key, raw, merged, task, method):
        if method != "generate":
            for name in GENERATION_KEYS:
                if name in raw:
                    raise check.fail(
                        key + (name,),
                        f"applies only to method 'generate', not '{method}'",
                        "Remove it, or score the case with a causal LM",
                    )
        values = validate_prompting(
            check, key, raw, merged, task, method, task.prompt_variables_names()
        )

        options: dict[str, Any] = {}
        if "stop" in raw:
            options["stop"] = tuple(check.strings(raw["stop"], key + ("stop",)))
        if "max_new_tokens" in raw:
            options["max_new_tokens"] = check.integer(
                raw["max_new_tokens"], key + ("max_new_tokens",), minimum=1
            )
        if "cleanup" in raw:
            options["cleanup"] = check.boolean(raw["cleanup"], key + ("cleanup",))
        if "sampling" in raw:
            seed = merged.get("seed", DEFAULT_SEED)
            options["sampling"] = validate_sampling(
                check, key + ("sampling",), raw["sampling"], seed
            )
        values["options"] = options
        return values

    def load(self, context: RunContext, task: SpanExtractionTask, split_name: str) -> LoadedSpans:
        path = context.locate(task.directory, task.split(split_name).filename)
        return load_squad(task, split_name, path)

    def run(
        self, context: RunContext, case: CaseConfig, task: SpanExtractionTask, backend: Backend
    ) -> CaseResult:
        loaded = self.load(context, task, case.split)
        labelled = loaded.split.labelled
        selected = select_questions(context, case, loaded)
        result = new_result(case, task, backend, full=context.full_tier or not labelled)
        result.n_rows = len(loaded.questions)
        result.n_selected = len(selected)
        result.data_file = str(loaded.path)
        result.data_sha256 = loaded.sha256

        started = time.perf_counter()
        progress = context.progress(case, len(selected))
        if case.method == "extractive":
            predictions, inputs, details = self._extract(case, selected, backend, progress)
        else:
            predictions, inputs, details = self._generate(
                context, case, task, selected, backend, progress
            )
        result.eval_seconds = time.perf_counter() - started
        finish_progress(progress)

        if labelled:
            answers = {
                question.id: prediction for question, prediction in zip(selected, predictions)
            }
            scores = corpus_scores(loaded.gold(selected), answers)
            result.n_scored = scores.total
            result.metrics = {"em": scores.em, "f1": scores.f1}

        records = [
            self._record(question, prediction, text, detail, labelled)
            for question, prediction, text, detail in zip(selected, predictions, inputs, details)
        ]
        result.predictions_file = context.write_predictions(case, records)
        if labelled:
            result.per_example = per_example_data(
                [record["id"] for record in records],
                {
                    "em": [record["em"] for record in records],
                    "f1": [record["f1"] for record in records],
                },
                {
                    "em": {"statistic": "mean", "columns": ["em"], "scale": 100.0},
                    "f1": {"statistic": "mean", "columns": ["f1"], "scale": 100.0},
                },
            )
        if not labelled:
            result.submission_file = self.write_submission(context, case, task, loaded, predictions)
        result.check_thresholds()
        return result

    def _record(
        self,
        question: SpanQuestion,
        prediction: str,
        text: str,
        detail: dict[str, Any],
        labelled: bool,
    ) -> dict[str, Any]:
        record = {
            "id": question.id,
            "location": question.location,
            "input_sha256": input_digest(text),
            "prediction": prediction,
            "in_passage": prediction in question.context,
            **detail,
            "references": list(question.references) if labelled else None,
            "em": None,
            "f1": None,
            "correct": None,
        }
        if labelled:
            record["em"] = exact_match(question.references, prediction)
            record["f1"] = f1_score(question.references, prediction)
            record["correct"] = record["em"] == 1
        return record

    def _extract(self, case, selected, backend, progress):
        requests = [SpanRequest(question.question, question.context) for question in selected]
        answers = backend.extract_answers(requests, progress)
        if len(answers) != len(requests):
            raise BackendError(
                f"case {case.id}: model '{case.model}' returned {len(answers)} answers "
                f"for {len(requests)} questions"
            )
        predictions = [answer.text for answer in answers]
        inputs = [f"{request.question}\n{request.context}" for request in requests]
        details = [{"start": answer.start, "score": answer.score} for answer in answers]
        return predictions, inputs, details

    def _generate(self, context, case, task, selected, backend, progress):
        options = generation_options(case)
        template = case.prompt or task.prompt
        prefix = self._fewshot_prefix(context, case, task, template, selected)
        prompts = [prefix + fill(template, question.fields) for question in selected]
        requests = [
            GenerationRequest(
                prompt,
                max_new_tokens=options["max_new_tokens"],
                stop=options["stop"],
                sampling=sampling_of(case),
            )
            for prompt in prompts
        ]

        outputs = backend.generate(requests, progress)
        if len(outputs) != len(requests):
            raise BackendError(
                f"case {case.id}: model '{case.model}' returned {len(outputs)} generations "
                f"for {len(requests)} prompts"
            )
        if options["cleanup"]:
            predictions = [clean_answer(output) for output in outputs]
        else:
            predictions = list(outputs)
        details = [{"generated": output} for output in outputs]
        return predictions, prompts, details

    def _fewshot_prefix(self, context, case, task, template, selected) -> str:
        """Render `case.shots` examples (prompt plus first reference), or "" for zero-shot."""
        if not case.shots:
            return ""
        pool_split = case.fewshot_split or task.fewshot_split
        pool = self.load(context, task, pool_split).questions
        if task.split(pool_split).filename == task.split(case.split).filename:
            chosen = {question.index for question in selected}
            pool = [question for question in pool if question.index not in chosen]
        if case.shots > len(pool):
            raise HarnessError(
                f"case {case.id}: {case.shots} few-shot examples requested but split "
                f"'{pool_split}' has {len(pool)} questions to draw from"
            )

        shots = random.Random(case.seed).sample(pool, case.shots)
        rendered = [fill(template, shot.fields) + shot.references[0] for shot in shots]
        return SHOT_SEPARATOR.join(rendered) + SHOT_SEPARATOR

    def write_submission(
        self,
        context: RunContext,
        case: CaseConfig,
        task: SpanExtractionTask,
        loaded: LoadedSpans,
        predictions: list[str],
    ) -> str:
        """Write one JSON object from each test question's id to its answer, in file order."""
        if len(predictions) != len(loaded.questions):
            raise HarnessError(
                f"case {case.id}: {len(predictions)} predictions for "
                f"{len(loaded.questions)} test questions"
            )
        answers = {
            question.id: str(prediction)
            for question, prediction in zip(loaded.questions, predictions)
        }
        text = json.dumps(answers, ensure_ascii=False, indent=2) + "\n"
        return context.write_submission(case, task.benchmark, loaded.split.submission, text)
