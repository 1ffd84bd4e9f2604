"""CLUENER2020 cases: a token classifier's tags, or entities generated as JSON by a causal LM.

`tagger` takes the entity spans of `Backend.tag`. A span whose type is not a CLUENER type,
written as the id or the Chinese name, is an error, because the head does not fit the task. `generate` fills the task's prompt, asking for `{type: [entity, ...]}` as JSON,
decodes greedily (or samples, with `sampling: {temperature, top_p, seed}`) up to
`max_new_tokens` (default 256) and stops at a blank line. The output is parsed leniently (see harness.evaluators.ner_output); every line whose output
cannot be read counts in the `parse_failures` metric and predicts no entities. Generated
entities get the offsets of every occurrence in the text, for span micro-F1 and for the
submission.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from typing import Any

from harness.backends.base import Backend, GenerationRequest
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
from harness.evaluators.ner_output import locate, parse_entities, type_aliases
from harness.metrics.ner import official_scores, span_micro_f1
from harness.metrics.ner import spans as span_triples
from harness.metrics.per_example import per_example_data
from harness.outputs import dumps_line
from harness.results import CaseResult
from harness.tasks.cluener import Entities, LoadedNer, NerRecord, NerTask, load_ner
from harness.tasks.prompting import SHOT_SEPARATOR, fill

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 256
STOP = ("\n\n",)

# A predicted label: type -> entity string -> [[start, end], ...], as the submission writes it.
Predicted = dict[str, dict[str, list[list[int]]]]


def gold_answer(gold: Entities) -> str:
    """Render gold entities as the JSON a few-shot example answers with."""
    answer = {kind: list(by_entity) for kind, by_entity in gold.items() if by_entity}
    return json.dumps(answer, ensure_ascii=False)


class NerEvaluator(Evaluator):
    family = "ner"
    methods = {
        "hf-token-classifier": ("tagger",),
        "hf-causal": ("generate",),
        "openai": ("generate",),
    }
    case_keys = ("shots", "fewshot_split", "prompt", "max_new_tokens", "sampling")

    def validate_case(self, check, key, raw, merged, task, method):
        values = validate_prompting(
            check, key, raw, merged, task, method, task.prompt_variables_names()
        )
        values.pop("length_normalization")
        tokens = raw.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        check.integer(tokens, key + ("max_new_tokens",), minimum=1)
        if "max_new_tokens" in raw and method != "generate":
            raise check.fail(key + ("max_new_tokens",), "applies only to method 'generate'")
        values["options"] = {"max_new_tokens": tokens}
        if "sampling" in raw:
            if method != "generate":
                raise check.fail(key + ("sampling",), "applies only to method 'generate'")
            seed = merged.get("seed", DEFAULT_SEED)
            values["options"]["sampling"] = validate_sampling(
                check, key + ("sampling",), raw["sampling"], seed
            )
        return values

    def load(self, context: RunContext, task: NerTask, split_name: str) -> LoadedNer:
        path = context.locate(task.directory, task.split(split_name).filename)
        return load_ner(task, split_name, path)

    def run(
        self, context: RunContext, case: CaseConfig, task: NerTask, backend: Backend
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
        result.data_sha256 = loaded.sha256

        started = time.perf_counter()
        progress = context.progress(case, len(selected))
        if case.method == "generate":
            predicted, inputs, outputs, failures = self._by_generation(
                context, case, task, selected, backend, progress
            )
        else:
            predicted, inputs = self._by_tagger(task, selected, backend, progress)
            outputs = [None] * len(selected)
            failures = [None] * len(selected)
        result.eval_seconds = time.perf_counter() - started
        finish_progress(progress)

        failure_count = sum(1 for failure in failures if failure is not None)
        if failure_count:
            reasons = Counter(failure.split(":")[0] for failure in failures if failure)
            logger.warning(
                "case %s: %d of %d outputs could not be parsed (%s)",
                case.id,
                failure_count,
                len(selected),
                ", ".join(f"{reason}: {count}" for reason, count in reasons.most_common()),
            )
        if labelled:
            result.n_scored = len(selected)
            result.metrics = self._metrics(task, selected, predicted)
            result.per_example = ner_per_example(task, selected, predicted)
        if case.method == "generate":
            result.metrics["parse_failures"] = float(failure_count)

        records = [
            {
                "id": record.id,
                "line": record.line,
                "input_sha256": input_digest(text),
                "prediction": label,
                "gold": None if record.gold is None else _plain(record.gold),
                "output": output,
                "parse_failure": failure,
                "correct": None if record.gold is None else _same_entities(record.gold, label),
            }
            for record, label, text, output, failure in zip(
                selected, predicted, inputs, outputs, failures
            )
        ]
        result.predictions_file = context.write_predictions(case, records)
        if not labelled:
            result.submission_file = self.write_submission(context, case, task, loaded, predicted)
        result.check_thresholds()
        return result

    @staticmethod
    def _metrics(task: NerTask, selected: list[NerRecord], predicted: list[Predicted]) -> dict:
        gold = [record.gold for record in selected]
        scores = official_scores(gold, predicted, task.label_ids)
        metrics = {"macro_f1": scores.macro_f1, "span_micro_f1": span_micro_f1(gold, predicted)}
        for kind, score in scores.per_type.items():
            metrics[f"f1_{kind}"] = score.f1
        if scores.absent_types:
            logger.warning(
                "%s: types without any gold or predicted entity are left out of the macro mean: %s",
                task.name,
                ", ".join(scores.absent_types),
            )
        return metrics

    def _by_tagger(self, task, selected, backend, progress):
        texts = [record.text for record in selected]
        tagged = backend.tag(texts, progress)
        aliases = type_aliases({label.id: label.verbalizer for label in task.labels})

        predicted = []
        for text, spans in zip(texts, tagged):
            label: Predicted = {}
            for span in spans:
                kind = aliases.get(span.type) or aliases.get(span.type.lower())
                if kind is None:
                    raise BackendError(
                        f"model '{backend.config.name}' tagged an entity of type {span.type!r}, "
                        f"which is not a CLUENER type ({', '.join(task.label_ids)}); fix the "
                        "model's id2label"
                    )
                if not 0 <= span.start <= span.end < len(text):
                    raise BackendError(
                        f"model '{backend.config.name}' returned offsets [{span.start}, "
                        f"{span.end}] outside a text of {len(text)} characters"
                    )
                entity = text[span.start : span.end + 1]
                offsets = label.setdefault(kind, {}).setdefault(entity, [])
                if [span.start, span.end] not in offsets:
                    offsets.append([span.start, span.end])
            predicted.append(label)
        return predicted, texts

    def _fewshot_prefix(self, context, case, task, template, selected) -> str:
        if not case.shots:
            return ""
        pool_split = case.fewshot_split or task.fewshot_split
        pool = self.load(context, task, pool_split).records
        if task.split(pool_split).filename == task.split(case.split).filename:
            chosen = {record.index for record in selected}
            pool = [record for record in pool if record.index not in chosen]
        if case.shots > len(pool):
            raise HarnessError(
                f"case {case.id}: {case.shots} few-shot examples requested but "
                f"'{pool_split}' has {len(pool)}"
            )
        shots = random.Random(case.seed).sample(pool, case.shots)
        rendered = [fill(template, shot.fields) + gold_answer(shot.gold) for shot in shots]
        return SHOT_SEPARATOR.join(rendered) + SHOT_SEPARATOR

    def _by_generation(self, context, case, task, selected, backend, progress):
        template = case.prompt or task.prompt
        prefix = self._fewshot_prefix(context, case, task, template, selected)
        tokens = case.options.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        prompts = [prefix + fill(template, record.fields) for record in selected]
        outputs = backend.generate(
            [
                GenerationRequest(
                    prompt, max_new_tokens=tokens, stop=STOP, sampling=sampling_of(case)
                )
                for prompt in prompts
            ],
            progress,
        )
        aliases = type_aliases({label.id: label.verbalizer for label in task.labels})

        predicted, failures = [], []
        for record, output in zip(selected, outputs):
            parsed = parse_entities(output, record.text, aliases)
            label = {
                kind: {entity: locate(record.text, entity) for entity in entities}
                for kind, entities in parsed.entities.items()
            }
            predicted.append(label)
            failures.append(parsed.failure)
        return predicted, prompts, list(outputs), failures

    def write_submission(
        self,
        context: RunContext,
        case: CaseConfig,
        task: NerTask,
        loaded: LoadedNer,
        predicted: list[Predicted],
    ) -> str:
        """Write `{"id": ..., "label": {type: {entity: [[start, end], ...]}}}` per test line."""
        if len(predicted) != len(loaded.records):
            raise HarnessError(
                f"case {case.id}: {len(predicted)} predictions for {len(loaded.records)} test lines"
            )
        lines = [
            dumps_line({"id": record.id, "label": label})
            for record, label in zip(loaded.records, predicted)
        ]
        return context.write_submission(
            case, task.benchmark, loaded.split.submission, "\n".join(lines) + "\n"
        )


def _same_entities(gold: Entities, predicted: Predicted) -> bool:
    """Tell whether a line's predicted entity strings equal its gold ones, type by type."""
    kinds = set(gold) | set(predicted)
    return all(set(gold.get(kind, {})) == set(predicted.get(kind, {})) for kind in kinds)


def ner_per_example(
    task: NerTask, selected: list[NerRecord], predicted: list[Predicted]
) -> dict[str, Any]:
    """Return per-line counts that the official macro F1 and span micro-F1 are summed from.

    Column `counts` contains, for each type of `task.label_ids` in order, the line's true
    positives, false positives and false negatives of entity strings. Column `span_counts`
    contains the same three counts of (type, start, end) spans.
    """
    types = task.label_ids
    counts, span_counts = [], []
    for record, label in zip(selected, predicted):
        row = []
        for kind in types:
            gold_set = set(record.gold.get(kind, {}))
            predicted_set = set(label.get(kind, {}))
            row += [
                len(predicted_set & gold_set),
                len(predicted_set - gold_set),
                len(gold_set - predicted_set),
            ]
        counts.append(row)
        gold_spans = span_triples(record.gold)
        predicted_spans = span_triples(label)
        span_counts.append(
            [
                len(predicted_spans & gold_spans),
                len(predicted_spans - gold_spans),
                len(gold_spans - predicted_spans),
            ]
        )

    metrics: dict[str, dict[str, Any]] = {
        "macro_f1": {"statistic": "ner_macro_f1", "columns": ["counts"], "types": len(types)},
        "span_micro_f1": {"statistic": "span_micro_f1", "columns": ["span_counts"]},
    }
    for index, kind in enumerate(types):
        if f"f1_{kind}" in task.metrics:
            metrics[f"f1_{kind}"] = {
                "statistic": "ner_type_f1",
                "columns": ["counts"],
                "types": len(types),
                "type": index,
            }
    return per_example_data(
        [record.id for record in selected],
        {"counts": counts, "span_counts": span_counts},
        metrics,
    )


def _plain(entities: Entities) -> Predicted:
    """Return gold entities with offset lists, as the files and predictions write them."""
    return {
        kind: {entity: [list(pair) for pair in pairs] for entity, pairs in by_entity.items()}
        for kind, by_entity in entities.items()
    }
