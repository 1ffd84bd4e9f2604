"""The harness's `similarity-sts` case against MTEB's AFQMC STS task, m3e-small, AFQMC dev.

Both sides embed every pair of the same AFQMC dev file with the same m3e-small folder (the
one the harness's packaged-model lookup finds) and report the Spearman correlation of
cosine against the 0/1 label. Timed: the whole `python -m pytest` command against the
whole MTEB script (benchmarks/mteb_afqmc.py under MTEB's interpreter), alternated after
one warm-up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import (
    MTEB_VENV,
    afqmc_dev,
    alternate,
    log,
    medians_of,
    pytest_argv,
    pytest_suite,
    run_command,
    scratch_dir,
    shell_line,
    write_first_rows,
)

CASE_ID = "similarity-sts-afqmc-dev-bench"
TARGET_SPEARMAN_DIFFERENCE = 1e-6


def m3e_folder() -> Path:
    from harness.backends.loading import default_cache_root
    from harness.backends.packaged import locate_packaged

    return locate_packaged("m3e-small", default_cache_root()).folder


def run(data_root: Path, pairs: int | None, repeats: int) -> dict[str, Any]:
    work = scratch_dir("mteb")
    model_dir = m3e_folder()
    log(f"MTEB comparison in {work} with model {model_dir}")

    data_file = work / "data" / "afqmc" / "dev.json"
    rows = write_first_rows(afqmc_dev(data_root), data_file, pairs)

    suite = pytest_suite(
        work / "suite",
        "sts.yaml",
        "models:\n"
        "  m3e:\n"
        "    backend: hf-embedding\n"
        f"    path: {json.dumps(str(model_dir))}\n"
        "    device: cpu\n"
        "    options: {pooling: mean, normalize: true}\n"
        "cases:\n"
        "  - task: similarity-sts\n"
        "    model: m3e\n"
        f"    id: {CASE_ID}\n"
        "    source: {task: afqmc, split: dev}\n",
    )
    ours_out = work / "harness-out"
    ours_argv = pytest_argv(
        suite,
        "--clue-data", str(work / "data"),
        "--clue-tier", "full",
        "--clue-no-cache",
        "--clue-output", str(ours_out),
    )  # fmt: skip
    theirs_out = work / "mteb-result.json"
    theirs_argv = [
        str(MTEB_VENV / "bin" / "python"),
        str(Path(__file__).with_name("mteb_afqmc.py")),
        "--data", str(data_file),
        "--model", str(model_dir),
        "--output", str(theirs_out),
    ]  # fmt: skip

    def ours(round_number: int) -> dict[str, Any]:
        return run_command(ours_argv, log_path=work / f"harness-{round_number}.log")

    def theirs(round_number: int) -> dict[str, Any]:
        # Importing mteb creates its cache folder, so each run gets a new one.
        env = {"MTEB_CACHE": str(work / f"mteb-cache-{round_number}")}
        return run_command(theirs_argv, env=env, log_path=work / f"mteb-{round_number}.log")

    runs = alternate({"harness": ours, "mteb": theirs}, repeats)
    medians = {
        name: medians_of(values, ["wall_seconds"])["wall_seconds"] for name, values in runs.items()
    }

    case = json.loads((ours_out / "cases" / f"{CASE_ID}.json").read_text())
    theirs_result = json.loads(theirs_out.read_text())
    ours_spearman = case["metrics"]["spearman"]
    difference = abs(ours_spearman - theirs_result["cosine_spearman"])
    return {
        "pairs": len(rows),
        "model_dir": str(model_dir),
        "commands": {
            "harness": shell_line(ours_argv),
            "mteb": shell_line(theirs_argv, {"MTEB_CACHE": "<new temporary folder per run>"}),
        },
        "runs": runs,
        "median_wall_seconds": medians,
        "harness_over_mteb": medians["harness"] / medians["mteb"],
        "harness_spearman": ours_spearman,
        "mteb_spearman": theirs_result["cosine_spearman"],
        "harness_pearson": case["metrics"].get("pearson"),
        "mteb_pearson": theirs_result.get("cosine_pearson"),
        "mteb_evaluate_seconds_last_run": theirs_result["evaluate_seconds"],
        "harness_eval_seconds_last_run": case["eval_seconds"],
        "abs_spearman_difference": difference,
        "target_abs_spearman_difference": TARGET_SPEARMAN_DIFFERENCE,
        "meets_spearman_target": difference <= TARGET_SPEARMAN_DIFFERENCE,
    }
