"""The prediction cache: keys, reruns, kills, concurrent appends, torn lines and exact values.

Cases run on the fixture AFQMC dev set (12 rows, full tier) with a counting stand-in for a
causal LM (tests/cache_helpers.py), whose scores depend on the model's label and the text.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cache_helpers import (
    CHUNK_SIZE,
    CountingBackend,
    afqmc_case,
    make_model_folder,
    model_config,
    run_case,
)
from servers.fault_server import FaultServer
from tiny_models import FIXTURES

import harness.cache
import harness.data.file_hashes
from harness.backends import create_backend
from harness.backends.base import ChoiceRequest, ChoiceScores, ModelConfig
from harness.cache import CachedBackend, PredictionCache
from harness.cache_file import CacheFile
from harness.data.file_hashes import FileHashes

ROWS = 12
HELPERS = Path(__file__).parent / "cache_helpers.py"
KEY_ENV = "CLUE_TEST_CACHE_API_KEY"


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A copy of the fixture AFQMC files, which a test may change."""
    root = tmp_path / "data"
    shutil.copytree(FIXTURES / "clue" / "afqmc", root / "afqmc")
    return root


@pytest.fixture
def model_a(tmp_path: Path) -> Path:
    return make_model_folder(tmp_path / "model-a", b"weights of model A")


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl"))


def record_lines(path: Path) -> list[str]:
    """Return the record lines of a cache file, without the header."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if '"cache_key"' not in line]


def prediction_records(result) -> list[dict]:
    text = Path(result.predictions_file).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


# Reruns and models ----------------------------------------------------------------------


def test_second_model_computes_own(tmp_path, data_root, model_a):
    cache = tmp_path / "cache"
    model_b = make_model_folder(tmp_path / "model-b", b"weights of model B")
    case = afqmc_case(tmp_path)
    backend_a = CountingBackend(model_config(model_a), label="a")
    backend_b = CountingBackend(model_config(model_b), label="b")

    result_a, _ = run_case(cache, data_root, tmp_path / "out-a", case, backend_a.config, backend_a)
    result_b, loads_b = run_case(
        cache, data_root, tmp_path / "out-b", case, backend_b.config, backend_b
    )

    assert len(backend_b.requests) == ROWS
    assert loads_b == 1
    assert result_b.n_cached == 0
    assert len(cache_files(cache)) == 2
    scores_a = [record["scores"] for record in prediction_records(result_a)]
    scores_b = [record["scores"] for record in prediction_records(result_b)]
    assert all(a != b for a, b in zip(scores_a, scores_b))


def test_rerun_makes_no_calls(tmp_path, data_root, model_a):
    cache = tmp_path / "cache"
    case = afqmc_case(tmp_path)
    first_backend = CountingBackend(model_config(model_a))
    second_backend = CountingBackend(model_config(model_a))

    first, first_loads = run_case(
        cache, data_root, tmp_path / "out-1", case, first_backend.config, first_backend
    )
    second, second_loads = run_case(
        cache, data_root, tmp_path / "out-2", case, second_backend.config, second_backend
    )

    assert first_loads == 1
    assert [len(call) for call in first_backend.calls] == [CHUNK_SIZE] * (ROWS // CHUNK_SIZE)
    assert first.n_cached == 0
    assert second_loads == 0
    assert second_backend.calls == []
    assert second.n_cached == ROWS
    assert second.load_seconds == 0.0
    assert second.metrics == first.metrics
    assert prediction_records(second) == prediction_records(first)
    assert second.model_identity == first.model_identity


def test_uncached_run_matches_cached(tmp_path, data_root, model_a):
    case = afqmc_case(tmp_path)
    plain_backend = CountingBackend(model_config(model_a))
    cached_backend = CountingBackend(model_config(model_a))

    plain, _ = run_case(
        None, data_root, tmp_path / "out-1", case, plain_backend.config, plain_backend
    )
    cached, _ = run_case(
        tmp_path / "cache",
        data_root,
        tmp_path / "out-2",
        case,
        cached_backend.config,
        cached_backend,
    )

    assert cached.metrics == plain.metrics
    assert prediction_records(cached) == prediction_records(plain)


# What the key contains -----------------------------------------------------------------


def change_weights(tmp_path, data_root, config, case):
    (Path(config.path) / "model.safetensors").write_bytes(b"retrained weights")
    return config, case, data_root


def move_model(tmp_path, data_root, config, case):
    moved = shutil.copytree(config.path, tmp_path / "moved-model")
    return dataclasses.replace(config, path=str(moved)), case, data_root


def change_data_file(tmp_path, data_root, config, case):
    path = data_root / "afqmc" / "dev.json"
    row = {"sentence1": "花呗怎么还款", "sentence2": "借呗如何还钱", "label": "0"}
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    return config, case, data_root


def bustm_with_afqmc_rows(tmp_path, data_root, config, case):
    """FewCLUE bustm has AFQMC's fields, prompt and verbalizers, so the same rows send
    the same requests under another task name."""
    folder = data_root / "fewclue" / "bustm"
    folder.mkdir(parents=True)
    lines = (data_root / "afqmc" / "dev.json").read_text(encoding="utf-8").splitlines()
    rows = [{"id": index, **json.loads(line)} for index, line in enumerate(lines)]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    (folder / "dev_few_all.json").write_text(text, encoding="utf-8")
    return config, dataclasses.replace(case, task="fewclue-bustm", split="dev_few_all"), data_root


def model_field(**changes):
    def change(tmp_path, data_root, config, case):
        return dataclasses.replace(config, **changes), case, data_root

    change.__name__ = "model_" + "_".join(changes)
    return change


def case_field(**changes):
    def change(tmp_path, data_root, config, case):
        return config, dataclasses.replace(case, **changes), data_root

    change.__name__ = "case_" + "_".join(changes)
    return change


def harness_version(tmp_path, data_root, config, case):
    return config, case, data_root


# Each change and whether the changed run sends exactly the requests of the first run, so
# that only the key can make it miss.
KEY_CHANGES = [
    (change_weights, True),
    (move_model, True),
    (model_field(revision="v2"), True),
    (model_field(backend="openai"), True),
    (model_field(dtype="bfloat16"), True),
    (model_field(device="cuda"), True),
    (model_field(max_length=64), True),
    (model_field(trust_remote_code=True), True),
    (model_field(labels=("0", "1")), True),
    (model_field(options={"pooling": "cls"}), True),
    (bustm_with_afqmc_rows, True),
    (change_data_file, False),
    (case_field(prompt="甲：{sentence1}\n乙：{sentence2}\n问：意思相同吗？\n答："), False),
    (case_field(method="classifier"), False),
    (case_field(shots=1), False),
    (case_field(seed=99), True),
    (case_field(verbalizers={"0": "否", "1": "是"}), False),
    (case_field(length_normalization="tokens"), True),
    (case_field(options={"max_new_tokens": 8}), True),
    (harness_version, True),
]


@pytest.mark.parametrize(
    ("change", "same_requests"), KEY_CHANGES, ids=[change.__name__ for change, _ in KEY_CHANGES]
)
def test_key_change_misses(tmp_path, data_root, model_a, monkeypatch, change, same_requests):
    cache = tmp_path / "cache"
    config = model_config(model_a)
    case = afqmc_case(tmp_path)
    first = CountingBackend(config)
    run_case(cache, data_root, tmp_path / "out-1", case, config, first)

    config, case, data_root = change(tmp_path, data_root, config, case)
    if change is harness_version:
        monkeypatch.setattr(harness.cache, "__version__", "99.0.0")
    second = CountingBackend(config)
    result, loads = run_case(cache, data_root, tmp_path / "out-2", case, config, second)

    assert loads == 1
    assert result.n_cached == 0
    assert len(second.requests) == result.n_selected
    if same_requests:
        assert second.requests == first.requests


def test_hub_commit_change_misses(tmp_path, data_root, monkeypatch):
    hub = tmp_path / "hub"
    repo = hub / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    for commit in ("a" * 40, "b" * 40):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    config = model_config(Path("unused"), path="org/tiny")
    case = afqmc_case(tmp_path)

    (repo / "refs" / "main").write_text("a" * 40, encoding="utf-8")
    first = CountingBackend(config)
    first_result, _ = run_case(tmp_path / "cache", data_root, tmp_path / "o1", case, config, first)
    (repo / "refs" / "main").write_text("b" * 40, encoding="utf-8")
    second = CountingBackend(config)
    second_result, _ = run_case(
        tmp_path / "cache", data_root, tmp_path / "o2", case, config, second
    )

    assert first_result.model_identity["commit"] == "a" * 40
    assert second_result.model_identity["commit"] == "b" * 40
    assert second_result.n_cached == 0
    assert second.requests == first.requests


@pytest.mark.parametrize(
    "changes",
    [{"base_url": "http://127.0.0.1:9/v1"}, {"path": "other-model"}, {"endpoint": "chat"}],
    ids=["base_url", "served_model", "endpoint"],
)
def test_served_model_change_misses(tmp_path, data_root, changes):
    config = ModelConfig(
        name="served", backend="openai", path="tiny-served", base_url="http://127.0.0.1:8/v1"
    )
    case = afqmc_case(tmp_path)
    run_case(tmp_path / "cache", data_root, tmp_path / "o1", case, config, CountingBackend(config))

    changed = dataclasses.replace(config, **changes)
    backend = CountingBackend(changed)
    result, _ = run_case(tmp_path / "cache", data_root, tmp_path / "o2", case, changed, backend)

    assert result.n_cached == 0
    assert len(backend.requests) == ROWS


def test_served_settings_keep_hits(tmp_path, data_root):
    config = ModelConfig(
        name="served", backend="openai", path="tiny-served", base_url="http://127.0.0.1:8/v1"
    )
    case = afqmc_case(tmp_path)
    run_case(tmp_path / "cache", data_root, tmp_path / "o1", case, config, CountingBackend(config))

    changed = dataclasses.replace(
        config, name="renamed", api_key_env="OTHER_KEY", concurrency=1, timeout=5.0
    )
    backend = CountingBackend(changed)
    result, _ = run_case(tmp_path / "cache", data_root, tmp_path / "o2", case, changed, backend)

    assert result.n_cached == ROWS
    assert backend.requests == []


# Kills, concurrency and torn lines ----------------------------------------------------


def test_sigkill_rerun_scores_missing(tmp_path, data_root, model_a):
    cache = tmp_path / "cache"
    command = [
        sys.executable,
        str(HELPERS),
        str(cache),
        str(data_root),
        str(tmp_path / "killed-out"),
        str(model_a),
        "0.4",
    ]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(HELPERS.parent)})
    recorded = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        files = cache_files(cache)
        recorded = len(record_lines(files[0])) if files else 0
        if recorded >= 4:
            break
        time.sleep(0.02)
    still_running = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    recorded = len(record_lines(cache_files(cache)[0]))

    config = model_config(model_a)
    resumed_backend = CountingBackend(config)
    resumed, _ = run_case(
        cache, data_root, tmp_path / "resumed-out", afqmc_case(data_root), config, resumed_backend
    )
    whole_backend = CountingBackend(config)
    whole, _ = run_case(
        tmp_path / "fresh-cache",
        data_root,
        tmp_path / "whole-out",
        afqmc_case(data_root),
        config,
        whole_backend,
    )

    assert still_running
    assert process.returncode == -signal.SIGKILL
    assert 4 <= recorded < ROWS
    assert len(resumed_backend.requests) == ROWS - recorded
    assert resumed.n_cached == recorded
    assert resumed.metrics == whole.metrics
    assert prediction_records(resumed) == prediction_records(whole)


APPEND_SCRIPT = """
import sys
from pathlib import Path
from harness.cache_file import CacheFile, encode_line

path, writer = Path(sys.argv[1]), sys.argv[2]
file = CacheFile(path, {"task": "afqmc", "test": "concurrent"})
padding = "字" * 1500
for batch in range(150):
    file.append(
        [encode_line(f"{writer}-{batch}-{item}", {"text": padding}) for item in range(5)]
    )
"""


def test_concurrent_appends_keep_records(tmp_path):
    path = tmp_path / "cache" / "shared.jsonl"
    writers = [
        subprocess.Popen([sys.executable, "-c", APPEND_SCRIPT, str(path), name])
        for name in ("w0", "w1")
    ]
    codes = [writer.wait(timeout=120) for writer in writers]

    lines = path.read_text(encoding="utf-8").split("\n")
    parsed = [json.loads(line) for line in lines[:-1]]
    requests = [item["request"] for item in parsed[1:]]
    expected = {
        f"{name}-{batch}-{item}"
        for name in ("w0", "w1")
        for batch in range(150)
        for item in range(5)
    }
    records = CacheFile(path, {"task": "afqmc", "test": "concurrent"}).read()

    assert codes == [0, 0]
    assert lines[-1] == ""
    assert "cache_key" in parsed[0]
    assert len(requests) == 1500
    assert set(requests) == expected
    assert set(records) == expected


def test_torn_last_line_skipped(tmp_path, data_root, model_a, caplog):
    cache = tmp_path / "cache"
    case = afqmc_case(tmp_path)
    config = model_config(model_a)
    run_case(cache, data_root, tmp_path / "o1", case, config, CountingBackend(config))
    path = cache_files(cache)[0]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # Drop the last two records and leave half of one of them, as a kill mid-write would.
    path.write_text("".join(lines[:-2]) + lines[-1][: len(lines[-1]) // 2], encoding="utf-8")

    backend = CountingBackend(config)
    result, _ = run_case(cache, data_root, tmp_path / "o2", case, config, backend)
    third = CountingBackend(config)
    rerun, _ = run_case(cache, data_root, tmp_path / "o3", case, config, third)

    assert len(backend.requests) == 2
    assert result.n_cached == ROWS - 2
    assert "skipped 1 unreadable line(s)" in caplog.text
    assert third.requests == []
    assert rerun.n_cached == ROWS


# Values, secrets and file digests -------------------------------------------------------


def cached_backend(tmp_path: Path, model_a: Path, backend) -> CachedBackend:
    cache = PredictionCache(tmp_path / "cache", tmp_path / "models", chunk_size=CHUNK_SIZE)
    return CachedBackend(
        cache, backend.config, lambda: backend, afqmc_case(tmp_path), None, lambda: []
    )


class FixedScores(CountingBackend):
    """Returns `values` as the scores of the first continuation, one request after another."""

    def __init__(self, config, values):
        super().__init__(config)
        self.values = values

    def loglikelihood(self, requests, progress=None):
        self.calls.append(list(requests))
        return [ChoiceScores((self.values.pop(0), -1.0), (1, 1)) for _ in requests]


def test_floats_round_trip_exactly(tmp_path, model_a):
    values = [0.1 + 0.2, -1e-310, 5e-324, -1234.5678901234567, float(np.float32(0.3)), -0.0]
    requests = [ChoiceRequest(f"context {index}", ("a", "b")) for index in range(len(values))]
    config = model_config(model_a)

    computed = cached_backend(tmp_path, model_a, FixedScores(config, list(values)))
    first = computed.loglikelihood(requests)
    served = cached_backend(tmp_path, model_a, FixedScores(config, []))
    second = served.loglikelihood(requests)

    assert [answer.loglikelihoods[0] for answer in first] == values
    assert [answer.loglikelihoods[0].hex() for answer in second] == [v.hex() for v in values]
    assert served.n_cached == len(values)


def test_embeddings_keep_dtype(tmp_path, model_a):
    class Embedder(CountingBackend):
        def embed(self, texts, progress=None, *, role="query"):
            self.calls.append(list(texts))
            return np.array([[len(text) / 3, -1 / 7] for text in texts], dtype=np.float32)

    config = model_config(model_a, backend="hf-embedding")
    computed = cached_backend(tmp_path, model_a, Embedder(config))
    first = computed.embed(["今天", "天气很好"], role="passage")
    embedder = Embedder(config)
    served = cached_backend(tmp_path, model_a, embedder)
    second = served.embed(["今天", "天气很好"], role="passage")
    other_role = served.embed(["今天"], role="query")

    assert second.dtype == np.float32
    assert np.array_equal(second, first)
    assert embedder.calls == [["今天"]]
    assert other_role.shape == (1, 2)


def test_nan_answer_not_stored(tmp_path, model_a):
    config = model_config(model_a)
    requests = [ChoiceRequest(f"context {index}", ("a", "b")) for index in range(3)]
    computed = cached_backend(tmp_path, model_a, FixedScores(config, [-0.5, math.nan, -1.5]))

    answers = computed.loglikelihood(requests)

    text = cache_files(tmp_path / "cache")[0].read_text(encoding="utf-8")
    assert math.isnan(answers[1].loglikelihoods[0])
    assert len(record_lines(cache_files(tmp_path / "cache")[0])) == 2
    assert "NaN" not in text


def test_api_key_never_stored(tmp_path, data_root, monkeypatch):
    key = "sk-cache-secret-4c1d9e"
    monkeypatch.setenv(KEY_ENV, key)
    cache = tmp_path / "cache"
    with FaultServer() as server:
        config = ModelConfig(
            name="served",
            backend="openai",
            path="tiny-served",
            base_url=server.base_url,
            api_key_env=KEY_ENV,
        )
        backend = create_backend(config)
        result, _ = run_case(
            cache, data_root, tmp_path / "out", afqmc_case(tmp_path), config, backend
        )
        seen = server.requests[0].headers["Authorization"]

    stored = [
        path.read_text(encoding="utf-8") for path in sorted(cache.rglob("*")) if path.is_file()
    ]
    assert seen == f"Bearer {key}"
    assert result.n_selected == ROWS
    assert len(stored) >= 1
    assert all(key not in text for text in stored)
    assert key not in json.dumps(result.model_identity)


def test_file_digests_memoised(tmp_path, monkeypatch):
    folder = make_model_folder(tmp_path / "model", b"weights")
    store = tmp_path / "memo.json"
    first = FileHashes(store).folder_digest(folder)
    reads = []
    original = harness.data.file_hashes.sha256_file
    monkeypatch.setattr(
        harness.data.file_hashes,
        "sha256_file",
        lambda path: reads.append(Path(path).name) or original(path),
    )

    again = FileHashes(store).folder_digest(folder)
    (folder / "model.safetensors").write_bytes(b"weights, changed")
    changed = FileHashes(store).folder_digest(folder)

    assert again == first
    assert changed != first
    assert reads == ["model.safetensors"]


def test_clear_removes_cache_files(tmp_path, data_root, model_a):
    cache = tmp_path / "cache"
    config = model_config(model_a)
    run_case(
        cache, data_root, tmp_path / "o1", afqmc_case(tmp_path), config, CountingBackend(config)
    )
    unrelated = cache / "notes.txt"
    unrelated.write_text("kept", encoding="utf-8")

    removed = PredictionCache(cache, tmp_path / "models").clear()

    assert removed == 4
    assert sorted(path.name for path in cache.iterdir()) == ["notes.txt"]


def test_many_choices_shorten_chunks(tmp_path, model_a):
    config = model_config(model_a)
    backend = CountingBackend(config)
    cache = PredictionCache(tmp_path / "cache", tmp_path / "models", chunk_size=4, chunk_choices=10)
    cached = CachedBackend(cache, config, lambda: backend, afqmc_case(tmp_path), None, lambda: [])
    requests = [ChoiceRequest(f"context {index}", ("a", "b", "c", "d")) for index in range(5)]

    cached.loglikelihood(requests)

    assert [len(call) for call in backend.calls] == [2, 2, 1]
    assert len(record_lines(cache_files(tmp_path / "cache")[0])) == 5
