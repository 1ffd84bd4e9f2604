"""Run the whole benchmark suite, write JSON results, then render docs/benchmarks.md.

The one command, from the repository root with the harness's venv active:

    python benchmarks/run_all.py --data /path/to/clue --repeats 3

It is not part of the test command. Each benchmark writes benchmarks/results/<name>.json
with the machine, the exact commands, every run and the medians; benchmarks/render.py
turns those files into docs/benchmarks.md. A benchmark that fails records its error in its
JSON file and the others still run.

Benchmarks (`--only` selects some):

- lm_eval: the harness against lm-evaluation-harness 0.4.13, gemma-3-270m, AFQMC dev;
- mteb: the `similarity-sts` case against MTEB's AFQMC STS task, m3e-small;
- classifier: harness against a bare model loop and against padding to 128 tokens;
- cache: first run against rerun with the prediction cache;
- memory: peak memory of `pytest -n auto` against `-n 0`;
- scaling: wall time at 1x, 4x and 16x the examples.

Every comparison alternates its programs (A, B, A, B, ...) after one warm-up round.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import bench_cache
import bench_lmeval
import bench_memory
import bench_mteb
import bench_scaling
from common import (
    REPO_ROOT,
    RESULTS_DIR,
    afqmc_dev,
    log,
    machine_info,
    scratch_dir,
    write_first_rows,
    write_result,
)

BENCHMARKS = ("lm_eval", "mteb", "classifier", "cache", "memory", "scaling")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="CLUE data root (contains afqmc/dev.json)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="recorded rounds per comparison, after one warm-up"
    )
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="folder for the JSON results"
    )
    parser.add_argument("--no-render", action="store_true", help="write the JSON results only")
    parser.add_argument(
        "--llm-examples",
        type=int,
        default=500,
        help="first N AFQMC dev rows for the lm-eval comparison",
    )
    parser.add_argument("--lmeval-batch-size", type=int, default=16, help="lm-eval's --batch_size")
    parser.add_argument(
        "--mteb-pairs",
        type=int,
        help="first N AFQMC dev pairs for the MTEB comparison (default: all)",
    )
    parser.add_argument(
        "--classifier-examples",
        type=int,
        help="first N AFQMC dev rows for the classifier benchmark (default: all)",
    )
    parser.add_argument(
        "--classifier-model",
        type=Path,
        default=Path("models/albert-tiny-afqmc"),
        help="fine-tuned AFQMC classifier folder",
    )
    parser.add_argument(
        "--cache-suite",
        type=Path,
        help="pytest path for the cached-rerun benchmark (default: a generated smoke suite)",
    )
    parser.add_argument(
        "--cache-smoke-size",
        type=int,
        default=200,
        help="smoke subset size of the generated cache suite",
    )
    parser.add_argument(
        "--cache-workers", default="0", help="pytest -n value for the cached-rerun benchmark"
    )
    parser.add_argument(
        "--memory-suite",
        type=Path,
        help="pytest path for the memory benchmark (default: four generated gemma-3-270m cases)",
    )
    parser.add_argument(
        "--memory-smoke-size",
        type=int,
        default=50,
        help="smoke subset size per case of the generated memory suite",
    )
    parser.add_argument(
        "--scaling-base", type=int, default=250, help="examples at 1x; the runs use 1x, 4x and 16x"
    )
    return parser.parse_args(argv)


def classifier_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run benchmarks/bench_classifier.py, which times its three loops in one process."""
    data_root = args.data
    if args.classifier_examples is not None:
        data_root = scratch_dir("classifier") / "data"
        write_first_rows(
            afqmc_dev(args.data), data_root / "afqmc" / "dev.json", args.classifier_examples
        )
    output = scratch_dir("classifier-result") / "classifier.json"
    argv = [
        sys.executable,
        str(REPO_ROOT / "benchmarks" / "bench_classifier.py"),
        "--data", str(data_root),
        "--model", str(args.classifier_model),
        "--repeats", str(args.repeats),
        "--output", str(output),
    ]  # fmt: skip
    subprocess.run(argv, check=True, cwd=REPO_ROOT)
    import json

    result = json.loads(output.read_text())
    result["command"] = " ".join(shlex.quote(part) for part in argv)
    result["target_harness_over_bare"] = 1.10
    result["target_pad128_over_harness"] = 3.0
    result["meets_bare_target"] = result["harness_over_bare"] <= 1.10
    result["meets_pad128_target"] = result["pad128_over_harness"] >= 3.0
    return result


def run_benchmark(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name == "lm_eval":
        return bench_lmeval.run(args.data, args.llm_examples, args.repeats, args.lmeval_batch_size)
    if name == "mteb":
        return bench_mteb.run(args.data, args.mteb_pairs, args.repeats)
    if name == "classifier":
        return classifier_benchmark(args)
    if name == "cache":
        return bench_cache.run(
            args.data, args.repeats, args.cache_suite, args.cache_smoke_size, args.cache_workers
        )
    if name == "memory":
        return bench_memory.run(args.data, args.repeats, args.memory_suite, args.memory_smoke_size)
    if name == "scaling":
        return bench_scaling.run(args.data, args.repeats, args.scaling_base, args.classifier_model)
    raise ValueError(f"unknown benchmark {name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.data = args.data.resolve()
    command = "python benchmarks/run_all.py " + " ".join(
        shlex.quote(part) for part in (argv or sys.argv[1:])
    )
    machine = machine_info()
    failed = []
    for name in args.only or BENCHMARKS:
        log(f"benchmark {name}")
        started = time.time()
        payload: dict[str, Any] = {
            "benchmark": name,
            "suite_command": command,
            "repeats": args.repeats,
            "machine": machine,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        }
        try:
            payload["result"] = run_benchmark(name, args)
        except Exception as error:  # one broken benchmark must not lose the others' results
            traceback.print_exc()
            payload["error"] = f"{type(error).__name__}: {error}"
            failed.append(name)
        payload["suite_seconds"] = time.time() - started
        write_result(name, payload, args.results_dir)

    if not args.no_render:
        import render

        render.main(["--results-dir", str(args.results_dir)])
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
