"""HFQuestionAnswering: span search, windows over long contexts and character offsets.

Tests that need an exact answer replace the model with `MarkedLogits`, which gives high
start and end logits to chosen characters, so the best span is known in advance.
"""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tiny_models import tiny_bert_head

import harness.backends.hf_qa
from harness.backends import create_backend
from harness.backends.base import ModelConfig, SpanAnswer, SpanRequest
from harness.backends.hf_qa import HFQuestionAnswering

# Every character below is in the character tokenizer's vocabulary.
REQUESTS = [
    SpanRequest("哪个人在北京大学读书？", "王小明在北京大学读书，张三去上海银行工作。"),
    SpanRequest("明天天气怎样？", "明天天气很好"),
    SpanRequest("张三去哪里工作？", "张三去上海银行工作"),
    SpanRequest("大桥全长多少米？", "大桥全长1200米，2020年通车。" * 3),
    SpanRequest("who?", "Tom and Amy, 2020"),
]


class MarkedLogits:
    """A stand-in QA model: fixed start and end logits for chosen token ids, 0 elsewhere."""

    def __init__(self, start: dict[int, float], end: dict[int, float]) -> None:
        self.start = start
        self.end = end
        self.calls: list[torch.Tensor] = []

    def __call__(self, input_ids, **inputs):
        self.calls.append(input_ids)
        start_logits = torch.zeros(input_ids.shape)
        end_logits = torch.zeros(input_ids.shape)
        for token, value in self.start.items():
            start_logits[input_ids == token] = value
        for token, value in self.end.items():
            end_logits[input_ids == token] = value
        return SimpleNamespace(start_logits=start_logits, end_logits=end_logits)


@pytest.fixture(scope="module")
def qa_dir(model_root: Path) -> Path:
    return tiny_bert_head(model_root / "bert-qa", "BertForQuestionAnswering")


def load_backend(folder: Path, **overrides) -> HFQuestionAnswering:
    config = ModelConfig(
        name="tiny-qa", backend="hf-qa", path=str(folder), device="cpu", **overrides
    )
    return HFQuestionAnswering(config)


def mark(backend: HFQuestionAnswering, start: dict[str, float], end: dict[str, float]):
    """Replace the backend's model by MarkedLogits keyed on characters."""
    ids = backend.tokenizer.convert_tokens_to_ids
    model = MarkedLogits(
        {ids(char): value for char, value in start.items()},
        {ids(char): value for char, value in end.items()},
    )
    backend.model = model
    return model


@contextmanager
def forward_inputs(model) -> Iterator[list[torch.Tensor]]:
    calls: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        calls.append(kwargs["input_ids"].clone())

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def test_registered_as_hf_qa(qa_dir):
    config = ModelConfig(name="tiny-qa", backend="hf-qa", path=str(qa_dir), device="cpu")

    assert isinstance(create_backend(config), HFQuestionAnswering)


def test_docstring_examples_hold():
    failures, attempts = doctest.testmod(harness.backends.hf_qa)

    assert attempts > 0
    assert failures == 0


def test_answer_text_matches_offsets(qa_dir):
    backend = load_backend(qa_dir, max_length=24, options={"doc_stride": 5})

    answers = backend.extract_answers(REQUESTS)

    for index, (request, answer) in enumerate(zip(REQUESTS, answers)):
        assert answer.start >= 0, f"request {index}"
        assert answer.text != "", f"request {index}"
        assert request.context[answer.start : answer.start + len(answer.text)] == answer.text


def test_max_answer_tokens_bounds_text(qa_dir):
    backend = load_backend(qa_dir, options={"max_answer_tokens": 2})

    answers = backend.extract_answers(REQUESTS)

    # One character is one token for the character tokenizer.
    assert max(len(answer.text) for answer in answers) <= 2


def test_batched_matches_alone(qa_dir):
    backend = load_backend(qa_dir, max_length=24, options={"doc_stride": 5})

    with forward_inputs(backend.model) as calls:
        batched = backend.extract_answers(REQUESTS)
    assert len(calls) == 1

    for index, request in enumerate(REQUESTS):
        alone = backend.extract_answers([request])[0]
        assert (alone.text, alone.start) == (batched[index].text, batched[index].start)
        assert abs(alone.score - batched[index].score) <= 1e-5, f"request {index}"


def test_answer_in_second_window_found(qa_dir):
    backend = load_backend(qa_dir, max_length=17, options={"doc_stride": 2})
    model = mark(backend, start={"王": 10.0}, end={"明": 10.0})
    # "何人？" and 3 special tokens leave 11 context tokens per window, so the answer at
    # characters 16..18 is outside the first window (0..10) and inside the second (9..18).
    context = "北京大学" * 4 + "王小明"
    assert context.index("王") == 16

    answer = backend.extract_answers([SpanRequest("何人？", context)])[0]

    assert answer == SpanAnswer(text="王小明", start=16, score=20.0)
    assert [call.shape[0] for call in model.calls] == [2]


def test_best_window_wins_over_weaker(qa_dir):
    backend = load_backend(qa_dir, max_length=17, options={"doc_stride": 2})
    mark(backend, start={"张": 3.0, "王": 10.0}, end={"三": 3.0, "明": 10.0})
    context = "张三" + "北京大学" * 4 + "王小明"

    answer = backend.extract_answers([SpanRequest("何人？", context)])[0]

    assert answer == SpanAnswer(text="王小明", start=18, score=20.0)


def test_end_never_before_start(qa_dir):
    backend = load_backend(qa_dir)
    # The highest pair would be start at 明 and end at 王, which runs backwards.
    mark(backend, start={"明": 10.0}, end={"王": 10.0, "明": 1.0})

    answer = backend.extract_answers([SpanRequest("何人？", "王小明")])[0]

    assert answer == SpanAnswer(text="明", start=2, score=11.0)


def test_max_answer_tokens_limits_span(qa_dir):
    backend = load_backend(qa_dir, options={"max_answer_tokens": 2})
    mark(backend, start={"王": 10.0}, end={"明": 10.0, "小": 1.0})

    answer = backend.extract_answers([SpanRequest("何人？", "王小明")])[0]

    assert answer == SpanAnswer(text="王小", start=0, score=11.0)


def test_question_tokens_never_answer(qa_dir):
    backend = load_backend(qa_dir)
    mark(backend, start={"王": 10.0}, end={"明": 10.0})

    answer = backend.extract_answers([SpanRequest("王小明是什么人？", "北京大学")])[0]

    # Every context span scores 0, and a tie goes to the first start and the first end.
    assert answer == SpanAnswer(text="北", start=0, score=0.0)


def test_empty_context_has_no_answer(qa_dir):
    backend = load_backend(qa_dir)

    answers = backend.extract_answers([SpanRequest("何人？", ""), SpanRequest("何人？", "王小明")])

    assert answers[0] == SpanAnswer(text="", start=-1, score=0.0)
    assert answers[1].start >= 0


def test_long_question_cut(qa_dir):
    backend = load_backend(qa_dir, max_length=32)
    model = mark(backend, start={"王": 10.0}, end={"明": 10.0})

    answer = backend.extract_answers([SpanRequest("北京大学" * 20, "张三和王小明")])[0]

    # Half of the 29 text tokens go to the question: 14 tokens.
    assert backend.max_question_tokens == 14
    assert model.calls[0].shape[1] == 3 + 14 + 6
    assert answer == SpanAnswer(text="王小明", start=3, score=20.0)
