"""`--clue-shard I/N`: run the I-th of N shares of the CLUE cases, for CI machines in parallel.

Assignment rule: the cases left after the tier selection are listed in spec order, by spec
file path relative to pytest's rootdir and then by the case's position in its spec. They
are dealt round-robin, so the case at 0-based position p goes to shard p % N + 1. Each case counts
once, however many test functions use its spec. Every case lands in exactly one shard, and
shard sizes differ by at most one. The list depends only on the collected items, so every
xdist worker and every machine with the same checkout and command line computes the same
shards. Round-robin spreads each model's cases over the shards, which balances run time
better than contiguous blocks would, but every shard loads each model that one of its
cases uses. Tests that are not CLUE cases run in every shard. A shard with no case exits
with status 0, not pytest's 5 ("no tests ran"), and still writes its empty report.

The cases a shard does not run are reported through `pytest_deselected`. Each run also
records its shard, the number of cases before sharding, and the sha256 of every spec file
(`run_info`); the report stores them so that `clue-harness merge` can check that shard
outputs come from the same specs. Under xdist the workers send this record to the
controller in `workeroutput`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from harness.cases import CaseConfig
from harness.data.jsonl import sha256_file

SHARD_PATTERN = re.compile(r"(\d+)/(\d+)")
WORKER_OUTPUT_KEY = "clue_run_info"
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """Parse "I/N" with 1 <= I <= N; raise argparse.ArgumentTypeError, which pytest reports
    as a usage error.

    >>> parse_shard("2/3")
    Shard(index=2, count=3)
    """
    match = SHARD_PATTERN.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid shard {text!r}: expected I/N, shard I of N counted from 1, for example 1/4"
        )
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise argparse.ArgumentTypeError(
            f"invalid shard {text!r}: I must be between 1 and N, and N at least 1"
        )
    return Shard(index, count)


def shard_of(position: int, count: int) -> int:
    """Return the 1-based shard of the case at 0-based `position` in the ordered case list.

    >>> [shard_of(position, 3) for position in range(5)]
    [1, 2, 3, 1, 2]
    """
    return position % count + 1


def select_shard(keys: Sequence[Key], shard: Shard) -> list[Key]:
    """Return the keys, in order, that belong to `shard`; `keys` must be distinct and in
    spec order."""
    return [
        key for position, key in enumerate(keys) if shard_of(position, shard.count) == shard.index
    ]


def _case_of(item: pytest.Item) -> CaseConfig | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("clue_case") if callspec is not None else None
    return case if isinstance(case, CaseConfig) else None


class ShardPlugin:
    """Deselects the cases of other shards and keeps the run record for the report."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.shard: Shard | None = config.getoption("clue_shard", None)
        self.run_info: dict[str, Any] | None = None

    # Runs after the plugin's tier selection and pytest's -k and -m selection.
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        rootdir = Path(config.rootpath)
        cases: dict[tuple[str, str], CaseConfig] = {}
        for item in items:
            case = _case_of(item)
            if case is not None:
                cases.setdefault((self._relative(case.spec_path, rootdir), case.id), case)
        if not cases:
            return

        ordered = sorted(cases, key=lambda key: (key[0], cases[key].spec_index, key[1]))
        specs = {spec: cases[spec, case_id].spec_path for spec, case_id in ordered}
        self.run_info = {
            "shard": None
            if self.shard is None
            else {"index": self.shard.index, "count": self.shard.count},
            "cases_total": len(ordered),
            "specs": [
                {"path": spec, "sha256": sha256_file(path)} for spec, path in sorted(specs.items())
            ],
        }
        workeroutput = getattr(config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_OUTPUT_KEY] = self.run_info
        if self.shard is None:
            return

        chosen = set(select_shard(ordered, self.shard))
        selected, deselected = [], []
        for item in items:
            case = _case_of(item)
            key = None if case is None else (self._relative(case.spec_path, rootdir), case.id)
            if key is None or key in chosen:
                selected.append(item)
            else:
                deselected.append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = selected

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # A shard can be empty (more shards than cases); that is not a failed CI job.
        if session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and in_sharded_run(self.config):
            session.exitstatus = pytest.ExitCode.OK

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Take the run record from the first xdist worker that finishes."""
        info = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if info is not None and self.run_info is None:
            self.run_info = info

    @staticmethod
    def _relative(spec_path: str, rootdir: Path) -> str:
        return Path(os.path.relpath(spec_path, rootdir)).as_posix()


SHARD_PLUGIN_KEY = pytest.StashKey[ShardPlugin]()


def register(config: pytest.Config) -> None:
    """Create the shard plugin and register it; called from the plugin's pytest_configure."""
    plugin = ShardPlugin(config)
    config.stash[SHARD_PLUGIN_KEY] = plugin
    config.pluginmanager.register(plugin, "clue-shard")


def run_info(config: pytest.Config) -> dict[str, Any] | None:
    """Return the run record (shard, case count, spec digests), or None without CLUE cases."""
    plugin = config.stash.get(SHARD_PLUGIN_KEY, None)
    return None if plugin is None else plugin.run_info


def in_sharded_run(config: pytest.Config) -> bool:
    """Tell whether this run is one shard (--clue-shard) of a run that has CLUE cases."""
    plugin = config.stash.get(SHARD_PLUGIN_KEY, None)
    return plugin is not None and plugin.shard is not None and plugin.run_info is not None


def unregister(config: pytest.Config) -> None:
    plugin = config.stash.get(SHARD_PLUGIN_KEY, None)
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
