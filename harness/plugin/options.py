"""Command-line and ini options of the plugin, and the settings read from them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.backends.loading import default_cache_root


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("clue", "CLUE evaluation harness")
    group.addoption(
        "--clue-data",
        metavar="DIR",
        help="data root with the official CLUE layout (default: $CLUE_DATA_DIR, then the spec's data_root)",
    )
    group.addoption(
        "--clue-output",
        metavar="DIR",
        help="folder for reports, predictions and submission files (default: clue-results)",
    )
    group.addoption(
        "--clue-tier",
        choices=("smoke", "full"),
        help="smoke: labelled splits on a seeded stratified subset, test splits skipped; "
        "full: every case on its whole split (default: smoke)",
    )
    group.addoption(
        "--clue-progress-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between progress lines of a running case; 0 turns them off (default: 10)",
    )
    group.addoption(
        "--clue-threads",
        type=int,
        metavar="N",
        help="torch threads per process (default: CPU cores divided by xdist workers)",
    )
    group.addoption(
        "--clue-cache-dir",
        metavar="DIR",
        help="folder for converted GGUF models (default: $CLUE_HARNESS_CACHE or ~/.cache/clue-harness)",
    )
    parser.addini("clue_output", "default for --clue-output", default="clue-results")
    parser.addini("clue_tier", "default for --clue-tier", default="smoke")
    parser.addini("clue_progress_interval", "default for --clue-progress-interval", default="10")


@dataclass(frozen=True)
class Settings:
    """The plugin's options after defaults are applied; paths are absolute."""

    data_option: str | None
    output_dir: Path
    full_tier: bool
    progress_interval: float
    threads: int | None
    cache_root: Path
    worker_id: str | None
    worker_count: int


def read_settings(config: pytest.Config) -> Settings:
    invocation_dir = Path(config.invocation_params.dir)
    output = config.getoption("clue_output") or config.getini("clue_output")
    tier = config.getoption("clue_tier") or config.getini("clue_tier")
    if tier not in ("smoke", "full"):
        raise pytest.UsageError(f"clue_tier must be smoke or full, found {tier!r}")
    interval = config.getoption("clue_progress_interval")
    if interval is None:
        interval = float(config.getini("clue_progress_interval"))
    cache = config.getoption("clue_cache_dir")

    workerinput = getattr(config, "workerinput", None)
    worker_id = workerinput["workerid"] if workerinput else None
    worker_count = int(workerinput["workercount"]) if workerinput else 1

    return Settings(
        data_option=config.getoption("clue_data"),
        output_dir=(invocation_dir / output).resolve(),
        full_tier=tier == "full",
        progress_interval=max(0.0, interval),
        threads=config.getoption("clue_threads"),
        cache_root=Path(cache).expanduser().resolve() if cache else default_cache_root(),
        worker_id=worker_id,
        worker_count=worker_count or int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
    )
