"""Harness overhead for a fine-tuned classifier on AFQMC dev, against two plain loops.

Three ways to score the same 4,316 pairs with the same model, alternated after a warm-up:

- harness: `CaseRunner.run` on a full-tier case (read and validate the file, tokenise,
  length-sorted batches with dynamic padding, forward passes, metrics, predictions file);
- bare loop: the same model over exactly the batches the harness forms, with no harness
  around it (tokenise, pad each batch to its longest member, forward);
- pad to 128: the same batches, each padded to 128 tokens, as fixed-length pipelines do.

    python benchmarks/bench_classifier.py --data ../shared/data/clue \
        --model models/albert-tiny-afqmc --repeats 5 --output benchmarks/results/classifier.json

Model load time is reported on its own line and is not part of any timed run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from harness import __version__
from harness.backends.base import ModelConfig
from harness.backends.batching import plan_batches
from harness.backends.hf_classifier import HFSequenceClassifier
from harness.runner import CaseRunner
from harness.spec import CaseConfig
from harness.tasks import get_task


def bare_loop(backend, texts, batch_size, max_tokens, pad_to=None):
    tokenizer, model = backend.tokenizer, backend.model
    encodings = [
        tokenizer(first, second, truncation="longest_first", max_length=backend.max_length)
        for first, second in texts
    ]
    widths = [len(encoding["input_ids"]) for encoding in encodings]
    predicted = [0] * len(texts)
    with torch.inference_mode():
        for batch in plan_batches(widths, max_items=batch_size, max_tokens=max_tokens):
            features = [encodings[index] for index in batch]
            if pad_to:
                padded = tokenizer.pad(
                    features, padding="max_length", max_length=pad_to, return_tensors="pt"
                )
            else:
                padded = tokenizer.pad(features, return_tensors="pt")
            logits = model(**padded).logits
            for index, row in zip(batch, logits.argmax(-1).tolist()):
                predicted[index] = row
    return predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CLUE data root")
    parser.add_argument("--model", required=True, help="fine-tuned AFQMC classifier folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", help="JSON file for the measurements")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    config = ModelConfig(
        name="classifier",
        backend="hf-classifier",
        path=args.model,
        batch_size=args.batch_size,
        max_length=128,
    )
    backend = HFSequenceClassifier(config)
    load_seconds = time.perf_counter() - started

    task = get_task("afqmc")
    output_dir = Path(tempfile.mkdtemp(prefix="bench-classifier-"))
    runner = CaseRunner(Path(args.data), output_dir, full_tier=True)
    case = CaseConfig(
        id="afqmc-dev-bench",
        task="afqmc",
        split="dev",
        model="classifier",
        method="classifier",
        spec_path="bench",
        tier="full",
    )
    examples = runner.load(task, "dev").examples
    texts = [task.classifier_text(example.fields) for example in examples]

    def harness_run():
        return runner.run(case, backend).metrics["accuracy"]

    def bare_run():
        return bare_loop(backend, texts, args.batch_size, config.max_batch_tokens)

    def padded_run():
        return bare_loop(backend, texts, args.batch_size, config.max_batch_tokens, pad_to=128)

    runs = {"harness": harness_run, "bare loop": bare_run, "pad to 128": padded_run}
    for run in runs.values():
        run()  # warm-up
    timings = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            begin = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - begin)

    medians = {name: statistics.median(values) for name, values in timings.items()}
    summary = {
        "harness_version": __version__,
        "machine": f"{platform.machine()}, {args.threads} torch threads, torch {torch.__version__}",
        "examples": len(examples),
        "accuracy": harness_run(),
        "model_load_seconds": load_seconds,
        "timings_seconds": timings,
        "median_seconds": medians,
        "harness_over_bare": medians["harness"] / medians["bare loop"],
        "pad128_over_harness": medians["pad to 128"] / medians["harness"],
    }
    for name, value in medians.items():
        print(
            f"{name:<11} median {value:.2f} s over {args.repeats} runs (min {min(timings[name]):.2f}, max {max(timings[name]):.2f})"
        )
    print(f"harness / bare loop: {summary['harness_over_bare']:.3f}")
    print(f"pad to 128 / harness: {summary['pad128_over_harness']:.2f}")
    print(f"model load: {load_seconds:.2f} s; accuracy {summary['accuracy']:.4f}")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
