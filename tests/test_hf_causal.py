"""HFCausalLM log-likelihoods against a naive full-forward reference, on tiny random models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from tiny_models import FIXTURES

from harness.backends.base import ChoiceRequest, ModelConfig
from harness.backends.hf_causal import HFCausalLM
from harness.errors import BackendError
from harness.tasks import get_task
from harness.tasks.examples import load_split
from harness.tasks.prompting import fill

# Two single-token continuations, then a 2-token and a 4-token one (character tokenizer).
CONTINUATIONS = ("是", "否", "相同", "不同意见")
TOLERANCE = {"float32": 1e-5, "float64": 1e-9}


def fixture_prompts(count: int) -> list[str]:
    """Return `count` prompts of different lengths from the AFQMC, TNEWS and OCNLI dev files."""
    prompts = []
    for name in ("afqmc", "tnews", "ocnli"):
        task = get_task(name)
        path = FIXTURES / "clue" / task.directory / "dev.json"
        for example in load_split(task, "dev", path).examples:
            prompts.append(fill(task.prompt, example.fields))
    return prompts[:count]


def load_backend(folder: Path, dtype: str = "float32", **overrides) -> HFCausalLM:
    config = ModelConfig(
        name="tiny", backend="hf-causal", path=str(folder), device="cpu", **overrides
    )
    backend = HFCausalLM(config)
    if dtype == "float64":
        backend.model.double()
    return backend


def naive_loglikelihood(backend: HFCausalLM, context_ids: list[int], continuation: str) -> float:
    """Sum the continuation's token log-probabilities from one unpadded forward pass."""
    tokenizer = backend.tokenizer
    continuation_ids = tokenizer(continuation, add_special_tokens=False).input_ids
    input_ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        logits = backend.model(input_ids=input_ids).logits[0]
    logprobs = torch.log_softmax(logits.to(torch.float64), dim=-1)
    total = 0.0
    for offset, token in enumerate(continuation_ids):
        total += float(logprobs[len(context_ids) - 1 + offset, token])
    return total


@contextmanager
def forward_calls(model) -> Iterator[list[dict]]:
    """Record the input ids and attention mask of each forward call of `model` in the block."""
    calls: list[dict] = []

    def hook(module, args, kwargs):
        calls.append(
            {
                "input_ids": kwargs["input_ids"].clone(),
                "attention_mask": kwargs["attention_mask"].clone(),
                "context_pass": "logits_to_keep" in kwargs,
            }
        )

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


@pytest.fixture(params=["llama_dir", "gemma_dir"])
def model_dir(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def requests_32() -> list[ChoiceRequest]:
    prompts = fixture_prompts(32)
    assert len({len(prompt) for prompt in prompts}) > 10
    return [ChoiceRequest(prompt, CONTINUATIONS) for prompt in prompts]


def test_gemma_window_shorter_than_prompts(gemma_dir, requests_32):
    backend = load_backend(gemma_dir)
    lengths = [len(backend.tokenizer(request.context).input_ids) for request in requests_32]

    # Every prompt overflows the sliding-window layers' cache, which the scores must survive.
    assert backend.model.config.sliding_window == 8
    assert min(lengths) > 8


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_matches_single_example(model_dir, dtype, requests_32):
    backend = load_backend(model_dir, dtype)
    assert backend.model.dtype == getattr(torch, dtype)

    with forward_calls(backend.model) as calls:
        batched = backend.loglikelihood(requests_32)
    context_batches = [call["input_ids"].shape[0] for call in calls if call["context_pass"]]
    assert context_batches == [32]

    tolerance = TOLERANCE[dtype]
    for index, request in enumerate(requests_32):
        alone = backend.loglikelihood([request])[0]
        for choice, continuation in enumerate(CONTINUATIONS):
            difference = abs(alone.loglikelihoods[choice] - batched[index].loglikelihoods[choice])
            assert difference <= tolerance, f"example {index}, {continuation!r}: {difference}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_matches_naive_reference(model_dir, dtype, requests_32):
    backend = load_backend(model_dir, dtype)
    batched = backend.loglikelihood(requests_32)

    tolerance = TOLERANCE[dtype]
    for index, request in enumerate(requests_32):
        assert batched[index].token_counts == (1, 1, 2, 4)
        context_ids = backend.tokenizer(request.context).input_ids
        for choice, continuation in enumerate(CONTINUATIONS):
            expected = naive_loglikelihood(backend, context_ids, continuation)
            difference = abs(batched[index].loglikelihoods[choice] - expected)
            assert difference <= tolerance, f"example {index}, {continuation!r}: {difference}"


def test_bpe_continuation_tokenised_alone(bpe_llama_dir):
    backend = load_backend(bpe_llama_dir)
    tokenizer = backend.tokenizer
    context = fixture_prompts(1)[0]
    merged_id = tokenizer.convert_tokens_to_ids("答：相同")
    answer_prefix_id = tokenizer.convert_tokens_to_ids("答：")
    joint_ids = tokenizer(context + "相同", add_special_tokens=False).input_ids
    # The test means something only if joint tokenisation merges across the boundary.
    assert joint_ids[-1] == merged_id

    alone_ids = tokenizer("相同", add_special_tokens=False).input_ids
    assert backend.encode_continuation("相同") == alone_ids

    with forward_calls(backend.model) as calls:
        scores = backend.loglikelihood([ChoiceRequest(context, ("相同", "不同", "相同不同"))])[0]
    assert scores.token_counts == (1, 1, 2)

    seen = torch.cat([call["input_ids"].flatten() for call in calls]).tolist()
    assert merged_id not in seen
    context_ids = calls[0]["input_ids"][0].tolist()
    assert context_ids[-1] == answer_prefix_id

    reference_context = tokenizer(context).input_ids
    for choice, continuation in enumerate(("相同", "不同", "相同不同")):
        expected = naive_loglikelihood(backend, reference_context, continuation)
        assert abs(scores.loglikelihoods[choice] - expected) <= 1e-5, continuation


def test_left_truncation_keeps_bos(llama_dir):
    backend = load_backend(llama_dir, max_length=16)
    bos = backend.tokenizer.bos_token_id
    context = "句子一：支付宝怎么改密码\n句子二：如何修改支付宝的登录密码\n答："
    full_ids = backend.tokenizer(context).input_ids
    assert len(full_ids) == 33

    with forward_calls(backend.model) as calls:
        scores = backend.loglikelihood([ChoiceRequest(context, CONTINUATIONS)])[0]

    first = calls[0]
    kept_ids = first["input_ids"][0][first["attention_mask"][0].bool()].tolist()
    # The longest continuation has 4 tokens, so 12 context tokens fit into 16.
    assert len(kept_ids) == 12
    assert kept_ids[0] == bos
    assert kept_ids == [bos] + full_ids[-11:]

    for choice, continuation in enumerate(CONTINUATIONS):
        expected = naive_loglikelihood(backend, kept_ids, continuation)
        assert abs(scores.loglikelihoods[choice] - expected) <= 1e-5, continuation


def test_overlong_continuation_is_rejected(llama_dir):
    backend = load_backend(llama_dir, max_length=4)

    with pytest.raises(BackendError, match="longer than max_length 4"):
        backend.loglikelihood([ChoiceRequest("句子一：你好\n答：", ("不同意见",))])


def test_fixed_batch_size_matches_auto(llama_dir, requests_32):
    automatic = load_backend(llama_dir).loglikelihood(requests_32)
    fixed_backend = load_backend(llama_dir, batch_size=3)
    with forward_calls(fixed_backend.model) as calls:
        fixed = fixed_backend.loglikelihood(requests_32)

    context_batches = [call["input_ids"].shape[0] for call in calls if call["context_pass"]]
    assert max(context_batches) == 3
    assert sum(context_batches) == 32
    for index in range(32):
        for choice in range(len(CONTINUATIONS)):
            difference = abs(
                fixed[index].loglikelihoods[choice] - automatic[index].loglikelihoods[choice]
            )
            assert difference <= 1e-5, f"example {index}, choice {choice}: {difference}"
