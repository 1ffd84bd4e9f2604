"""Resumable HTTP downloads into a `.part` file, with timeouts and retries (httpx).

`fetch` continues an existing `.part` file by sending `Range: bytes=<size>-`:
- 206 with a Content-Range that starts at that size: the body is appended.
- 200: the server ignored the Range header, so the file is written again from the start.
- 416 with `Content-Range: bytes */<size>`: the `.part` file is already complete.
- Another 416, or a 206 for another range: the `.part` file does not match the remote
  file, so it is removed and the next attempt starts from byte 0.

The finished file's length must equal the total length that the response announced
(Content-Length of a 200, the total in the Content-Range of a 206). An attempt that times
out, loses its connection, stops short of that length or gets HTTP 408, 429 or 5xx is
retried after `retry_wait * 2**(attempt - 1)` seconds, and continues where it stopped.
Any other HTTP status fails at once.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
PROGRESS_SECONDS = 10.0


class FetchFailed(Exception):
    """The download failed. `reason` is the cause, and `connection` is True when no
    connection was made (connection refused, DNS failure, connect timeout)."""

    def __init__(self, reason: str, *, connection: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.connection = connection


class _Retry(Exception):
    """This attempt failed in a way that another attempt may fix."""


@dataclass(frozen=True)
class Fetched:
    """The outcome of a finished download."""

    size: int
    # Bytes that the .part file held when the download started; 0 after a restart.
    resumed_from: int
    restarted: bool
    attempts: int
    # Whether the server announced the total length that `size` was checked against.
    length_checked: bool


def _content_range(response: httpx.Response) -> tuple[int, int | None] | None:
    """Return (first byte, total size or None) of a 206 response's Content-Range."""
    match = CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if match is None:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _content_length(response: httpx.Response) -> int | None:
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


class _Attempt:
    """One GET of `url` into `part`, resuming from the bytes already there."""

    def __init__(self, client: httpx.Client, url: str, part: Path, label: str) -> None:
        self.client = client
        self.url = url
        self.part = part
        self.label = label
        self.restarted = False
        self.length_checked = False

    def run(self) -> int:
        """Download the rest of the file and return its size; raise _Retry or FetchFailed.

        Sets `length_checked` when the response announced the total length."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"

        with self.client.stream("GET", self.url, headers=headers) as response:
            status = response.status_code
            if status == 416 and offset:
                # "bytes */<size>": the .part file may already be complete.
                if response.headers.get("content-range", "").strip() == f"bytes */{offset}":
                    self.length_checked = True
                    return offset
                self._restart(f"the server rejected resuming at byte {offset} (HTTP 416)")
            if status in RETRY_STATUSES or status >= 500:
                raise _Retry(f"HTTP {status} {response.reason_phrase}")
            if status not in (200, 206):
                raise FetchFailed(f"HTTP {status} {response.reason_phrase}")

            if status == 206:
                content_range = _content_range(response)
                if content_range is None or content_range[0] != offset:
                    self._restart(
                        f"the server sent Content-Range {response.headers.get('content-range')!r}"
                        f" for a request that resumes at byte {offset}"
                    )
                total = content_range[1]
            else:
                total = _content_length(response)
                if offset:
                    logger.info(
                        "%s: the server ignored the Range request; downloading from the start",
                        self.label,
                    )
                    self.restarted = True
                    offset = 0

            mode = "ab" if offset else "wb"
            self._stream(response, mode, offset, total)

        size = self.part.stat().st_size
        self.length_checked = total is not None
        if total is not None and size != total:
            if size > total:
                self.part.unlink()
            raise _Retry(f"received {size} of {total} bytes")
        return size

    def _restart(self, reason: str) -> NoReturn:
        """Remove the `.part` file so that the next attempt starts from byte 0."""
        logger.info("%s: %s; restarting from byte 0", self.label, reason)
        self.part.unlink()
        self.restarted = True
        raise _Retry(reason)

    def _stream(self, response: httpx.Response, mode: str, offset: int, total: int | None) -> None:
        received = offset
        last_log = time.monotonic()
        with open(self.part, mode) as sink:
            # No chunk size: httpx would hold up to that many bytes back, and they would be
            # lost when the connection drops, instead of being kept for the next attempt.
            for chunk in response.iter_raw():
                sink.write(chunk)
                received += len(chunk)
                now = time.monotonic()
                if now - last_log >= PROGRESS_SECONDS:
                    last_log = now
                    of_total = f" of {total}" if total is not None else ""
                    logger.info("%s: %d%s bytes", self.label, received, of_total)


def fetch(
    client: httpx.Client,
    url: str,
    part: Path,
    *,
    attempts: int = 4,
    retry_wait: float = 1.0,
    label: str | None = None,
) -> Fetched:
    """Download `url` into `part`, resuming what is already there; raise FetchFailed."""
    label = label or url
    part.parent.mkdir(parents=True, exist_ok=True)
    first_offset = part.stat().st_size if part.exists() else 0
    if first_offset:
        logger.info("%s: resuming %s at byte %d", label, part, first_offset)

    restarted = False
    reason = ""
    for attempt in range(1, attempts + 1):
        runner = _Attempt(client, url, part, label)
        connection = False
        try:
            size = runner.run()
            restarted = restarted or runner.restarted
            resumed_from = 0 if restarted else first_offset
            return Fetched(size, resumed_from, restarted, attempt, runner.length_checked)
        except _Retry as error:
            reason = str(error)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            reason = str(error) or type(error).__name__
            connection = True
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
            reason = str(error) or type(error).__name__
        restarted = restarted or runner.restarted

        if attempt == attempts:
            raise FetchFailed(f"{reason} (after {attempts} attempts)", connection=connection)
        wait = retry_wait * 2 ** (attempt - 1)
        logger.warning(
            "%s: attempt %d of %d failed: %s; retrying in %.1f s",
            label,
            attempt,
            attempts,
            reason,
            wait,
        )
        time.sleep(wait)
    raise FetchFailed(f"no attempt was made (attempts={attempts})")
