"""Command-line and ini options of the plugin, and the settings read from them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.backends.loading import default_cache_root
from harness.plugin.sharding import parse_shard

PREDICTION_CACHE_ENV = "CLUE_PREDICTION_CACHE"


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
    group.addoption(
        "--clue-group-models",
        action="store_true",
        help="under pytest-xdist's default load distribution, run all cases of one model on "
        "one worker, so each model is loaded once (workers keep the threads that "
        "--clue-threads or cores divided by workers gives them)",
    )
    group.addoption(
        "--clue-shard",
        type=parse_shard,
        metavar="I/N",
        help="run only shard I of N (counted from 1) of the CLUE cases: round-robin over "
        "the spec-ordered case list; merge the output folders with clue-harness merge",
    )
    group.addoption(
        "--clue-prediction-cache",
        metavar="DIR",
        help="folder of cached backend results, reused by reruns "
        "(default: $CLUE_PREDICTION_CACHE, then the predictions folder of --clue-cache-dir)",
    )
    group.addoption(
        "--clue-no-cache",
        action="store_true",
        help="neither read nor write the prediction cache",
    )
    group.addoption(
        "--clue-clear-cache",
        action="store_true",
        help="delete the prediction cache before the run starts",
    )
    group.addoption(
        "--clue-baseline",
        metavar="FILE",
        help="baseline file that no_regression gates compare with, for every spec "
        "(default: the spec's `baseline:` key)",
    )
    group.addoption(
        "--update-baseline",
        action="store_true",
        help="after the run, record its scores and per-example outcomes in the baseline file "
        "and print what changed; nothing is written while a case fails",
    )
    group.addoption(
        "--force-baseline",
        action="store_true",
        help="with --update-baseline, write the baseline even though cases failed",
    )
    group.addoption(
        "--clue-repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each case that samples its generations N times (sampling seed + 0..N-1) "
        "and report the spread of its scores and its pass rate (default: 1)",
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
    prediction_cache: Path | None = None
    # False under --clue-no-cache: the run neither reads nor writes the prediction cache.
    use_prediction_cache: bool = True
    clear_prediction_cache: bool = False
    baseline_option: Path | None = None
    update_baseline: bool = False
    force_baseline: bool = False
    repeat: int = 1


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
    cache_root = Path(cache).expanduser().resolve() if cache else default_cache_root()
    predictions = config.getoption("clue_prediction_cache") or os.environ.get(PREDICTION_CACHE_ENV)
    prediction_cache = (
        (invocation_dir / Path(predictions).expanduser()).resolve()
        if predictions
        else cache_root / "predictions"
    )

    workerinput = getattr(config, "workerinput", None)
    worker_id = workerinput["workerid"] if workerinput else None
    worker_count = int(workerinput["workercount"]) if workerinput else 1

    return Settings(
        data_option=config.getoption("clue_data"),
        output_dir=(invocation_dir / output).resolve(),
        full_tier=tier == "full",
        progress_interval=max(0.0, interval),
        threads=config.getoption("clue_threads"),
        cache_root=cache_root,
        worker_id=worker_id,
        worker_count=worker_count or int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
        prediction_cache=prediction_cache,
        use_prediction_cache=not config.getoption("clue_no_cache"),
        clear_prediction_cache=config.getoption("clue_clear_cache"),
        **gating_settings(config, invocation_dir),
    )


def gating_settings(config: pytest.Config, invocation_dir: Path) -> dict:
    """Return the Settings fields of the baseline and repeat options."""
    baseline = config.getoption("clue_baseline")
    repeat = config.getoption("clue_repeat")
    if repeat is None or repeat < 1:
        raise pytest.UsageError(f"--clue-repeat must be at least 1, found {repeat}")
    if config.getoption("force_baseline") and not config.getoption("update_baseline"):
        raise pytest.UsageError("--force-baseline applies only with --update-baseline")
    return {
        "baseline_option": (invocation_dir / Path(baseline).expanduser()).resolve()
        if baseline
        else None,
        "update_baseline": config.getoption("update_baseline"),
        "force_baseline": config.getoption("force_baseline"),
        "repeat": repeat,
    }
