"""An OpenAI-compatible server on 127.0.0.1 that fails on cue, for the openai backend's tests.

A test queues faults with `FaultServer.queue`; each request takes the next queued fault, and
once the queue is empty gets the server's `default` fault, or a normal response when that
is None. Faults: an HTTP status with optional headers
and body, a stall, a reset connection (RST), a body that is not JSON, and a completion
without log-probabilities (what a chat-only server returns).

Normal responses are exact, so tests can compare log-likelihoods with ==:
- /v1/completions with `echo` tokenises the prompt into single characters, except the
  multi-character tokens listed in `merges` (longest match first). A token's
  log-probability is the sum of `char_logprob` over its characters, the first token's is
  null, and one generated token "!" follows at offset len(prompt), as llama-cpp-python's
  server does for a model that adds a BOS token.
- /v1/completions without `echo` returns "re:" + prompt; /v1/chat/completions returns
  "re:" + the last message's content.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GENERATED_TOKEN = "!"


def char_logprob(char: str) -> float:
    """Return a character's log-probability: -(ord % 8 + 1) / 8, exact in binary floats.

    >>> [char_logprob(char) for char in "abcd"]
    [-0.25, -0.375, -0.5, -0.625]
    """
    return -((ord(char) % 8) + 1) / 8


def tokenise(text: str, merges: Iterable[str] = ()) -> list[str]:
    """Split text into characters, keeping each of `merges` as one token (longest first).

    >>> tokenise("abcd", ["bc"])
    ['a', 'bc', 'd']
    """
    ordered = sorted(merges, key=len, reverse=True)
    tokens = []
    position = 0
    while position < len(text):
        match = next((merge for merge in ordered if text.startswith(merge, position)), None)
        token = match or text[position]
        tokens.append(token)
        position += len(token)
    return tokens


@dataclass(frozen=True)
class Status:
    """Respond with this HTTP status, extra headers and body."""

    code: int
    body: str = '{"error": {"message": "injected failure"}}'
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    """Wait this many seconds before responding normally (the client has usually gone)."""

    seconds: float


@dataclass(frozen=True)
class Reset:
    """Close the connection with a TCP reset before responding."""


@dataclass(frozen=True)
class Malformed:
    """Respond 200 with a body that is not valid JSON."""


@dataclass(frozen=True)
class NoLogprobs:
    """Respond to a completion with `logprobs: null`, as chat-only servers do."""


@dataclass(frozen=True)
class NoGeneratedEntry:
    """Leave the generated token out of the echoed logprobs, as llama-cpp-python does when
    the model adds no BOS token (its values are then shifted by one position)."""


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    body: Any
    arrived: float
    finished: float | None = None


class FaultServer:
    """A threaded HTTP server on 127.0.0.1 and a free port; use it as a context manager.

    `delay` returns how long to wait before a normal response, given the request body.
    """

    def __init__(
        self,
        *,
        merges: Iterable[str] = (),
        delay: Callable[[dict], float] | None = None,
        default: Any = None,
    ) -> None:
        self.merges = tuple(merges)
        self.delay = delay
        self.default = default
        self.faults: list[Any] = []
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def queue(self, *faults: Any) -> None:
        with self.lock:
            self.faults.extend(faults)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    # Answers --------------------------------------------------------------------------

    def completion(self, body: dict) -> dict:
        prompt = body["prompt"]
        if not body.get("echo"):
            return {"choices": [{"index": 0, "text": "re:" + prompt, "logprobs": None}]}

        tokens = tokenise(prompt, self.merges) + [GENERATED_TOKEN]
        offsets = []
        position = 0
        for token in tokens:
            offsets.append(position)
            position += len(token)
        values: list[float | None] = [sum(char_logprob(char) for char in t) for t in tokens]
        values[0] = None
        logprobs = {
            "tokens": tokens,
            "token_logprobs": values,
            "top_logprobs": [None] + [{t: v} for t, v in zip(tokens[1:], values[1:])],
            "text_offset": offsets,
        }
        return {
            "choices": [{"index": 0, "text": prompt + GENERATED_TOKEN, "logprobs": logprobs}],
            "usage": {"prompt_tokens": len(tokens) - 1, "completion_tokens": 1},
        }

    def chat(self, body: dict) -> dict:
        content = "re:" + body["messages"][-1]["content"]
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                seen = Seen(self.path, dict(self.headers.items()), body, time.monotonic())
                with server.lock:
                    server.requests.append(seen)
                    fault = server.faults.pop(0) if server.faults else server.default
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(fault, body)
                except OSError:
                    pass  # the client timed out and closed the connection
                finally:
                    seen.finished = time.monotonic()
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self, fault: Any, body: Any) -> None:
                if isinstance(fault, Reset):
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(fault, Status):
                    self._send(fault.code, fault.body.encode(), fault.headers)
                    return
                if isinstance(fault, Malformed):
                    self._send(200, b'{"choices": [{"text": ')
                    return
                if isinstance(fault, Stall):
                    server.stopping.wait(fault.seconds)
                elif server.delay is not None:
                    server.stopping.wait(server.delay(body))

                if self.path == "/v1/completions":
                    answer = server.completion(body)
                    if isinstance(fault, NoLogprobs):
                        answer["choices"][0]["logprobs"] = None
                    if isinstance(fault, NoGeneratedEntry):
                        for values in answer["choices"][0]["logprobs"].values():
                            values.pop()
                elif self.path == "/v1/chat/completions":
                    answer = server.chat(body)
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                self._send(200, json.dumps(answer).encode())

            def _send(self, code: int, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler
