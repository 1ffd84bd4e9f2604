"""Chinese prompts for log-likelihood scoring: templates, verbalizers and few-shot examples.

A prompt is the task's template filled with an example's variables, ending right before
the answer; each label's verbalizer is a candidate continuation. Few-shot examples are the
same template followed by their gold verbalizer, separated by blank lines. They are drawn
once per case with a fixed seed, so every example shares one prefix.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from harness.tasks.base import ClassificationTask, Example

SHOT_SEPARATOR = "\n\n"


def verbalizers(task: ClassificationTask, overrides: Mapping[str, str]) -> list[str]:
    """Return one verbalizer per label, in the task's label order."""
    return [overrides.get(label.id, label.verbalizer) for label in task.labels]


def fill(template: str, variables: Mapping[str, str]) -> str:
    """Fill a template's {placeholders} with an example's variables."""
    return template.format_map(variables)


def select_shots(pool: Sequence[Example], count: int, seed: int) -> list[Example]:
    """Draw `count` labelled examples from `pool` with a seeded generator."""
    labelled = [example for example in pool if example.gold is not None]
    if count > len(labelled):
        raise ValueError(f"{count} few-shot examples requested but the split has {len(labelled)}")
    return random.Random(seed).sample(labelled, count)


def fewshot_prefix(
    template: str, words_by_label: Mapping[str, str], shots: Sequence[Example]
) -> str:
    """Render the few-shot examples that precede every prompt of a case ("" for zero-shot)."""
    if not shots:
        return ""
    rendered = [fill(template, shot.fields) + words_by_label[shot.gold] for shot in shots]
    return SHOT_SEPARATOR.join(rendered) + SHOT_SEPARATOR
