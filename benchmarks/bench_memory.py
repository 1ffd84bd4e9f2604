"""Peak memory of `pytest -n auto` against `-n 0` on a suite whose cases share one model.

The whole process tree (pytest, its xdist workers and their children) is sampled every
0.2 s for RSS and for PSS from /proc/PID/smaps_rollup. PSS splits a shared page among the
processes that map it, so weights that workers share through one memory-mapped file count
once; RSS counts them once per process.

Three layouts, alternated after one warm-up:

- `-n 0`: one process loads the model once;
- `-n auto`: xdist's default `load` distribution sends cases to every worker, so each
  worker loads the model;
- `-n auto --clue-group-models`: the plugin's scheduler runs all cases of one model on
  one worker, so the model is loaded once (and the other worker is shut down).

`--dist loadgroup` with the plugin's `xdist_group` marks is not measured: pytest-xdist
3.8.0 under pytest 9 ignores the marks (it appends the group to `item._nodeid`, which
pytest 9 no longer reads), so it measures the same as `-n auto`.
"""

from __future__ import annotations

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

TARGET_RATIO = 1.3
LAYOUTS = {
    "n0": ["-n", "0"],
    "n_auto": ["-n", "auto"],
    "n_auto_group_models": ["-n", "auto", "--clue-group-models"],
}


def default_suite(folder: Path, smoke_size: int) -> Path:
    """Four gemma-3-270m cases, so that xdist's load distribution reaches every worker."""
    cases = [("afqmc", "dev"), ("ocnli", "dev"), ("tnews", "dev"), ("fewclue-csl", "test_public")]
    lines = [
        "defaults:",
        f"  smoke_size: {smoke_size}",
        "  seed: 1234",
        "models:",
        "  gemma270m:",
        "    backend: hf-causal",
        "    packaged: gemma-3-270m",
        "    dtype: float32",
        "cases:",
    ]
    for task, split in cases:
        lines += [f"  - task: {task}", f"    split: {split}", "    model: gemma270m"]
    return pytest_suite(folder, "memory.yaml", "\n".join(lines) + "\n")


def run(data_root: Path, repeats: int, suite: Path | None, smoke_size: int) -> dict[str, Any]:
    work = scratch_dir("memory")
    afqmc_dev(data_root)
    generated = suite is None
    target = default_suite(work / "suite", smoke_size) if generated else suite.resolve()
    log(f"memory comparison in {work} on {target}")

    def argv(layout: str, output_dir: Path) -> list[str]:
        options = [
            "--clue-data", str(data_root),
            "--clue-no-cache",
            "--clue-output", str(output_dir),
            *LAYOUTS[layout],
        ]  # fmt: skip
        return pytest_argv(target, *options, generated=generated)

    def program(layout: str):
        def measure(round_number: int) -> dict[str, Any]:
            output_dir = work / f"out-{layout}-{round_number}"
            return run_command(
                argv(layout, output_dir),
                log_path=work / f"{layout}-{round_number}.log",
                sample_memory=True,
            )

        return measure

    runs = alternate({layout: program(layout) for layout in LAYOUTS}, repeats)
    keys = ["wall_seconds", "peak_rss_mib", "peak_pss_mib"]
    medians = {layout: medians_of(values, keys) for layout, values in runs.items()}
    ratios = {}
    for layout in ("n_auto", "n_auto_group_models"):
        ratios[layout] = {
            "pss_over_n0": medians[layout]["peak_pss_mib"] / medians["n0"]["peak_pss_mib"],
            "rss_over_n0": medians[layout]["peak_rss_mib"] / medians["n0"]["peak_rss_mib"],
            "wall_over_n0": medians[layout]["wall_seconds"] / medians["n0"]["wall_seconds"],
        }
    return {
        "suite": "generated (gemma-3-270m: AFQMC, OCNLI, TNEWS dev and FewCLUE CSL smoke subsets)"
        if generated
        else str(target),
        "smoke_size": smoke_size if generated else None,
        "commands": {
            layout: shell_line(argv(layout, Path("<output folder>"))) for layout in LAYOUTS
        },
        "runs": runs,
        "medians": medians,
        "ratios": ratios,
        "target_pss_over_n0": TARGET_RATIO,
        "meets_target_n_auto": ratios["n_auto"]["pss_over_n0"] <= TARGET_RATIO,
        "meets_target_n_auto_group_models": ratios["n_auto_group_models"]["pss_over_n0"]
        <= TARGET_RATIO,
    }
