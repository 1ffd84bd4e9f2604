"""What every task family's evaluator shares: the run context, the protocol and helpers.

An evaluator knows one family of tasks (classification, span extraction, multiple choice,
NER, similarity): which backend methods can score it, which extra spec keys it accepts, and
how to turn a case into a CaseResult. The runner picks the evaluator by `task.family`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.backends.base import Backend, NoProgress, Progress, Sampling
from harness.cases import CaseConfig, SpecChecker
from harness.data.layout import locate_file
from harness.metrics.per_example import per_example_data
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
    # Every data file the running case has read, for the prediction cache's key.
    data_files: list[Path] = field(default_factory=list)

    def locate(self, directory: str, filename: str) -> Path:
        path = locate_file(self.data_root, directory, filename)
        self.data_files.append(path)
        return path

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


def correctness_per_example(
    ids: Sequence[Any], gold: Sequence[Any], predictions: Sequence[Any]
) -> dict[str, Any]:
    """Return per-example right/wrong outcomes for accuracy; rows without gold are left out."""
    scored = [
        (example_id, expected == predicted)
        for example_id, expected, predicted in zip(ids, gold, predictions)
        if expected is not None
    ]
    return per_example_data(
        [example_id for example_id, _ in scored],
        {"correct": [correct for _, correct in scored]},
        {"accuracy": {"statistic": "proportion", "columns": ["correct"]}},
    )


SAMPLING_KEYS = ("temperature", "top_p", "seed")


def validate_sampling(check: SpecChecker, key: tuple, value: Any, seed: int) -> dict[str, Any]:
    """Validate a case's `sampling: {temperature, top_p, seed}`; `seed` defaults to the
    case's seed. A case with sampling is stochastic, so --clue-repeat reruns it."""
    check.mapping(value, key, SAMPLING_KEYS)
    if "temperature" not in value:
        raise check.fail(key, "missing key 'temperature' (a number > 0)")
    temperature = check.number(value["temperature"], key + ("temperature",))
    if temperature <= 0:
        raise check.fail(
            key + ("temperature",),
            f"expected a number > 0, found {temperature!r}",
            "Remove `sampling` to decode greedily",
        )
    top_p = check.number(value.get("top_p", 1.0), key + ("top_p",), 0.0, 1.0)
    if top_p == 0:
        raise check.fail(key + ("top_p",), "expected a number in (0, 1], found 0")
    return {
        "temperature": temperature,
        "top_p": top_p,
        "seed": check.integer(value.get("seed", seed), key + ("seed",)),
    }


def sampling_of(case: CaseConfig) -> Sampling | None:
    """Return the case's sampling settings, or None for greedy decoding."""
    settings = case.options.get("sampling")
    return None if settings is None else Sampling(**settings)


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
