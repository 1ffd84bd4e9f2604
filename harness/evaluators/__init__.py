"""Task-family evaluators, chosen by a task's `family`."""

from __future__ import annotations

from typing import Any

from harness.evaluators.base import Evaluator, RunContext
from harness.evaluators.classification import ClassificationEvaluator

EVALUATORS: dict[str, Evaluator] = {
    evaluator.family: evaluator for evaluator in (ClassificationEvaluator(),)
}


def evaluator_for(task: Any) -> Evaluator:
    return EVALUATORS[task.family]


__all__ = ["EVALUATORS", "Evaluator", "RunContext", "evaluator_for"]
