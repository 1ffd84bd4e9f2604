"""First run against rerun of an unchanged suite, with the prediction cache empty at the start.

Each round points `--clue-prediction-cache` at a new empty folder, runs the suite (the
first run fills the cache) and runs it again unchanged (the rerun should load no model).
The default suite is generated: gemma-3-270m on a smoke subset of AFQMC dev and m3e-small's
`similarity-sts` case on a smoke subset of the same file. `--cache-suite PATH` times any
pytest path instead (a folder of specs and their test modules, such as evals/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import (
    afqmc_dev,
    alternate,
    log,
    medians_of,
    pytest_argv,
    pytest_suite,
    run_command,
    scratch_dir,
    shell_line,
)

TARGET_SPEEDUP = 50.0


def default_suite(folder: Path, smoke_size: int) -> Path:
    return pytest_suite(
        folder,
        "cache-smoke.yaml",
        "defaults:\n"
        f"  smoke_size: {smoke_size}\n"
        "  seed: 1234\n"
        "models:\n"
        "  gemma270m:\n"
        "    backend: hf-causal\n"
        "    packaged: gemma-3-270m\n"
        "    dtype: float32\n"
        "  m3e:\n"
        "    backend: hf-embedding\n"
        "    packaged: m3e-small\n"
        "    options: {pooling: mean, normalize: true}\n"
        "cases:\n"
        "  - task: afqmc\n"
        "    split: dev\n"
        "    model: gemma270m\n"
        "  - task: similarity-sts\n"
        "    model: m3e\n"
        "    source: {task: afqmc, split: dev}\n",
    )


def cached_requests(output_dir: Path) -> int | None:
    """Sum `n_cached` over the cases of a run's report.json."""
    report = output_dir / "report.json"
    if not report.is_file():
        return None
    cases = json.loads(report.read_text()).get("cases", [])
    if isinstance(cases, dict):
        cases = list(cases.values())
    return sum(int(case.get("n_cached") or 0) for case in cases)


def run(
    data_root: Path, repeats: int, suite: Path | None, smoke_size: int, workers: str
) -> dict[str, Any]:
    work = scratch_dir("cache")
    afqmc_dev(data_root)  # fail early, with the path, when the data root lacks AFQMC
    generated = suite is None
    target = default_suite(work / "suite", smoke_size) if generated else suite.resolve()
    log(f"cached-rerun comparison in {work} on {target}")

    def argv(cache_dir: Path, output_dir: Path) -> list[str]:
        options = [
            "--clue-data", str(data_root),
            "--clue-prediction-cache", str(cache_dir),
            "--clue-output", str(output_dir),
            "-n", workers,
        ]  # fmt: skip
        return pytest_argv(target, *options, generated=generated)

    # Both runs of a round share its cache folder, so the second must follow the first.
    cache_dirs: dict[int, Path] = {}

    def cache_for(round_number: int) -> Path:
        return cache_dirs.setdefault(round_number, work / f"cache-{round_number}")

    def first(round_number: int) -> dict[str, Any]:
        cache_dir = cache_for(round_number)
        if cache_dir.exists():
            raise RuntimeError(f"cache folder {cache_dir} is not new")
        output_dir = work / f"out-first-{round_number}"
        measured = run_command(
            argv(cache_dir, output_dir), log_path=work / f"first-{round_number}.log"
        )
        measured["requests_from_cache"] = cached_requests(output_dir)
        return measured

    def second(round_number: int) -> dict[str, Any]:
        output_dir = work / f"out-second-{round_number}"
        measured = run_command(
            argv(cache_for(round_number), output_dir), log_path=work / f"second-{round_number}.log"
        )
        measured["requests_from_cache"] = cached_requests(output_dir)
        return measured

    runs = alternate({"first_run": first, "rerun": second}, repeats)
    medians = {
        name: medians_of(values, ["wall_seconds"])["wall_seconds"] for name, values in runs.items()
    }
    speedup = medians["first_run"] / medians["rerun"]
    return {
        "suite": "generated (gemma-3-270m AFQMC dev smoke, m3e-small similarity-sts smoke)"
        if generated
        else str(target),
        "smoke_size": smoke_size if generated else None,
        "commands": {
            "first_run": shell_line(argv(Path("<new empty folder>"), Path("<output folder>"))),
            "rerun": "the same command again, with the same cache folder",
        },
        "runs": runs,
        "median_wall_seconds": medians,
        "first_over_rerun": speedup,
        "target_first_over_rerun": TARGET_SPEEDUP,
        "meets_target": speedup >= TARGET_SPEEDUP,
    }
