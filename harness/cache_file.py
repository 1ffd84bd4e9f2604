"""One file of the prediction cache: JSON lines, appended in batches, read back by digest.

The first line is a header, `{"cache_key": ...}`, with the case key the file belongs to
(see harness.cache). Every other line is one backend result: `{"request": <sha256 of the
method and the request's content>, "result": <the result as JSON>}`.

Appends are safe across processes (pytest-xdist workers, two CI jobs on one cache): a
batch is written with one `write` call on a file opened with O_APPEND, while a file lock
(`<file>.lock`) is held. A process killed mid-run loses at most the batch in flight. A
line torn by a crash or a full disk is skipped on reading, and the next append starts on
a new line so that it cannot glue a good record onto the torn one.

Floats are written with Python's shortest repr, which reads back to the same float, and
NaN or infinity is never written: `encode_line` raises ValueError for them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness.backends.base import ChoiceScores, EntitySpan, SpanAnswer

logger = logging.getLogger(__name__)


def canonical_json(value: Any) -> str:
    """Serialise a value the same way every time: sorted keys, no spaces, no NaN."""
    return json.dumps(
        value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )


def digest_of(value: Any) -> str:
    """Return the hex sha256 of a value's canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def request_content(method: str, request: Any, extra: dict[str, Any] | None = None) -> Any:
    """Return the JSON content of one request: the method, its arguments and the request.

    Request dataclasses enter field by field, so a field added to one later (a sampling
    seed, say) changes the digest without a change here.
    """
    body = asdict(request) if is_dataclass(request) else request
    return {"method": method, "request": body, **(extra or {})}


# Results as JSON ----------------------------------------------------------------------


def encode_result(method: str, value: Any) -> Any:
    """Return one backend result as JSON-ready data (numbers as Python floats and ints)."""
    if method == "loglikelihood":
        return {
            "loglikelihoods": [float(item) for item in value.loglikelihoods],
            "token_counts": [int(item) for item in value.token_counts],
        }
    if method in ("classify", "choose"):
        return [float(item) for item in value]
    if method == "generate":
        return str(value)
    if method == "extract_answers":
        return {"text": value.text, "start": int(value.start), "score": float(value.score)}
    if method == "tag":
        return [
            {"type": span.type, "start": int(span.start), "end": int(span.end), "text": span.text}
            for span in value
        ]
    if method in ("embed", "embed_tokens"):
        import numpy as np

        array = np.asarray(value)
        return {
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "values": [float(item) for item in array.ravel()],
        }
    if method == "head_labels":
        return None if value is None else [str(item) for item in value]
    raise ValueError(f"no cache encoding for backend method {method!r}")


def decode_result(method: str, data: Any) -> Any:
    """Rebuild a backend result from `encode_result`'s data, with the same types."""
    if method == "loglikelihood":
        return ChoiceScores(tuple(data["loglikelihoods"]), tuple(data["token_counts"]))
    if method in ("classify", "choose"):
        return list(data)
    if method == "generate":
        return data
    if method == "extract_answers":
        return SpanAnswer(data["text"], data["start"], data["score"])
    if method == "tag":
        return [EntitySpan(item["type"], item["start"], item["end"], item["text"]) for item in data]
    if method in ("embed", "embed_tokens"):
        import numpy as np

        return np.asarray(data["values"], dtype=data["dtype"]).reshape(data["shape"])
    if method == "head_labels":
        return None if data is None else list(data)
    raise ValueError(f"no cache encoding for backend method {method!r}")


def encode_line(request: str, result: Any) -> str:
    """Return one record line; raise ValueError for a NaN or infinite value."""
    return json.dumps({"request": request, "result": result}, ensure_ascii=False, allow_nan=False)


# The file -----------------------------------------------------------------------------


class CacheFile:
    """The stored results of one case key: `read` them all, `append` a batch."""

    def __init__(self, path: Path, key: dict[str, Any]) -> None:
        self.path = path
        self.key = key
        self.lock = FileLock(str(path) + ".lock")

    def read(self) -> dict[str, Any] | None:
        """Return the stored results by request digest, or None if the file belongs to
        another key."""
        if not self.path.is_file():
            return {}
        with self.lock:
            data = self.path.read_bytes()

        lines = data.split(b"\n")
        # Text after the last newline is a record still being written, or a torn one.
        tail = lines.pop()
        torn = 1 if tail else 0
        records: dict[str, Any] = {}
        header_seen = False
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                torn += 1
                continue
            if not isinstance(item, dict):
                torn += 1
            elif "cache_key" in item:
                header_seen = True
                if item["cache_key"] != json.loads(canonical_json(self.key)):
                    logger.warning(
                        "%s belongs to another cache key, so this case is not cached",
                        self.path,
                    )
                    return None
            elif "request" in item and "result" in item:
                records.setdefault(item["request"], item["result"])
            else:
                torn += 1
        if torn:
            logger.warning("skipped %d unreadable line(s) in %s", torn, self.path)
        if records and not header_seen:
            logger.warning("%s has no header line, so its records are ignored", self.path)
            return None
        return records

    def append(self, lines: list[str]) -> None:
        """Append record lines with one write, under the file lock.

        A new file gets the header line first; a file whose last line is torn gets a
        newline first.
        """
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            handle = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(handle).st_size
                prefix = ""
                if size == 0:
                    prefix = canonical_json({"cache_key": self.key}) + "\n"
                elif os.pread(handle, 1, size - 1) != b"\n":
                    prefix = "\n"
                payload = (prefix + "".join(line + "\n" for line in lines)).encode("utf-8")
                written = 0
                while written < len(payload):
                    written += os.write(handle, payload[written:])
            finally:
                os.close(handle)
