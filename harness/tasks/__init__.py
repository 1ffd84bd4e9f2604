"""The task registry: every task the harness can score, by name."""

from __future__ import annotations

from harness.tasks import c3, chid, clue, cluener, cmrc, fewclue, similarity
from harness.tasks.base import ClassificationTask

TASKS: dict[str, ClassificationTask] = {
    task.name: task
    for task in (
        *clue.TASKS,
        *fewclue.TASKS,
        *chid.TASKS,
        *c3.TASKS,
        *cluener.TASKS,
        *cmrc.TASKS,
        *similarity.TASKS,
    )
}


def get_task(name: str) -> ClassificationTask:
    """Return the task declared under `name`; raise KeyError listing the known names."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task '{name}' (known: {', '.join(TASKS)})") from None
