"""Case configuration and the spec checker that evaluators use to validate their own keys.

Spec loading (harness.spec) validates what every case shares; each task family's evaluator
validates the keys only it understands, with the same `SpecChecker`, so every mistake still
names the file, the line and the key path.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SpecError

# \Z rather than $, because $ also matches before a trailing newline.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+\Z")
TIERS = ("smoke", "full")
NORMALIZATIONS = ("none", "tokens", "chars")
DEFAULT_SEED = 1234
DEFAULT_SMOKE_SIZE = 200
GATE_KINDS = ("min", "lower_bound", "no_regression")


@dataclass(frozen=True)
class GateConfig:
    """A statistical gate on one metric of a case (see harness.gates).

    `threshold` applies to `lower_bound`; `min_effect` (in the metric's units) and `alpha`
    apply to `no_regression`; `confidence` sets the interval both report.
    """

    kind: str
    metric: str
    threshold: float | None = None
    confidence: float = 0.95
    min_effect: float = 0.0
    alpha: float = 0.05
    resamples: int = 2000


@dataclass(frozen=True)
class CaseConfig:
    """One case of a spec: a task split scored by one model, with its thresholds.

    `shots` to `length_normalization` configure prompting for causal LMs; `options` holds
    the keys that only one task family understands (see that family's evaluator). `gates`
    are the `lower_bound` and `no_regression` gates; `min` gates are in `thresholds`.
    """

    id: str
    task: str
    split: str
    model: str
    method: str
    spec_path: str
    spec_line: int | None = None
    spec_index: int = 0
    shots: int = 0
    seed: int = DEFAULT_SEED
    fewshot_split: str | None = None
    tier: str = "smoke"
    limit: int | None = None
    smoke_size: int = DEFAULT_SMOKE_SIZE
    thresholds: dict[str, float] = field(default_factory=dict)
    prompt: str | None = None
    verbalizers: dict[str, str] = field(default_factory=dict)
    length_normalization: str = "none"
    marks: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    gates: tuple[GateConfig, ...] = ()

    @property
    def labelled(self) -> bool:
        """Tell whether the case's split has public gold answers."""
        from harness.tasks import get_task

        task = get_task(self.task)
        return not self.split or task.split(self.split).labelled


def path_text(path: tuple) -> str:
    """Render a key path such as ("cases", 2, "thresholds") as cases[2].thresholds."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class SpecChecker:
    """Builds SpecErrors that carry the file and line of a key path."""

    def __init__(self, path: Path, lines: dict[tuple, int]) -> None:
        self.path = path
        self.lines = lines

    def fail(self, key: tuple, problem: str, hint: str | None = None) -> SpecError:
        line = None
        for depth in range(len(key), -1, -1):
            if key[:depth] in self.lines:
                line = self.lines[key[:depth]]
                break
        return SpecError(self.path, path_text(key), problem, line=line, hint=hint)

    def mapping(self, value: Any, key: tuple, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, found {type(value).__name__}")
        for name in value:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1)
                hint = (
                    f"Did you mean '{close[0]}'?"
                    if close
                    else f"Allowed keys: {', '.join(allowed)}"
                )
                raise self.fail(key + (name,), "unknown key", hint)
        return value

    def integer(self, value: Any, key: tuple, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, found {value!r}")
        return value

    def number(
        self, value: Any, key: tuple, minimum: float | None = None, maximum: float | None = None
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, found {value!r}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self.fail(key, f"expected a number in [{minimum}, {maximum}], found {value!r}")
        return float(value)

    def boolean(self, value: Any, key: tuple) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, found {value!r}")
        return value

    def choice(self, value: Any, key: tuple, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(key, f"invalid value {value!r}", f"Use one of: {', '.join(allowed)}")
        return value

    def text(self, value: Any, key: tuple) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, found {value!r}")
        return value

    def strings(self, value: Any, key: tuple) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise self.fail(key, f"expected a list of non-empty strings, found {value!r}")
        return value
