"""Wall time of the whole pytest command at 1x, 4x and 16x the examples, fine-tuned classifier.

Each size reads the first n rows of AFQMC dev (default 250, 1,000 and 4,000) and scores
them with models/albert-tiny-afqmc in a full-tier case. Sizes alternate in each round after
one warm-up. A least-squares line t = a + b * n over the medians gives the fixed start-up
a and the time per example b. The run counts as linear within 10% when the marginal time
per example from 1x to 4x and from 4x to 16x differ by at most 10%, a test that does not
depend on the fitted start-up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
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

LINEARITY_TOLERANCE = 0.10
FACTORS = (1, 4, 16)


def fit_line(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """Return (intercept, slope) of the least-squares line through the points.

    >>> fit_line([1, 2, 3], [3.0, 5.0, 7.0])
    (1.0, 2.0)
    """
    count = len(sizes)
    mean_size = sum(sizes) / count
    mean_seconds = sum(seconds) / count
    covariance = sum((n - mean_size) * (t - mean_seconds) for n, t in zip(sizes, seconds))
    variance = sum((n - mean_size) ** 2 for n in sizes)
    slope = covariance / variance
    return mean_seconds - slope * mean_size, slope


def run(data_root: Path, repeats: int, base: int, model: Path) -> dict[str, Any]:
    work = scratch_dir("scaling")
    source = afqmc_dev(data_root)
    model = (model if model.is_absolute() else REPO_ROOT / model).resolve()
    log(f"scaling runs in {work} with model {model}")

    sizes = []
    for factor in FACTORS:
        rows = write_first_rows(
            source, work / f"data-{factor}" / "afqmc" / "dev.json", base * factor
        )
        sizes.append(len(rows))
    if len(set(sizes)) < len(sizes):
        raise ValueError(f"AFQMC dev in {source} has too few rows for sizes {base} x {FACTORS}")

    suite = pytest_suite(
        work / "suite",
        "scaling.yaml",
        "models:\n"
        "  classifier:\n"
        "    backend: hf-classifier\n"
        f"    path: {json.dumps(str(model))}\n"
        "    max_length: 128\n"
        "cases:\n"
        "  - task: afqmc\n"
        "    split: dev\n"
        "    model: classifier\n"
        "    id: afqmc-dev-scaling\n",
    )

    def argv(factor: int, output_dir: Path) -> list[str]:
        return pytest_argv(
            suite,
            "--clue-data", str(work / f"data-{factor}"),
            "--clue-tier", "full",
            "--clue-no-cache",
            "--clue-output", str(output_dir),
        )  # fmt: skip

    def program(factor: int):
        def measure(round_number: int) -> dict[str, Any]:
            output_dir = work / f"out-{factor}-{round_number}"
            measured = run_command(
                argv(factor, output_dir), log_path=work / f"{factor}x-{round_number}.log"
            )
            report = json.loads((output_dir / "report.json").read_text(encoding="utf-8"))
            measured["eval_seconds"] = sum(case["eval_seconds"] for case in report["cases"])
            return measured

        return measure

    runs = alternate({f"{factor}x": program(factor) for factor in FACTORS}, repeats)
    medians = [
        medians_of(runs[f"{factor}x"], ["wall_seconds"])["wall_seconds"] for factor in FACTORS
    ]
    startup, per_example = fit_line(sizes, medians)
    marginal = [
        (medians[index + 1] - medians[index]) / (sizes[index + 1] - sizes[index])
        for index in range(len(sizes) - 1)
    ]
    spread = max(marginal) / min(marginal) - 1 if min(marginal) > 0 else float("inf")
    # The case's own evaluation time (read, tokenise, forward passes, metrics, files) leaves
    # out process start-up and model load, whose noise swamps the 1x run's compute.
    eval_medians = [
        medians_of(runs[f"{factor}x"], ["eval_seconds"])["eval_seconds"] for factor in FACTORS
    ]
    eval_per_example = [seconds / size for seconds, size in zip(eval_medians, sizes)]
    eval_spread = max(eval_per_example) / min(eval_per_example) - 1
    return {
        "model": str(model),
        "sizes": sizes,
        "commands": {
            f"{factor}x": shell_line(argv(factor, Path("<output folder>"))) for factor in FACTORS
        },
        "runs": runs,
        "median_wall_seconds": dict(zip((f"{factor}x" for factor in FACTORS), medians)),
        "fitted_startup_seconds": startup,
        "fitted_seconds_per_example": per_example,
        "seconds_per_example_after_startup": [
            (seconds - startup) / size for seconds, size in zip(medians, sizes)
        ],
        "marginal_seconds_per_example": marginal,
        "marginal_spread": spread,
        "median_eval_seconds": dict(zip((f"{factor}x" for factor in FACTORS), eval_medians)),
        "eval_seconds_per_example": eval_per_example,
        "eval_spread": eval_spread,
        "linearity_tolerance": LINEARITY_TOLERANCE,
        "linear_within_tolerance": eval_spread <= LINEARITY_TOLERANCE,
    }
