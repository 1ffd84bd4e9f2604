"""Evaluating one case: pick the evaluator of the task's family and run it."""

from __future__ import annotations

from pathlib import Path

from harness.backends.base import Backend
from harness.cases import CaseConfig
from harness.evaluators import RunContext, evaluator_for
from harness.evaluators.base import ProgressFactory
from harness.evaluators.classification import map_head_labels, select_examples
from harness.results import CaseResult
from harness.tasks import get_task
from harness.tasks.base import ClassificationTask
from harness.tasks.examples import LoadedSplit

__all__ = ["CaseRunner", "map_head_labels", "select_examples"]


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
        self.context = RunContext(data_root, output_dir, full_tier, progress)

    def load(self, task: ClassificationTask, split: str) -> LoadedSplit:
        """Load a classification split the way a case would (used by benchmarks)."""
        return evaluator_for(task).load(self.context, task, split)

    def run(self, case: CaseConfig, backend: Backend) -> CaseResult:
        task = get_task(case.task)
        backend.case_label = case.id
        return evaluator_for(task).run(self.context, case, task, backend)
