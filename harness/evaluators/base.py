"""What every task family's evaluator shares: the run context, the protocol and helpers.

An evaluator knows one family of tasks (classification, span extraction, multiple choice,
NER, similarity): which backend methods can score it, which extra spec keys it accepts, and
how to turn a case into a CaseResult. The runner picks the evaluator by `task.family`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.backends.base import Backend, NoProgress, Progress
from harness.cases import CaseConfig, SpecChecker
from harness.data.layout import locate_file
from harness.outputs import inside, write_atomic, write_jsonl
from harness.results import CaseResult

ProgressFactory = Callable[[str, int], Progress]


def input_digest(text: str) -> str:
    """Return a short sha256 of an example's input, for debugging a regression."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class RunContext:
    """Where a case reads data and writes files, and how it reports progress."""

    data_root: Path | None
    output_dir: Path
    full_tier: bool = False
    progress_factory: ProgressFactory | None = None

    def locate(self, directory: str, filename: str) -> Path:
        return locate_file(self.data_root, directory, filename)

    def progress(self, case: CaseConfig, total: int) -> Progress:
        if self.progress_factory is None:
            return NoProgress()
        return self.progress_factory(case.id, total)

    def subset_size(self, case: CaseConfig) -> int | None:
        """Return how many rows a labelled case scores, or None for the whole split."""
        if case.limit is not None:
            return case.limit
        if case.tier == "smoke" and not self.full_tier:
            return case.smoke_size
        return None

    def write_predictions(self, case: CaseConfig, records: Iterable[dict[str, Any]]) -> str:
        path = inside(self.output_dir, "predictions", f"{case.id}.jsonl")
        write_jsonl(path, records)
        return str(path)

    def write_submission(self, case: CaseConfig, benchmark: str, filename: str, text: str) -> str:
        """Write one official submission file under submission/<benchmark>-<model>/."""
        path = inside(self.output_dir, "submission", f"{benchmark}-{case.model}", filename)
        write_atomic(path, text)
        return str(path)


def finish_progress(progress: Progress) -> None:
    close = getattr(progress, "close", None)
    if close is not None:
        close()


class Evaluator:
    """Base class of the task-family evaluators."""

    family: ClassVar[str] = ""
    # Backend kind -> scoring methods it offers for this family; the first is the default.
    methods: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Spec keys this family accepts on top of the keys every case has.
    case_keys: ClassVar[tuple[str, ...]] = ()

    def split_labelled(self, task: Any, split: str) -> bool:
        """Tell whether a split's gold answers are public (thresholds allowed)."""
        return task.split(split).labelled

    def validate_case(
        self, check: SpecChecker, key: tuple, raw: dict, merged: dict, task: Any, method: str
    ) -> dict[str, Any]:
        """Validate this family's keys of one case and return CaseConfig field values."""
        return {}

    def id_parts(self, raw: dict, values: dict[str, Any]) -> tuple[str, ...]:
        """Return the parts a default case id puts after the task name, such as the data
        set a similarity case reads; `values` is what `validate_case` returned."""
        return ()

    def run(self, context: RunContext, case: CaseConfig, task: Any, backend: Backend) -> CaseResult:
        raise NotImplementedError


def new_result(case: CaseConfig, task: Any, backend: Backend, *, full: bool) -> CaseResult:
    """Start a CaseResult with the case's identity and provenance filled in."""
    return CaseResult(
        case_id=case.id,
        task=task.name,
        benchmark=task.benchmark,
        split=case.split,
        model=case.model,
        method=case.method,
        tier="full" if full else case.tier,
        shots=case.shots,
        seed=case.seed,
        main_metric=task.main_metric,
        thresholds=dict(case.thresholds),
        model_identity=backend.identity,
        load_seconds=backend.load_seconds,
        spec_path=case.spec_path,
        spec_index=case.spec_index,
    )
