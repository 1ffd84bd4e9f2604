"""`--clue-group-models`: under pytest-xdist, run all cases of one model on one worker.

xdist's default `load` distribution hands cases to whichever worker is free, so every
worker that receives a case of a model loads that model, and a suite of one model keeps
one copy of its weights per worker. With this option the controller schedules whole
groups instead, one group per model (see `xdist_group_name`), so each model is loaded
by one worker. Models still run in parallel with each other. Tests that are not CLUE cases
are scheduled one by one, as under `load`.

The controller does not collect items, so it cannot see which model a node id belongs to.
Each worker therefore writes its node id → group map into `<output>/.xdist-groups/`
during collection, before it reports the collection to the controller; the scheduler
reads one of those files when it splits the collection into groups.

This uses xdist's `pytest_xdist_make_scheduler` hook and its `LoadScopeScheduling`
class (pytest-xdist 3.x). `--dist loadgroup` with the `xdist_group` marks that the
plugin also sets would do the same, but pytest-xdist 3.8.0 under pytest 9 ignores them.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

logger = logging.getLogger(__name__)

GROUPS_FOLDER = ".xdist-groups"


def groups_folder(output_dir: Path) -> Path:
    return output_dir / GROUPS_FOLDER


def write_worker_groups(folder: Path, worker_id: str, groups: dict[str, str]) -> None:
    """Write one worker's node id → group map, atomically, for the controller's scheduler."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{worker_id}.json.partial"
    partial.write_text(json.dumps(groups), encoding="utf-8")
    partial.replace(folder / f"{worker_id}.json")


def read_groups(folder: Path) -> dict[str, str]:
    """Read the node id → group maps that the workers wrote; every worker collects the same items."""
    groups: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        groups.update(json.loads(path.read_text(encoding="utf-8")))
    return groups


def model_scheduler_class():
    """Return a LoadScopeScheduling subclass whose scopes are the CLUE model groups."""
    from xdist.scheduler import LoadScopeScheduling

    class ModelGroupScheduling(LoadScopeScheduling):
        def __init__(self, config: pytest.Config, log, folder: Path) -> None:
            super().__init__(config, log)
            self.folder = folder
            self.groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            # Called only after every worker reported its collection, so the files exist.
            if self.groups is None:
                self.groups = read_groups(self.folder)
                if not self.groups:
                    logger.warning(
                        "no model groups found in %s; CLUE cases are scheduled one by one",
                        self.folder,
                    )
            return self.groups.get(nodeid, nodeid)

    return ModelGroupScheduling


class ModelGrouping:
    """The plugin part behind --clue-group-models, registered only when xdist is installed."""

    def __init__(self, config: pytest.Config, output_dir: Path, group_of, limit_workers) -> None:
        self.config = config
        self.folder = groups_folder(output_dir)
        self.group_of = group_of
        self.limit_workers = limit_workers
        self.is_worker = hasattr(config, "workerinput")
        if not self.is_worker:
            # Runs in pytest_configure, before xdist starts the workers, so no stale map
            # of an earlier run can reach the scheduler.
            shutil.rmtree(self.folder, ignore_errors=True)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if not self.is_worker:
            return
        groups = {}
        ungrouped = 0
        for item in items:
            group = self.group_of(item)
            if group is None:
                ungrouped += 1
            else:
                groups[item.nodeid] = group
        write_worker_groups(self.folder, self.config.workerinput["workerid"], groups)

        # The scheduler shuts down workers beyond the number of scopes, so the cores can
        # be split among fewer workers.
        self.limit_workers(len(set(groups.values())) + ungrouped)

    # tryfirst: xdist registers its own implementation after this one, so it would run first.
    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        if config.getvalue("dist") != "load":
            # An explicit --dist other than the default keeps xdist's own scheduler.
            return None
        return model_scheduler_class()(config, log, self.folder)

    @pytest.hookimpl
    def pytest_sessionfinish(self) -> None:
        if not self.is_worker:
            shutil.rmtree(self.folder, ignore_errors=True)
