"""The outcome of one case, as the plugin, the reports and the JUnit file see it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CaseResult:
    """Scores, counts and provenance of one evaluated case.

    `n_scored` counts rows with a gold label; `n_skipped` counts labelled rows without one
    (NLI "-" rows), which are left out of every metric. `n_cached` counts the backend
    requests answered from the prediction cache: one per example for classification, one
    per distinct text and role for similarity. `checks` lists per-item asserts
    (similarity pair bounds), each a dict with `name`, `value`, `bound` (text) and `passed`.
    `per_example` holds the per-example values that intervals and paired tests resample
    (harness.metrics.per_example); `gates` holds one outcome per checked metric and gate
    (harness.gates); `repeats` summarises the reruns of a case that samples its outputs.
    """

    case_id: str
    task: str
    benchmark: str
    split: str
    model: str
    method: str
    tier: str
    shots: int
    seed: int
    main_metric: str
    metrics: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    n_rows: int = 0
    n_selected: int = 0
    n_scored: int = 0
    n_skipped: int = 0
    data_file: str = ""
    data_sha256: str = ""
    model_identity: dict[str, Any] = field(default_factory=dict)
    submission_file: str | None = None
    predictions_file: str | None = None
    load_seconds: float = 0.0
    eval_seconds: float = 0.0
    error: str | None = None
    spec_path: str = ""
    spec_index: int = 0
    checks: list[dict[str, Any]] = field(default_factory=list)
    n_cached: int = 0
    per_example: dict[str, Any] | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    baseline_file: str | None = None
    repeats: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not self.failures

    @property
    def score(self) -> float | None:
        return self.metrics.get(self.main_metric)

    def check_thresholds(self) -> None:
        """Record a failure for every metric below its threshold."""
        self.failures = []
        for metric, minimum in self.thresholds.items():
            value = self.metrics.get(metric)
            if value is None or not math.isfinite(value):
                self.failures.append(f"{metric} is undefined, so threshold {minimum} cannot be met")
            elif value < minimum:
                self.failures.append(f"{metric} {value:.4f} < threshold {minimum:.4f}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["score"] = self.score
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)
