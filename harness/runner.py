"""Evaluating one case: pick the evaluator of the task's family, run it, then check its gates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.backends.base import Backend, ModelConfig
from harness.cache import CachedBackend, PredictionCache
from harness.cases import CaseConfig
from harness.evaluators import RunContext, evaluator_for
from harness.evaluators.base import ProgressFactory
from harness.evaluators.classification import map_head_labels, select_examples
from harness.gates import apply_gates
from harness.provenance import case_provenance
from harness.repeats import combine_repeats, is_stochastic, repeat_case
from harness.results import CaseResult
from harness.tasks import get_task
from harness.tasks.base import ClassificationTask
from harness.tasks.examples import LoadedSplit

__all__ = ["CaseRunner", "map_head_labels", "select_examples"]


class CaseRunner:
    """Run cases against loaded backends and write their files under `output_dir`.

    `baseline_file` is the baseline that `no_regression` gates compare with; `recording`
    (--update-baseline) lets a case without a baseline entry pass. `repeats` reruns
    stochastic cases (harness.repeats).
    """

    def __init__(
        self,
        data_root: Path | None,
        output_dir: Path,
        *,
        full_tier: bool = False,
        progress: ProgressFactory | None = None,
        cache: PredictionCache | None = None,
        baseline_file: Path | None = None,
        recording: bool = False,
        repeats: int = 1,
    ) -> None:
        self.context = RunContext(data_root, output_dir, full_tier, progress)
        self.cache = cache
        self.baseline_file = baseline_file
        self.recording = recording
        self.repeats = repeats

    def load(self, task: ClassificationTask, split: str) -> LoadedSplit:
        """Load a classification split the way a case would (used by benchmarks)."""
        return evaluator_for(task).load(self.context, task, split)

    def run_model(
        self, case: CaseConfig, model: ModelConfig, load: Callable[[], Backend]
    ) -> CaseResult:
        """Run a case on the backend that `load` returns, through the prediction cache when
        one is set, so that a fully cached case never loads the model."""
        if self.cache is None:
            return self.run(case, load())
        backend = CachedBackend(
            self.cache, model, load, case, get_task(case.task), lambda: self.context.data_files
        )
        result = self.run(case, backend)
        result.n_cached = backend.n_cached
        # The evaluator read these before its first request, perhaps before the model loaded.
        result.model_identity = backend.identity
        result.load_seconds = backend.load_seconds
        return result

    def run(self, case: CaseConfig, backend: Backend) -> CaseResult:
        if self.repeats > 1 and is_stochastic(case):
            cases = [repeat_case(case, repeat) for repeat in range(self.repeats)]
            results = [self._run_once(repeated, backend, case.id) for repeated in cases]
            seeds = [repeated.options["sampling"]["seed"] for repeated in cases]
            return combine_repeats(results, seeds)
        return self._run_once(case, backend, case.id)

    def _run_once(self, case: CaseConfig, backend: Backend, gate_id: str) -> CaseResult:
        task = get_task(case.task)
        backend.case_label = case.id
        self.context.data_files = []
        if isinstance(backend, CachedBackend):
            # A repeat of a stochastic case has its own sampling seed, so its own cache key.
            backend.start_case(case)
        result = evaluator_for(task).run(self.context, case, task, backend)
        result.provenance = case_provenance(case, task, backend)
        result.baseline_file = None if self.baseline_file is None else str(self.baseline_file)
        apply_gates(
            result, case.gates, self.baseline_file, case_id=gate_id, recording=self.recording
        )
        return result
