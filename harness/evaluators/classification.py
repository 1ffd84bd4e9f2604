"""Classification cases: a causal LM by verbalizer log-likelihood, or a fine-tuned classifier."""

from __future__ import annotations

import math
import string
import time
from collections.abc import Sequence
from typing import Any

from harness.backends.base import Backend, ChoiceRequest
from harness.cases import NORMALIZATIONS, CaseConfig, SpecChecker
from harness.data.subset import stratified_subset
from harness.errors import BackendError, HarnessError
from harness.evaluators.base import (
    Evaluator,
    RunContext,
    finish_progress,
    input_digest,
    new_result,
)
from harness.metrics.classification import accuracy, macro_f1
from harness.metrics.per_example import per_example_data
from harness.outputs import dumps_line
from harness.results import CaseResult
from harness.tasks.base import ClassificationTask, Example
from harness.tasks.examples import LoadedSplit, load_split
from harness.tasks.prompting import fewshot_prefix, fill, select_shots, verbalizers


def select_examples(case: CaseConfig, loaded: LoadedSplit, full_tier: bool) -> list[Example]:
    """Pick the rows a case scores: all of them, or a seeded label-stratified subset."""
    examples = loaded.examples
    if not loaded.split.labelled:
        return examples
    size = case.limit
    if size is None and case.tier == "smoke" and not full_tier:
        size = case.smoke_size
    if size is None:
        return examples
    indices = stratified_subset([example.gold for example in examples], size, seed=case.seed)
    return [examples[index] for index in indices]


def classification_per_example(
    ids: Sequence[Any],
    gold: Sequence[str | None],
    predictions: Sequence[str],
    labels: Sequence[str],
) -> dict[str, Any]:
    """Return the per-example outcomes of the scored rows: right or wrong, and the label
    indices that macro-F1 is recomputed from."""
    position = {label: index for index, label in enumerate(labels)}
    scored = [
        (example_id, expected, predicted)
        for example_id, expected, predicted in zip(ids, gold, predictions)
        if expected is not None
    ]
    return per_example_data(
        [example_id for example_id, _, _ in scored],
        {
            "correct": [expected == predicted for _, expected, predicted in scored],
            "gold": [position[expected] for _, expected, _ in scored],
            "predicted": [position[predicted] for _, _, predicted in scored],
        },
        {
            "accuracy": {"statistic": "proportion", "columns": ["correct"]},
            "macro_f1": {
                "statistic": "macro_f1",
                "columns": ["gold", "predicted"],
                "labels": len(labels),
            },
        },
    )


def map_head_labels(task: ClassificationTask, head: Sequence[str], model: str) -> list[str]:
    """Map each classifier output's label name onto the task's label ids.

    A head label may be written as the official id ("106"), the English name
    ("news_house") or the Chinese verbalizer ("房产"); anything else is an error, so a head
    predicting a label the task does not have (TNEWS "105") is rejected before scoring.
    """
    lookup = {}
    for label in task.labels:
        for alias in (label.id, label.name, label.verbalizer):
            lookup.setdefault(alias, label.id)

    mapped = []
    for index, name in enumerate(head):
        if name not in lookup:
            raise BackendError(
                f"model '{model}': head output {index} is labelled {name!r}, which is not a "
                f"{task.name} label (ids: {', '.join(task.label_ids[:20])}); fix the model's "
                "id2label or list the labels in head order under `labels:` in the spec"
            )
        mapped.append(lookup[name])
    return mapped


def normalise(
    scores: Sequence[float], tokens: Sequence[int], words: Sequence[str], mode: str
) -> list[float]:
    """Apply length normalisation to summed log-likelihoods ("none", "tokens" or "chars")."""
    if mode == "tokens":
        return [score / count for score, count in zip(scores, tokens)]
    if mode == "chars":
        return [score / len(word) for score, word in zip(scores, words)]
    return list(scores)


def normalised_scores(case: CaseConfig, output: Any, words: Sequence[str]) -> list[float]:
    """Normalise one request's log-likelihoods as the case asks, rejecting non-finite ones."""
    values = normalise(output.loglikelihoods, output.token_counts, words, case.length_normalization)
    if not all(math.isfinite(value) for value in values):
        raise BackendError(f"case {case.id}: the model returned a non-finite log-likelihood")
    return values


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value; ties go to the earliest, so results never depend on order."""
    return max(range(len(values)), key=lambda index: (values[index], -index))


def check_prompt(check: SpecChecker, key: tuple, prompt: Any, variables: Sequence[str]) -> str:
    """Validate a prompt template against the variables a task provides."""
    check.text(prompt, key)
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None]
    except ValueError as error:
        raise check.fail(
            key, f"invalid template: {error}", "Write literal braces as {{ and }}"
        ) from None
    for name in names:
        if name not in variables:
            raise check.fail(
                key, f"unknown placeholder {{{name}}}", f"Known: {', '.join(sorted(variables))}"
            )
    return prompt


def validate_prompting(
    check: SpecChecker,
    key: tuple,
    raw: dict,
    merged: dict,
    task: Any,
    method: str,
    variables: Sequence[str],
) -> dict[str, Any]:
    """Validate shots, fewshot_split, prompt and length_normalization (causal-LM prompting)."""
    split_names = tuple(split.name for split in task.splits)
    shots = check.integer(merged.get("shots", 0), key + ("shots",))
    if shots and method != "loglikelihood" and method != "generate":
        raise check.fail(key + ("shots",), f"few-shot examples do not apply to method '{method}'")
    fewshot_split = raw.get("fewshot_split")
    if fewshot_split is not None:
        check.choice(fewshot_split, key + ("fewshot_split",), split_names)
        if not task.split(fewshot_split).labelled:
            raise check.fail(key + ("fewshot_split",), "few-shot examples need a labelled split")
    prompt = raw.get("prompt")
    if prompt is not None:
        check_prompt(check, key + ("prompt",), prompt, variables)
    normalization = check.choice(
        merged.get("length_normalization", "none"), key + ("length_normalization",), NORMALIZATIONS
    )
    return {
        "shots": shots,
        "fewshot_split": fewshot_split,
        "prompt": prompt,
        "length_normalization": normalization,
    }


class ClassificationEvaluator(Evaluator):
    family = "classification"
    methods = {
        "hf-causal": ("loglikelihood",),
        "hf-classifier": ("classifier",),
        "openai": ("loglikelihood",),
    }
    case_keys = ("shots", "fewshot_split", "prompt", "verbalizers", "length_normalization")

    def validate_case(self, check, key, raw, merged, task, method):
        values = validate_prompting(
            check, key, raw, merged, task, method, task.prompt_variables_names()
        )

        overrides = raw.get("verbalizers", {})
        if isinstance(overrides, dict):
            overrides = {str(label): word for label, word in overrides.items()}
        check.mapping(overrides, key + ("verbalizers",), tuple(task.label_ids))
        overrides = {
            label: check.text(word, key + ("verbalizers", label))
            for label, word in overrides.items()
        }
        words = [overrides.get(label.id, label.verbalizer) for label in task.labels]
        if len(set(words)) != len(words):
            raise check.fail(
                key + ("verbalizers",),
                "two labels share a verbalizer, so they cannot be told apart",
            )
        values["verbalizers"] = overrides
        return values

    def run(
        self, context: RunContext, case: CaseConfig, task: ClassificationTask, backend: Backend
    ) -> CaseResult:
        loaded = self.load(context, task, case.split)
        selected = select_examples(case, loaded, context.full_tier)
        result = new_result(
            case, task, backend, full=context.full_tier or not loaded.split.labelled
        )
        result.n_rows = len(loaded.examples)
        result.n_selected = len(selected)
        result.data_file = str(loaded.path)
        result.data_sha256 = loaded.sha256

        started = time.perf_counter()
        progress = context.progress(case, len(selected))
        if case.method == "loglikelihood":
            predictions, inputs, scores = self._by_loglikelihood(
                context, case, task, selected, backend, progress
            )
        else:
            predictions, inputs, scores = self._by_classifier(
                case, task, selected, backend, progress
            )
        result.eval_seconds = time.perf_counter() - started
        finish_progress(progress)

        gold = [example.gold for example in selected]
        if loaded.split.labelled:
            result.n_scored = sum(1 for label in gold if label is not None)
            result.n_skipped = len(selected) - result.n_scored
            if result.n_scored == 0:
                raise HarnessError(
                    f"case {case.id}: no selected row of {loaded.path} has a gold label"
                )
            result.metrics = {
                "accuracy": accuracy(gold, predictions),
                "macro_f1": macro_f1(gold, predictions, task.label_ids),
            }
            result.per_example = classification_per_example(
                [example.id for example in selected], gold, predictions, task.label_ids
            )

        records = [
            {
                "id": example.id,
                "line": example.line,
                "input_sha256": input_digest(text),
                "prediction": prediction,
                "gold": example.gold,
                "correct": None if example.gold is None else prediction == example.gold,
                "scores": [round(float(value), 6) for value in values],
            }
            for example, prediction, text, values in zip(selected, predictions, inputs, scores)
        ]
        result.predictions_file = context.write_predictions(case, records)
        if not loaded.split.labelled:
            result.submission_file = self.write_submission(context, case, task, loaded, predictions)
        result.check_thresholds()
        return result

    def load(self, context: RunContext, task: ClassificationTask, split: str) -> LoadedSplit:
        path = context.locate(task.directory, task.split(split).filename)
        return load_split(task, split, path)

    def _by_loglikelihood(self, context, case, task, selected, backend, progress):
        template = case.prompt or task.prompt
        words = verbalizers(task, case.verbalizers)
        words_by_label = dict(zip(task.label_ids, words))

        prefix = ""
        if case.shots:
            pool_split = case.fewshot_split or task.fewshot_split
            pool = self.load(context, task, pool_split).examples
            # Two splits may read one file (clue-diagnostics), so compare files, not names.
            if task.split(pool_split).filename == task.split(case.split).filename:
                chosen = {example.index for example in selected}
                pool = [example for example in pool if example.index not in chosen]
            try:
                shots = select_shots(pool, case.shots, case.seed)
            except ValueError as error:
                raise HarnessError(f"case {case.id}: {error} ('{pool_split}')") from None
            prefix = fewshot_prefix(template, words_by_label, shots)

        prompts = [prefix + fill(template, example.fields) for example in selected]
        outputs = backend.loglikelihood(
            [ChoiceRequest(prompt, tuple(words)) for prompt in prompts], progress
        )

        predictions = []
        scores = []
        for output in outputs:
            values = normalised_scores(case, output, words)
            predictions.append(task.label_ids[argmax(values)])
            scores.append(values)
        return predictions, prompts, scores

    def _by_classifier(self, case, task, selected, backend, progress):
        head = backend.head_labels
        if head is None:
            raise BackendError(f"case {case.id}: model '{case.model}' exposes no classifier labels")
        head_ids = map_head_labels(task, head, case.model)
        texts = [task.classifier_text(example.fields) for example in selected]
        logits = backend.classify(texts, progress)
        predictions = [head_ids[argmax(row)] for row in logits]
        inputs = [first if second is None else f"{first}\n{second}" for first, second in texts]
        return predictions, inputs, logits

    def write_submission(self, context, case, task, loaded, predictions) -> str:
        """Write `{"id": ..., "label": ...}` lines in test-file order, one per test row."""
        if len(predictions) != len(loaded.examples):
            raise HarnessError(
                f"case {case.id}: {len(predictions)} predictions for {len(loaded.examples)} test rows"
            )
        lines = [
            dumps_line({"id": example.id, "label": label})
            for example, label in zip(loaded.examples, predictions)
        ]
        return context.write_submission(
            case, task.benchmark, loaded.split.submission, "\n".join(lines) + "\n"
        )
