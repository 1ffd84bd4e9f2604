"""Concurrent JSON POSTs with timeouts and retries: the transport of the openai backend.

At most `concurrency` requests are in flight, bounded by an asyncio.Semaphore that is held
only while an attempt runs. An attempt that times out, loses its connection, or gets HTTP
408, 429 or 5xx is retried. The wait before a retry is random between 0 and
`backoff * 2**(attempt - 1)` seconds ("full jitter", at most 60 s), or the server's
`Retry-After` when that is longer (at most 120 s). Any other status, or a 200 body that is
not a JSON object, fails at once. Each retry is logged as a warning and each final failure
as an error, both with the request's label (case, example and choice). The first final
failure cancels the requests still pending and raises BackendError, so no partial results
are returned.

A secret (the API key) is replaced by "[API key]" in every message built from server text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import logging
import random
import time
from collections import Counter
from typing import Any

from harness.backends.base import Progress
from harness.errors import BackendError

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})
MAX_BACKOFF_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 120.0
KEY_PLACEHOLDER = "[API key]"
EXCERPT_CHARS = 200


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the wait in seconds that a `Retry-After` header requests, or None.

    The header contains either a number of seconds or an HTTP date.

    >>> parse_retry_after("2")
    2.0
    >>> parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0)
    6.0
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


class _AttemptFailed(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RetryingPoster:
    """Send JSON POSTs to one server with bounded concurrency, timeouts and retries.

    `timeout` is the limit of one attempt in seconds, `backoff` the base delay of the
    exponential backoff in seconds, and `secret` a value to keep out of every message.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        timeout: float,
        max_attempts: int,
        backoff: float,
        headers: dict[str, str] | None = None,
        secret: str | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.headers = headers or {}
        self.secret = secret
        self.random = random.Random()

    def post_all(
        self,
        url: str,
        payloads: list[dict],
        labels: list[str],
        examples: list[int],
        progress: Progress,
    ) -> list[dict]:
        """POST every payload; return the JSON bodies in payload order."""
        if not payloads:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._post_concurrently(url, payloads, labels, examples, progress))
        # Called from inside an event loop (a notebook, an async test): run on a fresh one.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            coroutine = self._post_concurrently(url, payloads, labels, examples, progress)
            return pool.submit(asyncio.run, coroutine).result()

    async def _post_concurrently(
        self,
        url: str,
        payloads: list[dict],
        labels: list[str],
        examples: list[int],
        progress: Progress,
    ) -> list[dict]:
        import httpx

        semaphore = asyncio.Semaphore(self.concurrency)
        pending_per_example = Counter(examples)
        results: list[dict] = [{} for _ in payloads]
        limits = httpx.Limits(
            max_connections=self.concurrency,
            max_keepalive_connections=self.concurrency,
        )

        async with httpx.AsyncClient(
            headers=self.headers, timeout=httpx.Timeout(self.timeout), limits=limits
        ) as client:

            async def run_one(position: int) -> None:
                results[position] = await self._post_with_retries(
                    client, semaphore, url, payloads[position], labels[position]
                )
                example = examples[position]
                pending_per_example[example] -= 1
                if pending_per_example[example] == 0:
                    progress.advance(1)

            tasks = [asyncio.create_task(run_one(position)) for position in range(len(payloads))]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in tasks:
                if task in done and task.exception() is not None:
                    raise task.exception()
        return results

    async def _post_with_retries(
        self,
        client: Any,
        semaphore: asyncio.Semaphore,
        url: str,
        payload: dict,
        label: str,
    ) -> dict:
        attempts = self.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with semaphore:
                    return await self._attempt(client, url, payload, label)
            except _AttemptFailed as failure:
                if attempt == attempts:
                    raise self.fail(
                        f"{label}: POST {url} failed after {attempts} attempts; last: "
                        f"{failure.reason}"
                    ) from None
                wait = self.wait_seconds(attempt, failure.retry_after)
                logger.warning(
                    "%s: POST %s: %s (attempt %d of %d); retrying in %.2f s",
                    label,
                    url,
                    failure.reason,
                    attempt,
                    attempts,
                    wait,
                )
                await asyncio.sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")

    async def _attempt(self, client: Any, url: str, payload: dict, label: str) -> dict:
        """Send one POST; raise _AttemptFailed for failures worth another attempt."""
        import httpx

        timeout = self.timeout
        try:
            response = await asyncio.wait_for(client.post(url, json=payload), timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise _AttemptFailed(f"timed out after {timeout:g} s") from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as error:
            raise _AttemptFailed(
                f"connection failed ({type(error).__name__}: {self.redact(str(error))})"
            ) from None

        status = response.status_code
        if status == 200:
            try:
                body = response.json()
            except ValueError:
                raise self.fail(
                    f"{label}: POST {url} returned a body that is not valid JSON: "
                    f"{self._excerpt(response.text)!r}; check that base_url points at an "
                    "OpenAI-compatible API"
                ) from None
            if not isinstance(body, dict):
                raise self.fail(f"{label}: POST {url} returned JSON that is not an object")
            return body

        reason = f"HTTP status {status} ({self._excerpt(response.text)!r})"
        if status in RETRY_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _AttemptFailed(reason, retry_after=retry_after)
        hint = ""
        if status in (404, 405) and url.endswith("/completions"):
            hint = "; the server may not offer this endpoint (check base_url and endpoint)"
        if status in (401, 403):
            hint = "; check the API key in the environment variable named by api_key_env"
        raise self.fail(f"{label}: POST {url} failed: {reason}{hint}")

    def wait_seconds(self, attempt: int, retry_after: float | None) -> float:
        """Return a full-jitter backoff, or the server's Retry-After when that is longer."""
        ceiling = min(MAX_BACKOFF_SECONDS, self.backoff * 2 ** (attempt - 1))
        wait = self.random.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return wait

    def fail(self, message: str) -> BackendError:
        """Log a final error and return it as a BackendError to raise."""
        message = self.redact(message)
        logger.error("%s", message)
        return BackendError(message)

    def redact(self, text: str) -> str:
        if self.secret:
            text = text.replace(self.secret, KEY_PLACEHOLDER)
        return text

    def _excerpt(self, text: str) -> str:
        text = self.redact(text)
        if len(text) > EXCERPT_CHARS:
            return text[:EXCERPT_CHARS] + "..."
        return text
