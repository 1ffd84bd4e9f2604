"""Evaluating one case: load the split, pick the examples, ask the model, score, write files."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.backends.base import Backend, ChoiceRequest, NoProgress, Progress
from harness.data.layout import locate_file
from harness.data.subset import stratified_subset
from harness.errors import BackendError, HarnessError
from harness.metrics.classification import accuracy, macro_f1
from harness.outputs import dumps_line, inside, write_atomic, write_jsonl
from harness.results import CaseResult
from harness.spec import CaseConfig
from harness.tasks import get_task
from harness.tasks.base import ClassificationTask, Example
from harness.tasks.examples import LoadedSplit, load_split
from harness.tasks.prompting import fewshot_prefix, fill, select_shots, verbalizers

logger = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Progress]


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


def input_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _normalise(
    scores: Sequence[float], tokens: Sequence[int], words: Sequence[str], mode: str
) -> list[float]:
    if mode == "tokens":
        return [score / count for score, count in zip(scores, tokens)]
    if mode == "chars":
        return [score / len(word) for score, word in zip(scores, words)]
    return list(scores)


class CaseRunner:
    """Run cases against loaded backends and write their files under `output_dir`."""

    def __init__(
        self,
        data_root: Path | None,
        output_dir: Path,
        *,
        full_tier: bool = False,
        progress: ProgressFactory | None = None,
    ) -> None:
        self.data_root = data_root
        self.output_dir = output_dir
        self.full_tier = full_tier
        self.progress = progress or (lambda case_id, total: NoProgress())

    def load(self, task: ClassificationTask, split: str) -> LoadedSplit:
        path = locate_file(self.data_root, task.directory, task.split(split).filename)
        return load_split(task, split, path)

    def run(self, case: CaseConfig, backend: Backend) -> CaseResult:
        task = get_task(case.task)
        loaded = self.load(task, case.split)
        selected = select_examples(case, loaded, self.full_tier)
        result = CaseResult(
            case_id=case.id,
            task=task.name,
            benchmark=task.benchmark,
            split=case.split,
            model=case.model,
            method=case.method,
            tier="full" if self.full_tier or not loaded.split.labelled else case.tier,
            shots=case.shots,
            seed=case.seed,
            main_metric=task.main_metric,
            thresholds=dict(case.thresholds),
            n_rows=len(loaded.examples),
            n_selected=len(selected),
            data_file=str(loaded.path),
            data_sha256=loaded.sha256,
            model_identity=backend.identity,
            load_seconds=backend.load_seconds,
            spec_path=case.spec_path,
            spec_index=case.spec_index,
        )

        started = time.perf_counter()
        progress = self.progress(case.id, len(selected))
        if case.method == "loglikelihood":
            predictions, inputs, scores = self._predict_loglikelihood(
                case, task, selected, backend, progress
            )
        else:
            predictions, inputs, scores = self._predict_classifier(
                case, task, selected, backend, progress
            )
        result.eval_seconds = time.perf_counter() - started
        close = getattr(progress, "close", None)
        if close is not None:
            close()

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
        result.predictions_file = self._write_predictions(
            case, selected, predictions, inputs, scores
        )
        if not loaded.split.labelled:
            result.submission_file = self._write_submission(case, task, loaded, predictions)
        result.check_thresholds()
        return result

    def _predict_loglikelihood(self, case, task, selected, backend, progress):
        template = case.prompt or task.prompt
        words = verbalizers(task, case.verbalizers)
        words_by_label = dict(zip(task.label_ids, words))

        prefix = ""
        if case.shots:
            pool_split = case.fewshot_split or task.fewshot_split
            pool = self.load(task, pool_split).examples
            if pool_split == case.split:
                chosen = {example.index for example in selected}
                pool = [example for example in pool if example.index not in chosen]
            try:
                shots = select_shots(pool, case.shots, case.seed)
            except ValueError as error:
                raise HarnessError(f"case {case.id}: {error} ('{pool_split}')") from None
            prefix = fewshot_prefix(template, words_by_label, shots)

        prompts = [prefix + fill(template, example.fields) for example in selected]
        requests = [ChoiceRequest(prompt, tuple(words)) for prompt in prompts]
        outputs = backend.loglikelihood(requests, progress)

        predictions = []
        scores = []
        for output in outputs:
            values = _normalise(
                output.loglikelihoods, output.token_counts, words, case.length_normalization
            )
            if not all(math.isfinite(value) for value in values):
                raise BackendError(
                    f"case {case.id}: the model returned a non-finite log-likelihood"
                )
            best = max(range(len(values)), key=lambda index: (values[index], -index))
            predictions.append(task.label_ids[best])
            scores.append(values)
        return predictions, prompts, scores

    def _predict_classifier(self, case, task, selected, backend, progress):
        head = backend.head_labels
        if head is None:
            raise BackendError(f"case {case.id}: model '{case.model}' exposes no classifier labels")
        head_ids = map_head_labels(task, head, case.model)
        texts = [task.classifier_text(example.fields) for example in selected]
        logits = backend.classify(texts, progress)

        predictions = []
        for row in logits:
            best = max(range(len(row)), key=lambda index: (row[index], -index))
            predictions.append(head_ids[best])
        inputs = [first if second is None else f"{first}\n{second}" for first, second in texts]
        return predictions, inputs, logits

    def _write_predictions(self, case, selected, predictions, inputs, scores) -> str:
        path = inside(self.output_dir, "predictions", f"{case.id}.jsonl")
        records = []
        for example, prediction, text, values in zip(selected, predictions, inputs, scores):
            records.append(
                {
                    "id": example.id,
                    "line": example.line,
                    "input_sha256": input_digest(text),
                    "prediction": prediction,
                    "gold": example.gold,
                    "correct": None if example.gold is None else prediction == example.gold,
                    "scores": [round(float(value), 6) for value in values],
                }
            )
        write_jsonl(path, records)
        return str(path)

    def _write_submission(self, case, task, loaded, predictions) -> str:
        name = loaded.split.submission
        folder = f"{task.benchmark}-{case.model}"
        path = inside(self.output_dir, "submission", folder, name)
        lines = [
            dumps_line({"id": example.id, "label": label})
            for example, label in zip(loaded.examples, predictions)
        ]
        if len(lines) != len(loaded.examples):
            raise HarnessError(
                f"case {case.id}: {len(lines)} predictions for {len(loaded.examples)} test rows"
            )
        write_atomic(path, "\n".join(lines) + "\n")
        return str(path)
