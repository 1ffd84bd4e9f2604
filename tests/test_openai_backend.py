"""The openai backend against a fault-injecting server on 127.0.0.1: retries, timeouts,
errors, ordering, progress, token attribution, spec validation and API-key masking.

The fault server's log-probabilities are sums of multiples of 1/8 (see
servers/fault_server.py), so expected log-likelihoods are exact: "a" -0.25, "b" -0.375,
"c" -0.5, "d" -0.625.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import pytest
from servers.fault_server import (
    FaultServer,
    Malformed,
    NoGeneratedEntry,
    NoLogprobs,
    Reset,
    Stall,
    Status,
)
from tiny_models import FIXTURES

from harness.backends import create_backend
from harness.backends.base import ChoiceRequest, GenerationRequest, ModelConfig
from harness.backends.http_retry import parse_retry_after
from harness.errors import BackendError, SpecError
from harness.runner import CaseRunner
from harness.spec import CaseConfig, load_spec

# The backend logs from harness.backends.openai_compat and harness.backends.http_retry.
LOGGER = "harness.backends"
KEY_ENV = "CLUE_TEST_API_KEY"


@pytest.fixture
def server():
    with FaultServer() as running:
        yield running


def backend_for(server: FaultServer, **overrides):
    values = {
        "name": "served",
        "backend": "openai",
        "path": "tiny-served",
        "base_url": server.base_url,
        "timeout": 2.0,
        "backoff": 0.01,
        **overrides,
    }
    return create_backend(ModelConfig(**values))


def retry_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name.startswith(LOGGER) and "retrying" in record.getMessage()
    ]


class Recorder:
    def __init__(self) -> None:
        self.counts: list[int] = []

    def advance(self, count: int) -> None:
        self.counts.append(count)


# Log-likelihood ---------------------------------------------------------------------------


def test_loglikelihood_exact_sums(server):
    backend = backend_for(server)

    scores = backend.loglikelihood([ChoiceRequest("ab", ("cd", "d"))])

    assert scores[0].loglikelihoods == (-1.125, -0.625)
    assert scores[0].token_counts == (2, 1)
    assert backend.straddled == 0


def test_loglikelihood_request_fields(server):
    backend = backend_for(server)

    backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    body = server.requests[0].body
    assert server.requests[0].path == "/v1/completions"
    assert body["prompt"] == "abcd"
    assert body["model"] == "tiny-served"
    assert body["max_tokens"] == 1
    assert body["echo"] is True
    assert body["logprobs"] == 1
    assert body["temperature"] == 0


def test_straddling_token_counted(caplog):
    with FaultServer(merges=["bc"]) as merged:
        backend = backend_for(merged)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            scores = backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    # Tokens "a", "bc", "d": "bc" covers the context's last character and the
    # continuation's first, so it counts for the continuation (-0.875 - 0.625).
    assert scores[0].loglikelihoods == (-1.5,)
    assert scores[0].token_counts == (2,)
    assert backend.straddled == 1
    assert "1 of 1 continuations start inside a token" in caplog.text


def test_first_token_has_no_logprob(server):
    backend = backend_for(server)

    with pytest.raises(BackendError, match="needs a non-empty context"):
        backend.loglikelihood([ChoiceRequest("", ("cd",))])


def test_chat_only_server_cannot_score(server):
    server.queue(NoLogprobs())
    backend = backend_for(server)

    with pytest.raises(BackendError) as raised:
        backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    assert "the server cannot score choices" in str(raised.value)
    assert f"POST {server.base_url}/completions" in str(raised.value)


def test_shifted_logprobs_rejected(server):
    server.queue(NoGeneratedEntry())
    backend = backend_for(server)

    with pytest.raises(BackendError) as raised:
        backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    assert "shifted by one token" in str(raised.value)
    assert "tokenizer.ggml.add_bos_token=bool:true" in str(raised.value)


def test_progress_advances_per_example(server):
    backend = backend_for(server)
    recorder = Recorder()

    backend.loglikelihood([ChoiceRequest("ab", ("c", "d")) for _ in range(3)], recorder)

    assert recorder.counts == [1, 1, 1]


# Retries and errors -----------------------------------------------------------------------


def test_retry_after_then_success(server, caplog):
    server.queue(Status(429, headers={"Retry-After": "1"}))
    backend = backend_for(server, backoff=0.0)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        scores = backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    assert len(server.requests) == 2
    assert server.requests[1].arrived - server.requests[0].arrived >= 1.0
    assert len(retry_records(caplog)) == 1
    assert scores[0].loglikelihoods == (-1.125,)


def test_five_500s_cap_three(server, caplog):
    server.queue(*[Status(500) for _ in range(5)])
    backend = backend_for(server, max_attempts=3)
    backend.case_label = "afqmc-dev-served"

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with pytest.raises(BackendError) as raised:
            backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    message = str(raised.value)
    assert len(server.requests) == 3
    assert f"POST {server.base_url}/completions" in message
    assert "failed after 3 attempts" in message
    assert "HTTP status 500" in message
    assert len(retry_records(caplog)) == 2
    ours = [record.getMessage() for record in caplog.records if record.name.startswith(LOGGER)]
    assert len(ours) == 3
    assert all("case afqmc-dev-served, example 0" in message for message in ours)


def test_case_with_500s_not_passed(tmp_path):
    failing = FaultServer(default=Status(500))
    case = CaseConfig(
        id="afqmc-dev-served",
        task="afqmc",
        split="dev",
        model="served",
        method="loglikelihood",
        spec_path="clue.yaml",
        limit=1,
    )
    runner = CaseRunner(FIXTURES / "clue", tmp_path)

    with failing, pytest.raises(BackendError, match="HTTP status 500"):
        runner.run(case, backend_for(failing, max_attempts=3))

    assert not (tmp_path / "predictions").exists()


def test_stall_retried_then_fails(server, caplog):
    server.queue(Stall(3.0), Stall(3.0))
    backend = backend_for(server, timeout=0.3, max_attempts=2)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with pytest.raises(BackendError) as raised:
            backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    assert len(server.requests) == 2
    assert len(retry_records(caplog)) == 1
    assert "timed out after 0.3 s" in str(raised.value)


def test_reset_connection_retried(server, caplog):
    server.queue(Reset())
    backend = backend_for(server)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        scores = backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    assert len(server.requests) == 2
    assert len(retry_records(caplog)) == 1
    assert "connection failed" in retry_records(caplog)[0].getMessage()
    assert scores[0].loglikelihoods == (-1.125,)


def test_malformed_json_names_endpoint(server):
    server.queue(Malformed())
    backend = backend_for(server)

    with pytest.raises(BackendError) as raised:
        backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    assert f"POST {server.base_url}/completions" in str(raised.value)
    assert "not valid JSON" in str(raised.value)
    assert len(server.requests) == 1


def test_client_error_not_retried(server):
    server.queue(Status(400, body='{"error": {"message": "bad prompt"}}'))
    backend = backend_for(server)

    with pytest.raises(BackendError, match="HTTP status 400"):
        backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    assert len(server.requests) == 1


def test_retry_after_http_date():
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("soon") is None


# Concurrency and generation ---------------------------------------------------------------


def test_concurrency_bounded_and_ordered():
    # Later prompts answer sooner, so the server finishes them out of request order.
    def delay(body: dict) -> float:
        return 0.01 * (20 - int(body["prompt"][1:]))

    with FaultServer(delay=delay) as slow:
        backend = backend_for(slow, concurrency=4)
        requests = [GenerationRequest(f"p{index}", max_new_tokens=4) for index in range(20)]
        texts = backend.generate(requests)
        finish_order = [
            seen.body["prompt"] for seen in sorted(slow.requests, key=lambda s: s.finished)
        ]

    assert slow.max_in_flight == 4
    assert texts == [f"re:p{index}" for index in range(20)]
    assert finish_order != [f"p{index}" for index in range(20)]


def test_generate_stops_client_side(server):
    backend = backend_for(server)

    texts = backend.generate([GenerationRequest("hello. more", max_new_tokens=5, stop=(".",))])

    body = server.requests[0].body
    assert texts == ["re:hello"]
    assert body["stop"] == ["."]
    assert body["max_tokens"] == 5
    assert body["temperature"] == 0


def test_generate_sends_four_stops(server):
    backend = backend_for(server)
    stop = ("1", "2", "3", "4", "l")

    texts = backend.generate([GenerationRequest("hello", max_new_tokens=5, stop=stop)])

    assert server.requests[0].body["stop"] == ["1", "2", "3", "4"]
    assert texts == ["re:he"]


def test_generate_chat_endpoint(server):
    backend = backend_for(server, endpoint="chat")

    texts = backend.generate([GenerationRequest("hi", max_new_tokens=3)])

    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].body["messages"] == [{"role": "user", "content": "hi"}]
    assert texts == ["re:hi"]


def test_generate_rejects_zero_tokens(server):
    backend = backend_for(server)

    with pytest.raises(BackendError, match="max_new_tokens must be at least 1"):
        backend.generate([GenerationRequest("hi", max_new_tokens=0)])

    assert server.requests == []


# API key ----------------------------------------------------------------------------------


def test_key_sent_as_bearer(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-bearer-check")
    backend = backend_for(server, api_key_env=KEY_ENV)

    backend.generate([GenerationRequest("hi", max_new_tokens=3)])

    assert server.requests[0].headers["Authorization"] == "Bearer sk-bearer-check"


def test_identity_hides_key(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-identity-check")
    backend = backend_for(server, api_key_env=KEY_ENV)

    identity = backend.identity

    assert identity["base_url"] == server.base_url
    assert identity["served_model"] == "tiny-served"
    assert identity["endpoint"] == "completions"
    assert "sk-identity-check" not in json.dumps(identity)


def test_missing_key_variable_fails(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)

    with pytest.raises(BackendError, match=f"environment variable {KEY_ENV}"):
        backend_for(server, api_key_env=KEY_ENV)


def test_error_text_redacts_key(server, monkeypatch):
    key = "sk-" + secrets.token_hex(12)
    monkeypatch.setenv(KEY_ENV, key)
    server.queue(Status(401, body=f'{{"error": "invalid key {key}"}}'))
    backend = backend_for(server, api_key_env=KEY_ENV)

    with pytest.raises(BackendError) as raised:
        backend.loglikelihood([ChoiceRequest("ab", ("cd",))])

    assert key not in str(raised.value)
    assert "invalid key [API key]" in str(raised.value)


TEST_MODULE = """
import pytest

from harness.plugin import assert_thresholds


@pytest.mark.clue_spec("clue.yaml")
def test_clue(clue_case, clue_evaluate):
    assert_thresholds(clue_evaluate(clue_case))
"""


def test_run_files_hide_key(server, pytester, monkeypatch):
    key = "sk-" + secrets.token_hex(16)
    monkeypatch.setenv(KEY_ENV, key)
    monkeypatch.delenv("CLUE_DATA_DIR", raising=False)
    # Model "broken" gets only errors that quote the key; model "served" works.
    failing = FaultServer(default=Status(500, body=f'{{"error": "bad key {key}"}}'))
    pytester.makepyfile(test_evals=TEST_MODULE)
    pytester.makefile(
        ".yaml",
        clue=f"""
data_root: {FIXTURES / "clue"}
models:
  served:
    backend: openai
    path: tiny-served
    base_url: {server.base_url}
    api_key_env: {KEY_ENV}
  broken:
    backend: openai
    path: tiny-served
    base_url: {failing.base_url}
    api_key_env: {KEY_ENV}
    max_attempts: 2
    backoff: 0
cases:
  - {{task: afqmc, split: dev, model: broken, limit: 2, id: broken}}
  - {{task: afqmc, split: dev, model: served, limit: 2, id: working}}
""",
    )

    with failing:
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--clue-threads=1",
            "--clue-output=out",
            "--junitxml=junit.xml",
            "--log-level=DEBUG",
            "-o",
            "log_cli=true",
            "-rA",
        )

    written = [path for path in pytester.path.rglob("*") if path.is_file()]
    leaks = [str(path) for path in written if key.encode() in path.read_bytes()]
    broken = json.loads((pytester.path / "out" / "cases" / "broken.json").read_text())
    assert result.ret == 1
    assert result.parseoutcomes().get("passed") == 1
    assert result.parseoutcomes().get("failed") == 1
    assert "HTTP status 500" in broken["error"]
    assert "[API key]" in broken["error"]
    assert leaks == []
    assert "retrying" in result.stdout.str()
    assert key not in result.stdout.str()
    assert key not in result.stderr.str()
    assert len(server.requests) == 4
    assert all(seen.headers["Authorization"] == f"Bearer {key}" for seen in server.requests)
    assert all(seen.headers["Authorization"] == f"Bearer {key}" for seen in failing.requests)


# Spec validation --------------------------------------------------------------------------


def write_spec(tmp_path: Path, model_lines: str) -> Path:
    path = tmp_path / "clue.yaml"
    path.write_text(
        "models:\n  served:\n"
        + model_lines
        + "cases:\n  - {task: afqmc, split: dev, model: served}\n",
        encoding="utf-8",
    )
    return path


def test_spec_accepts_served_model(tmp_path):
    path = write_spec(
        tmp_path,
        "    backend: openai\n    path: ./not-a-folder\n"
        "    base_url: http://127.0.0.1:8080/v1\n    api_key_env: MY_KEY\n"
        "    endpoint: chat\n    concurrency: 2\n    timeout: 5\n",
    )

    model = load_spec(path).models["served"]

    assert model.path == "./not-a-folder"
    assert model.base_url == "http://127.0.0.1:8080/v1"
    assert model.api_key_env == "MY_KEY"
    assert model.endpoint == "chat"
    assert model.concurrency == 2
    assert model.timeout == 5.0
    assert model.max_attempts == 5


def test_spec_rejects_packaged(tmp_path):
    path = write_spec(
        tmp_path,
        "    backend: openai\n    packaged: gemma-3-270m\n    base_url: http://127.0.0.1:1/v1\n",
    )

    with pytest.raises(SpecError) as raised:
        load_spec(path)

    assert str(raised.value).startswith(f"{path}:4: models.served.packaged: does not apply")


def test_spec_hides_key_value(tmp_path):
    path = write_spec(
        tmp_path,
        "    backend: openai\n    path: m\n    base_url: http://127.0.0.1:1/v1\n"
        "    api_key_env: sk-literal-secret\n",
    )

    with pytest.raises(SpecError) as raised:
        load_spec(path)

    assert f"{path}:6: models.served.api_key_env:" in str(raised.value)
    assert "sk-literal-secret" not in str(raised.value)


def test_spec_rejects_url_credentials(tmp_path):
    path = write_spec(
        tmp_path,
        "    backend: openai\n    path: m\n    base_url: https://me:pw@127.0.0.1/v1\n",
    )

    with pytest.raises(SpecError) as raised:
        load_spec(path)

    assert "models.served.base_url: invalid URL: credentials" in str(raised.value)
    assert "pw" not in str(raised.value)


def test_spec_server_keys_need_openai(tmp_path):
    path = write_spec(tmp_path, "    backend: hf-causal\n    path: m\n    timeout: 5\n")

    with pytest.raises(SpecError, match="models.served.timeout: applies only to backend 'openai'"):
        load_spec(path)


def test_spec_rejects_zero_timeout(tmp_path):
    path = write_spec(
        tmp_path,
        "    backend: openai\n    path: m\n    base_url: http://127.0.0.1:1/v1\n    timeout: 0\n",
    )

    with pytest.raises(SpecError, match="expected a number of seconds > 0, found 0"):
        load_spec(path)
