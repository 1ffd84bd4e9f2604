"""Task-family evaluators, chosen by a task's `family`."""

from __future__ import annotations

from typing import Any

from harness.evaluators.base import Evaluator, RunContext
from harness.evaluators.c3 import MultipleChoiceEvaluator
from harness.evaluators.chid import ClozeEvaluator
from harness.evaluators.classification import ClassificationEvaluator
from harness.evaluators.ner import NerEvaluator
from harness.evaluators.similarity import SimilarityEvaluator
from harness.evaluators.span_extraction import SpanExtractionEvaluator

EVALUATORS: dict[str, Evaluator] = {
    evaluator.family: evaluator
    for evaluator in (
        ClassificationEvaluator(),
        ClozeEvaluator(),
        MultipleChoiceEvaluator(),
        NerEvaluator(),
        SpanExtractionEvaluator(),
        SimilarityEvaluator(),
    )
}


def evaluator_for(task: Any) -> Evaluator:
    return EVALUATORS[task.family]


__all__ = ["EVALUATORS", "Evaluator", "RunContext", "evaluator_for"]
