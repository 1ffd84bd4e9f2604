"""HFCausalLM.generate: greedy decoding, stop strings, limits and batch invariance.

The character tokenizer maps one character to one token. The tests also stop the model
from picking special tokens, which decode to no text, so text lengths count tokens.
"""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import harness.backends.greedy
from harness.backends.base import GenerationRequest, ModelConfig
from harness.backends.hf_causal import HFCausalLM
from harness.errors import BackendError

PROMPTS = (
    "明天天气怎样？",
    "句子一：北京大学\n答：",
    "王小明在北京大学读书",
    "张三",
    "句子一：支付宝怎么改密码\n句子二：如何修改支付宝的登录密码\n答：",
    "上海银行",
)


def load_backend(folder: Path, **overrides) -> HFCausalLM:
    """Load the backend, with a model that never picks a special token such as <bos>."""
    config = ModelConfig(
        name="tiny", backend="hf-causal", path=str(folder), device="cpu", **overrides
    )
    backend = HFCausalLM(config)
    special_ids = torch.tensor(backend.tokenizer.all_special_ids)

    def hook(module, args, kwargs, output):
        output.logits[..., special_ids] = float("-inf")
        return output

    backend.model.register_forward_hook(hook, with_kwargs=True)
    return backend


@contextmanager
def forward_inputs(model) -> Iterator[list[torch.Tensor]]:
    """Record the input ids of each forward call of `model` in the block."""
    calls: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        calls.append(kwargs["input_ids"].clone())

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


@pytest.fixture(params=["llama_dir", "gemma_dir"])
def model_dir(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def llama(llama_dir: Path) -> HFCausalLM:
    return load_backend(llama_dir)


def test_docstring_examples_hold():
    failures, attempts = doctest.testmod(harness.backends.greedy)

    assert attempts > 0
    assert failures == 0


def test_batched_matches_alone(model_dir):
    backend = load_backend(model_dir)
    # Different limits make rows finish at different steps.
    requests = [
        GenerationRequest(prompt, max_new_tokens=6 + index * 2)
        for index, prompt in enumerate(PROMPTS)
    ]

    with forward_inputs(backend.model) as calls:
        batched = backend.generate(requests)
    assert calls[0].shape[0] == len(PROMPTS)
    assert len(calls) == max(request.max_new_tokens for request in requests)

    for index, request in enumerate(requests):
        alone = backend.generate([request])[0]
        assert batched[index] == alone, f"prompt {index}"
        assert len(alone) == request.max_new_tokens, f"prompt {index}"


def test_matches_hf_generate(llama):
    tokenizer = llama.tokenizer
    for prompt in PROMPTS[:3]:
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            output = llama.model.generate(**inputs, max_new_tokens=10, do_sample=False)
        expected = tokenizer.decode(output[0, inputs.input_ids.shape[1] :])

        assert llama.generate([GenerationRequest(prompt, max_new_tokens=10)]) == [expected]


def test_stop_string_cuts_text(llama):
    prompt = PROMPTS[0]
    full = llama.generate([GenerationRequest(prompt, max_new_tokens=12)])[0]
    stop = full[5:7]
    cut = full.index(stop)

    with forward_inputs(llama.model) as calls:
        text = llama.generate([GenerationRequest(prompt, max_new_tokens=12, stop=(stop,))])[0]

    assert text == full[:cut]
    # Decoding stops at the token that completes the two-character stop string.
    assert len(calls) == cut + 2


def test_earliest_stop_string_wins(llama):
    prompt = PROMPTS[2]
    full = llama.generate([GenerationRequest(prompt, max_new_tokens=12)])[0]
    early = full[3]
    late = next(char for char in full if full.index(char) > full.index(early))

    text = llama.generate([GenerationRequest(prompt, max_new_tokens=12, stop=(late, early))])[0]

    assert text == full[: full.index(early)]


def test_empty_stop_string_ignored(llama):
    request = GenerationRequest(PROMPTS[1], max_new_tokens=5)
    full = llama.generate([request])[0]

    text = llama.generate([GenerationRequest(PROMPTS[1], max_new_tokens=5, stop=("",))])[0]

    assert text == full


def test_max_new_tokens_respected(llama):
    prompt = PROMPTS[3]
    limits = (1, 3, 7)

    texts = llama.generate([GenerationRequest(prompt, max_new_tokens=limit) for limit in limits])

    assert [len(text) for text in texts] == list(limits)
    assert texts[0] == texts[2][:1]
    assert texts[1] == texts[2][:3]


def test_zero_new_tokens_no_forward(llama):
    with forward_inputs(llama.model) as calls:
        texts = llama.generate([GenerationRequest(PROMPTS[0], max_new_tokens=0)])

    assert texts == [""]
    assert calls == []


def test_eos_ends_row_independently(llama_dir):
    backend = load_backend(llama_dir)
    short, long = GenerationRequest(PROMPTS[0], 10), GenerationRequest(PROMPTS[2], 10)
    short_full, long_full = backend.generate([short, long])
    # Pretend that the first character that only the short row generates is EOS.
    eos = next(char for char in short_full[2:] if char not in long_full)
    backend.eos_ids = frozenset({backend.tokenizer.convert_tokens_to_ids(eos)})

    texts = backend.generate([short, long])

    assert texts == [short_full[: short_full.index(eos)], long_full]


def test_eos_ids_from_generation_config(llama_dir):
    backend = load_backend(llama_dir)
    eos = backend.tokenizer.eos_token_id
    assert backend.eos_ids == frozenset({eos})

    backend.model.generation_config.eos_token_id = [eos, 7]

    assert backend._eos_token_ids() == frozenset({eos, 7})


def test_long_prompt_cut_left(llama_dir):
    backend = load_backend(llama_dir, max_length=16)
    prompt = PROMPTS[4]
    full_ids = backend.tokenizer(prompt).input_ids
    assert len(full_ids) > 16

    with forward_inputs(backend.model) as calls:
        texts = backend.generate([GenerationRequest(prompt, max_new_tokens=4)])

    # 4 positions stay free for new tokens, so BOS and the last 11 prompt tokens remain.
    assert calls[0][0].tolist() == full_ids[:1] + full_ids[-11:]
    assert len(texts[0]) == 4


def test_no_room_for_prompt_rejected(llama_dir):
    backend = load_backend(llama_dir, max_length=8)

    with pytest.raises(BackendError, match="max_new_tokens 8 leaves no room"):
        backend.generate([GenerationRequest(PROMPTS[0], max_new_tokens=8)])
