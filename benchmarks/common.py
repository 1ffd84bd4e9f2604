"""Shared pieces of the benchmark suite: machine facts, timed commands, A/B alternation.

Every comparison times two (or more) whole programs on the same data and model, in one
run of the suite. One warm-up round is not recorded. Then `repeats` rounds each run the
programs in the same order (A, B, A, B, ...), so a slow phase of a shared machine hits
both sides. Reported figures are medians over the recorded rounds.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
# The peers run from their own virtual environments, so their pins never meet the harness's.
LMEVAL_VENV = Path(os.environ.get("LMEVAL_VENV", "/work/venvs/lmeval"))
MTEB_VENV = Path(os.environ.get("MTEB_VENV", "/work/venvs/mteb"))

# Tests and benchmarks never reach a model hub; every model comes from a local folder.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str, python: Path | None = None) -> str | None:
    """Return an installed distribution's version, in this interpreter or in `python`."""
    if python is None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    completed = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return completed.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """Describe the machine and software versions that the figures were measured with."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu_model": cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "clue_harness": package_version("clue-harness"),
        "pytest_xdist": package_version("pytest-xdist"),
        "lm_eval": package_version("lm_eval", LMEVAL_VENV / "bin" / "python"),
        "lm_eval_torch": package_version("torch", LMEVAL_VENV / "bin" / "python"),
        "lm_eval_transformers": package_version("transformers", LMEVAL_VENV / "bin" / "python"),
        "mteb": package_version("mteb", MTEB_VENV / "bin" / "python"),
        "mteb_torch": package_version("torch", MTEB_VENV / "bin" / "python"),
        "sentence_transformers": package_version(
            "sentence-transformers", MTEB_VENV / "bin" / "python"
        ),
        "git_commit": commit or None,
        "load_average_at_start": list(os.getloadavg()),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def shell_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Render a command, with the environment variables it sets, as one shell line."""
    prefix = " ".join(f"{name}={shlex.quote(value)}" for name, value in (env or {}).items())
    command = " ".join(shlex.quote(str(part)) for part in argv)
    return f"{prefix} {command}".strip()


def _pss_bytes(pid: int) -> int:
    """Read a process's proportional set size, which counts shared mapped pages once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class TreeMemorySampler(threading.Thread):
    """Sample RSS and PSS summed over a process and all its descendants, keeping the peaks.

    A sampler polls, so a peak shorter than `interval` seconds can be missed.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self.samples = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stopped.is_set():
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            rss = pss = 0
            for process in processes:
                try:
                    rss += process.memory_info().rss
                except psutil.Error:
                    continue
                pss += _pss_bytes(process.pid)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.samples += 1
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
    sample_memory: bool = False,
) -> dict[str, Any]:
    """Run one whole command, returning its wall time and, if asked, its tree's peak memory.

    The command's output goes to `log_path` (or is discarded). A non-zero exit status
    raises, because a failed run's time is no measurement.
    """
    full_env = {**os.environ, **OFFLINE_ENV, **(env or {})}
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    try:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(part) for part in argv],
            env=full_env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        sampler = TreeMemorySampler(process.pid) if sample_memory else None
        if sampler:
            sampler.start()
        returncode = process.wait()
        wall = time.perf_counter() - started
        if sampler:
            sampler.stop()
    finally:
        if log_path:
            log.close()
    if returncode != 0:
        where = f"; its output is in {log_path}" if log_path else ""
        raise RuntimeError(
            f"command failed with exit status {returncode}: {shell_line(argv)}{where}"
        )
    measured: dict[str, Any] = {"wall_seconds": wall}
    if sampler:
        measured["peak_rss_mib"] = sampler.peak_rss / 2**20
        measured["peak_pss_mib"] = sampler.peak_pss / 2**20
        measured["memory_samples"] = sampler.samples
    return measured


def alternate(
    programs: Mapping[str, Callable[[int], dict[str, Any]]], repeats: int, warmups: int = 1
) -> dict[str, list[dict[str, Any]]]:
    """Run each program once per round, in the given order, after `warmups` unrecorded rounds.

    A program is called with the round number (negative for warm-up rounds) and returns
    its measurements.
    """
    for warmup in range(warmups):
        for name, program in programs.items():
            log(f"warm-up {warmup + 1}/{warmups}: {name}")
            program(-1 - warmup)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in programs}
    for round_number in range(repeats):
        for name, program in programs.items():
            log(f"round {round_number + 1}/{repeats}: {name}")
            measured = program(round_number)
            log(f"  {name}: {measured.get('wall_seconds', float('nan')):.2f} s")
            runs[name].append(measured)
    return runs


def medians_of(runs: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    return {
        key: median([run[key] for run in runs]) for key in keys if all(key in run for run in runs)
    }


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"clue-bench-{prefix}-"))


def write_result(name: str, payload: Mapping[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {path}")
    return path


def write_first_rows(source: Path, target: Path, count: int | None) -> list[dict[str, Any]]:
    """Copy the first `count` JSON lines of `source` to `target` (all when None)."""
    rows = []
    with source.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            rows.append(json.loads(line))
            if count is not None and len(rows) == count:
                break
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return rows


def afqmc_dev(data_root: Path) -> Path:
    """Find AFQMC dev under a CLUE data root in either official folder name."""
    for folder in ("afqmc", "afqmc_public"):
        path = data_root / folder / "dev.json"
        if path.is_file():
            return path
    raise FileNotFoundError(f"AFQMC dev not found under {data_root} (afqmc/dev.json)")


def pytest_suite(folder: Path, spec_name: str, spec_text: str) -> Path:
    """Write a spec and the test module that turns its cases into pytest items."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / spec_name).write_text(spec_text, encoding="utf-8")
    module = folder / f"test_{Path(spec_name).stem.replace('-', '_')}.py"
    module.write_text(
        "import pytest\n\n"
        "from harness.plugin import assert_thresholds\n\n\n"
        f"@pytest.mark.clue_spec({spec_name!r})\n"
        "def test_case(clue_case, clue_evaluate):\n"
        "    assert_thresholds(clue_evaluate(clue_case))\n",
        encoding="utf-8",
    )
    return folder


def pytest_argv(suite: Path, *options: str, generated: bool = True) -> list[str]:
    """Build a whole pytest command on a suite folder.

    A generated suite in a temporary folder becomes its own rootdir, so no pytest.ini
    above it applies; a suite of the user's keeps the rootdir and ini that pytest finds.
    """
    argv = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider"]
    if generated:
        argv += ["--rootdir", str(suite)]
    return argv + list(options)
