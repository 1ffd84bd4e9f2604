"""Progress lines for long cases that leave pytest's and xdist's own output intact.

Without xdist, lines are written from the test's own thread with output capture suspended,
as pytest's live logging does. Under xdist a worker cannot write to the terminal, so it
keeps a small JSON status file per worker, and the controller prints complete lines from
those files between xdist's own writes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

logger = logging.getLogger(__name__)


def progress_line(case_id: str, done: int, total: int, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    return f"[clue] {case_id}: {done}/{total} examples, {rate:.1f}/s, {elapsed:.0f} s"


class TerminalProgress:
    """Writes progress to the terminal from the process that runs the case (no xdist)."""

    def __init__(self, config: pytest.Config, case_id: str, total: int, interval: float) -> None:
        self.config = config
        self.case_id = case_id
        self.total = total
        self.interval = interval
        self.done = 0
        self.started = time.monotonic()
        self.last = self.started

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.interval and now - self.last >= self.interval:
            self.last = now
            self._write(progress_line(self.case_id, self.done, self.total, now - self.started))
        logger.debug("%s: %d/%d", self.case_id, self.done, self.total)

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    def close(self) -> None:
        return None


class FileProgress:
    """Keeps an xdist worker's progress in `<folder>/<worker>.json` for the controller."""

    def __init__(
        self, folder: Path, worker_id: str, case_id: str, total: int, interval: float
    ) -> None:
        self.path = folder / f"{worker_id}.json"
        self.case_id = case_id
        self.total = total
        self.interval = interval
        self.done = 0
        self.started = time.monotonic()
        self.last = 0.0
        folder.mkdir(parents=True, exist_ok=True)
        self._save()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last >= min(1.0, self.interval or 1.0):
            self._save()

    def _save(self) -> None:
        self.last = time.monotonic()
        status = {
            "case": self.case_id,
            "done": self.done,
            "total": self.total,
            "elapsed": self.last - self.started,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status))
        os.replace(temporary, self.path)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


class ProgressWatcher:
    """Controller side: prints the workers' progress files every `interval` seconds."""

    def __init__(self, config: pytest.Config, folder: Path, interval: float) -> None:
        self.config = config
        self.folder = folder
        self.interval = interval
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="clue-progress", daemon=True)
        self.printed: dict[str, int] = {}

    def start(self) -> None:
        if self.interval > 0:
            self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            for path in sorted(self.folder.glob("*.json")):
                try:
                    status = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # the worker is replacing or removing the file right now
                if (
                    status["elapsed"] < self.interval
                    or self.printed.get(status["case"]) == status["done"]
                ):
                    continue
                self.printed[status["case"]] = status["done"]
                line = progress_line(
                    status["case"], status["done"], status["total"], status["elapsed"]
                )
                self._write(f"[{path.stem}] {line}")

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        # xdist writes status letters without a newline; start on a fresh line.
        if reporter._tw.width_of_current_line:
            reporter._tw.line()
        reporter.write_line(line)
