"""The prediction cache: every backend result stored once, so reruns score only what changed.

`CachedBackend` stands in for a model's backend during one case. It looks each request up
by the sha256 of its content, in the file of the case's key, sends only the missing
requests to the real backend, longest first, in chunks of at most `chunk_size` requests
and `chunk_choices` scored choices, and appends each chunk's results with one locked write
(harness.cache_file). The real backend is loaded on the first missing request, so a fully
cached case never loads the model.

The case key contains everything that can change a result and is not in the request:

- the model's fingerprint (harness.backends.identity): weights digest or hub commit,
  backend, dtype, device type, `max_length`, model options, library versions; for a served
  model the API root, model name and endpoint;
- the task, split and method; the sha256 of the data files the case read; the sha256 of
  the prompt template; shots, few-shot split and seed; verbalizers, length normalisation
  and the task family's case options (generation lengths, ChID windows, similarity roles);
- the harness version and the cache format.

The request digest covers the prompt, continuations, texts, roles, stop strings,
`max_new_tokens` and a generation request's sampling settings. Case id, thresholds, tier
and subset size are left out: they choose which examples run, not what the model returns
for one, so a larger subset reuses the results of a smaller one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.backends.base import (
    Backend,
    ChoiceRequest,
    ChoiceScores,
    EntitySpan,
    GenerationRequest,
    ModelConfig,
    MultipleChoiceRequest,
    NoProgress,
    Progress,
    SpanAnswer,
    SpanRequest,
)
from harness.backends.identity import model_fingerprint
from harness.cache_file import (
    CacheFile,
    canonical_json,
    decode_result,
    digest_of,
    encode_line,
    encode_result,
    request_content,
)
from harness.cases import CaseConfig
from harness.data.file_hashes import FileHashes
from harness.errors import BackendError

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
DEFAULT_CHUNK_SIZE = 64
# A chunk also ends at this many scored choices, so that a task with many labels (IFLYTEK
# has 119) stores its results every few examples rather than every 64.
DEFAULT_CHUNK_CHOICES = 256
HASH_MEMO = "file-sha256.json"
UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class PredictionCache:
    """A folder of cached backend results, one JSON-lines file per case key."""

    def __init__(
        self,
        folder: Path,
        cache_root: Path,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_choices: int = DEFAULT_CHUNK_CHOICES,
    ) -> None:
        self.folder = folder
        self.cache_root = cache_root
        self.chunk_size = chunk_size
        self.chunk_choices = chunk_choices
        self.hashes = FileHashes(folder / HASH_MEMO)
        self.fingerprints: dict[str, dict[str, Any]] = {}

    def fingerprint(self, config: ModelConfig) -> dict[str, Any]:
        """Return the model's fingerprint, computed once per process and model entry."""
        memo_key = canonical_json(
            {name: getattr(config, name) for name in config.__dataclass_fields__}
        )
        if memo_key not in self.fingerprints:
            self.fingerprints[memo_key] = model_fingerprint(config, self.hashes, self.cache_root)
        return self.fingerprints[memo_key]

    def data_digest(self, paths: Sequence[Path]) -> str:
        """Return one sha256 over the digests of the data files a case read, in order."""
        unique = list(dict.fromkeys(Path(path).resolve() for path in paths))
        return digest_of(self.hashes.digests(unique))

    def file_for(self, key: dict[str, Any]) -> CacheFile:
        name = UNSAFE_NAME.sub("_", f"{key['task']}-{key['split'] or 'none'}")
        return CacheFile(self.folder / f"{name}-{digest_of(key)[:32]}.jsonl", key)

    def clear(self) -> int:
        """Delete every file the cache wrote (results, locks, digest memo); return the count."""
        if not self.folder.is_dir():
            return 0
        removed = 0
        for path in sorted(self.folder.iterdir()):
            owned = path.suffix == ".jsonl" or path.name.endswith(".jsonl.lock")
            if path.is_file() and (owned or path.name in (HASH_MEMO, HASH_MEMO + ".lock")):
                path.unlink()
                removed += 1
        logger.info("cleared the prediction cache %s (%d files)", self.folder, removed)
        return removed


def case_key(
    case: CaseConfig, task: Any, fingerprint: dict[str, Any], data_sha256: str
) -> dict[str, Any]:
    """Return the fields besides a request's content that can change its result."""
    template = case.prompt or getattr(task, "prompt", "") or ""
    return {
        "format": CACHE_FORMAT,
        "harness_version": __version__,
        "model": fingerprint,
        "task": case.task,
        "split": case.split,
        "method": case.method,
        "data_sha256": data_sha256,
        "prompt_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
        "shots": case.shots,
        "fewshot_split": case.fewshot_split,
        "seed": case.seed,
        "verbalizers": case.verbalizers,
        "length_normalization": case.length_normalization,
        "options": json.loads(json.dumps(case.options, sort_keys=True, default=str)),
    }


def choice_count(request: Any) -> int:
    """Return how many choices a request scores: its continuations or choices, else 1."""
    choices = getattr(request, "continuations", None) or getattr(request, "choices", None)
    return len(choices) if choices else 1


class CachedBackend(Backend):
    """A backend that serves stored results and sends the other requests to the real one.

    `load` returns the real backend. It is called on the first request the cache lacks.
    `data_files` returns the data files the case has read so far; it is called on the
    first request, after the evaluator has loaded its data. `n_cached` counts the requests
    served from the cache.
    """

    def __init__(
        self,
        cache: PredictionCache,
        config: ModelConfig,
        load: Callable[[], Backend],
        case: CaseConfig,
        task: Any,
        data_files: Callable[[], Sequence[Path]],
    ) -> None:
        # Backend.__init__ is not called, because `load_seconds` is a read-only property here.
        self.config = config
        self.kind = config.backend
        self.cache = cache
        self.load = load
        self.case = case
        self.task = task
        self.data_files = data_files
        self.real: Backend | None = None
        self.file: CacheFile | None = None
        self.records: dict[str, Any] | None = None
        self.bypass = False
        self.n_cached = 0

    def start_case(self, case: CaseConfig) -> None:
        """Serve `case` from now on. Its key is computed on its first request."""
        self.case = case
        self.file = None
        self.records = None
        self.bypass = False

    # What the evaluators read besides the requests ------------------------------------

    @property
    def identity(self) -> dict[str, Any]:
        fingerprint = self.cache.fingerprint(self.config)
        if self.real is not None and fingerprint.get("commit", "") is None:
            fingerprint = {**fingerprint, "commit": self.real.identity.get("commit")}
        return {"name": self.config.name, **fingerprint}

    @property
    def load_seconds(self) -> float:
        """Return the real backend's load time, or 0.0 while it is not loaded."""
        return self.real.load_seconds if self.real is not None else 0.0

    @property
    def head_labels(self) -> list[str] | None:
        return self._serve("head_labels", [None], lambda backend, _: [backend.head_labels])[0]

    def close(self) -> None:
        """Leave the real backend open: the model pool that loaded it closes it."""

    # Requests ---------------------------------------------------------------------------

    def loglikelihood(
        self, requests: Sequence[ChoiceRequest], progress: Progress = NoProgress()
    ) -> list[ChoiceScores]:
        return self._serve(
            "loglikelihood",
            requests,
            lambda backend, part: backend.loglikelihood(part, progress),
            progress,
        )

    def classify(
        self, texts: Sequence[tuple[str, str | None]], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        return self._serve(
            "classify", texts, lambda backend, part: backend.classify(part, progress), progress
        )

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress = NoProgress()
    ) -> list[str]:
        return self._serve(
            "generate", requests, lambda backend, part: backend.generate(part, progress), progress
        )

    def extract_answers(
        self, requests: Sequence[SpanRequest], progress: Progress = NoProgress()
    ) -> list[SpanAnswer]:
        return self._serve(
            "extract_answers",
            requests,
            lambda backend, part: backend.extract_answers(part, progress),
            progress,
        )

    def choose(
        self, requests: Sequence[MultipleChoiceRequest], progress: Progress = NoProgress()
    ) -> list[list[float]]:
        return self._serve(
            "choose", requests, lambda backend, part: backend.choose(part, progress), progress
        )

    def tag(
        self, texts: Sequence[str], progress: Progress = NoProgress()
    ) -> list[list[EntitySpan]]:
        return self._serve(
            "tag", texts, lambda backend, part: backend.tag(part, progress), progress
        )

    def embed(
        self, texts: Sequence[str], progress: Progress = NoProgress(), *, role: str = "query"
    ) -> Any:
        import numpy as np

        vectors = self._serve(
            "embed",
            texts,
            lambda backend, part: list(backend.embed(part, progress, role=role)),
            progress,
            extra={"role": role},
        )
        if not vectors:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(vectors)

    def embed_tokens(self, texts: Sequence[str], progress: Progress = NoProgress()) -> list[Any]:
        return self._serve(
            "embed_tokens",
            texts,
            lambda backend, part: backend.embed_tokens(part, progress),
            progress,
        )

    # The lookup -------------------------------------------------------------------------

    def _serve(
        self,
        method: str,
        requests: Sequence[Any],
        call: Callable[[Backend, list[Any]], Sequence[Any]],
        progress: Progress = NoProgress(),
        extra: dict[str, Any] | None = None,
    ) -> list[Any]:
        """Return stored results, and ask the real backend for the missing ones."""
        records = self._records()
        if records is None:
            return list(call(self._real(), list(requests)))

        contents = [canonical_json(request_content(method, item, extra)) for item in requests]
        digests = [hashlib.sha256(text.encode("utf-8")).hexdigest() for text in contents]
        results: list[Any] = [None] * len(requests)
        missing = []
        for index, digest in enumerate(digests):
            if digest in records:
                results[index] = decode_result(method, records[digest])
            else:
                missing.append(index)
        cached = len(requests) - len(missing)
        if method != "head_labels":
            # The head's label names are stored like a result, but they are not an example.
            self.n_cached += cached
        if cached:
            progress.advance(cached)

        # Longest first, as the backends batch, so an out-of-memory error shows early.
        missing.sort(key=lambda index: -len(contents[index]))
        chunk: list[int] = []
        choices = 0
        for index in missing:
            weight = choice_count(requests[index])
            full = (
                len(chunk) == self.cache.chunk_size or choices + weight > self.cache.chunk_choices
            )
            if chunk and full:
                self._compute(method, requests, digests, chunk, call, results, records)
                chunk, choices = [], 0
            chunk.append(index)
            choices += weight
        if chunk:
            self._compute(method, requests, digests, chunk, call, results, records)
        return results

    def _compute(self, method, requests, digests, chunk, call, results, records) -> None:
        """Ask the real backend for one chunk and append its results to the cache file."""
        outputs = list(call(self._real(), [requests[index] for index in chunk]))
        if len(outputs) != len(chunk):
            raise BackendError(
                f"model '{self.config.name}' returned {len(outputs)} results for "
                f"{len(chunk)} {method} requests"
            )

        lines = []
        unstorable = 0
        for index, output in zip(chunk, outputs):
            encoded = encode_result(method, output)
            try:
                lines.append(encode_line(digests[index], encoded))
            except ValueError:
                # NaN or infinity: return it unstored, and let the evaluator reject it.
                unstorable += 1
                results[index] = output
                continue
            records[digests[index]] = encoded
            results[index] = decode_result(method, encoded)
        if unstorable:
            logger.warning(
                "case %s: %d %s result(s) of model '%s' contain NaN or infinity, so they are "
                "not cached",
                self.case.id,
                unstorable,
                method,
                self.config.name,
            )
        self.file.append(lines)

    def _records(self) -> dict[str, Any] | None:
        """Return the case's stored results, reading the file on the first request; None
        when this case bypasses the cache."""
        if self.bypass:
            return None
        if self.records is not None:
            return self.records

        fingerprint = self.cache.fingerprint(self.config)
        if fingerprint.get("commit", "") is None:
            # A hub id with no resolvable commit: load the model and ask transformers.
            commit = self._real().identity.get("commit")
            if commit is None:
                logger.warning(
                    "model '%s': the commit of hub id %s is unknown, so case %s is not cached",
                    self.config.name,
                    self.config.path,
                    self.case.id,
                )
                self.bypass = True
                return None
            fingerprint = {**fingerprint, "commit": commit}

        key = case_key(self.case, self.task, fingerprint, self.cache.data_digest(self.data_files()))
        self.file = self.cache.file_for(key)
        self.records = self.file.read()
        if self.records is None:
            self.bypass = True
        return self.records

    def _real(self) -> Backend:
        if self.real is None:
            self.real = self.load()
        self.real.case_label = self.case.id
        return self.real
