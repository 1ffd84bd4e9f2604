"""A scripted AFQMC classifier and a generated AFQMC dev file, for the gating tests.

Row i of the generated file reads {"sentence1": "问题i", "sentence2": "相同" or "不同",
"label": "1" or "0"}. The classifier reads the gold label from sentence2 and answers it,
except for the row numbers its model options list under `wrong`, where it answers the
other label. So a test chooses exactly which examples a run gets right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.backends.base import Backend, ModelConfig, NoProgress, Progress

ROW_NUMBER = re.compile(r"问题(\d+)")


class ScriptedClassifier(Backend):
    """An hf-classifier stand-in that gets the rows in `options["wrong"]` wrong."""

    kind = "hf-classifier"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config)
        self.wrong = set(config.options.get("wrong", []))

    @property
    def head_labels(self) -> list[str]:
        return ["0", "1"]

    def classify(
        self, texts: Sequence[tuple[str, str | None]], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        logits = []
        for first, second in texts:
            gold = 1 if second == "相同" else 0
            row = int(ROW_NUMBER.search(first).group(1))
            answer = 1 - gold if row in self.wrong else gold
            logits.append([1.0, 0.0] if answer == 0 else [0.0, 1.0])
        progress.advance(len(texts))
        return logits


def scripted(wrong: Iterable[int] = (), path: str = "fake") -> ScriptedClassifier:
    config = ModelConfig(
        name="fake", backend="hf-classifier", path=path, options={"wrong": sorted(wrong)}
    )
    return ScriptedClassifier(config)


def write_afqmc(root: Path, count: int) -> Path:
    """Write an AFQMC dev file of `count` rows under root/afqmc/, labels alternating 1, 0."""
    folder = root / "afqmc"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in range(count):
        label = "1" if row % 2 == 0 else "0"
        sentence = "相同" if label == "1" else "不同"
        record = {"sentence1": f"问题{row}", "sentence2": sentence, "label": label}
        lines.append(json.dumps(record, ensure_ascii=False))
    path = folder / "dev.json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
