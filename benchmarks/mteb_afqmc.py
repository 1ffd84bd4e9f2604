"""Score a sentence-embedding model on a local AFQMC file with MTEB's AFQMC STS task.

Runs under MTEB's own interpreter (/work/venvs/mteb), offline: the task subclass reads
the local JSON-lines file instead of the hub dataset, with the 0/1 label as gold score.

    python mteb_afqmc.py --data afqmc/dev.json --model DIR --output result.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="AFQMC JSON-lines file")
    parser.add_argument("--model", type=Path, required=True, help="sentence-transformers folder")
    parser.add_argument("--output", type=Path, required=True, help="JSON file for the score")
    args = parser.parse_args()

    import datasets
    import mteb
    from mteb.tasks.sts.zho.cmtebsts import AFQMC
    from sentence_transformers import SentenceTransformer

    rows = [
        json.loads(line)
        for line in args.data.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]

    class LocalAFQMC(AFQMC):
        def load_data(self, **kwargs) -> None:
            if self.data_loaded:
                return
            split = datasets.Dataset.from_dict(
                {
                    "sentence1": [row["sentence1"] for row in rows],
                    "sentence2": [row["sentence2"] for row in rows],
                    "score": [float(row["label"]) for row in rows],
                }
            )
            self.dataset = datasets.DatasetDict({"validation": split})
            self.data_loaded = True

    model = SentenceTransformer(str(args.model), device="cpu")
    # Without a name, results of two local models would land in one cache folder.
    model.model_card_data.model_name = "local-" + args.model.name

    started = time.perf_counter()
    result = mteb.evaluate(model, tasks=[LocalAFQMC()], cache=None, show_progress_bar=False)
    seconds = time.perf_counter() - started

    scores = result.task_results[0].scores["validation"][0]
    args.output.write_text(
        json.dumps(
            {
                "pairs": len(rows),
                "cosine_spearman": scores["cosine_spearman"],
                "cosine_pearson": scores.get("cosine_pearson"),
                "evaluate_seconds": seconds,
            }
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
