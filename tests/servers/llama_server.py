"""llama-cpp-python's OpenAI-compatible server, run as a subprocess on 127.0.0.1 for tests.

`--logits_all true` is required: without it the server rejects `logprobs`. The server
handles one request at a time, so concurrent requests queue inside it.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0


def stop_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies (PR_SET_PDEATHSIG).

    A pytest run that is killed gets no teardown, and without this its server would keep
    running and holding a core.
    """
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServer:
    """Start `python -m llama_cpp.server` for one GGUF file; stop it on exit."""

    def __init__(
        self,
        model: Path,
        log_path: Path,
        *,
        alias: str,
        threads: int = 2,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self.log_path = log_path
        self.alias = alias
        self.threads = threads
        self.extra_args = extra_args
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            "2048",
            "--n_threads",
            str(self.threads),
            "--logits_all",
            "true",
            *self.extra_args,
        ]

    def __enter__(self) -> LlamaServer:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, preexec_fn=stop_with_parent
        )
        log.close()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited with code {self.process.returncode} before it "
                    f"was ready; its log ends with:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"llama_cpp.server did not answer GET /v1/models within {READY_TIMEOUT_SECONDS:g} s; "
            f"its log ends with:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Send SIGTERM, then SIGINT, then SIGKILL, waiting up to 10 s after each of the first two."""
        if self.process is None or self.process.poll() is not None:
            return
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            self.process.send_signal(stop_signal)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
                return
            except subprocess.TimeoutExpired:
                continue
        self.process.kill()
        self.process.wait()
