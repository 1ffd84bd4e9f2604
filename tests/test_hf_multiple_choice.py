"""HFMultipleChoice: one logit per choice, batching by choice count, passage-only truncation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_bert_head

from harness.backends import create_backend
from harness.backends.base import ModelConfig, MultipleChoiceRequest
from harness.backends.hf_multiple_choice import HFMultipleChoice
from harness.errors import BackendError

REQUESTS = [
    MultipleChoiceRequest("明天天气很好", "明天天气怎样？", ("很好", "下雨")),
    MultipleChoiceRequest(
        "王小明在北京大学读书，张三去上海银行工作。", "张三在哪里工作？", ("北京", "上海", "大学")
    ),
    MultipleChoiceRequest(
        "大桥全长1200米", "大桥全长多少米？", ("1200米", "200米", "12米", "20米")
    ),
    MultipleChoiceRequest("张三去上海", "哪个人去上海？", ("张三", "王小明")),
]


@pytest.fixture(scope="module")
def choice_dir(model_root: Path) -> Path:
    return tiny_bert_head(model_root / "bert-choice", "BertForMultipleChoice")


def load_backend(folder: Path, **overrides) -> HFMultipleChoice:
    config = ModelConfig(
        name="tiny-choice",
        backend="hf-multiple-choice",
        path=str(folder),
        device="cpu",
        **overrides,
    )
    return HFMultipleChoice(config)


@contextmanager
def forward_inputs(model) -> Iterator[list[dict[str, torch.Tensor]]]:
    calls: list[dict[str, torch.Tensor]] = []

    def hook(module, args, kwargs):
        calls.append({name: value.clone() for name, value in kwargs.items()})

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def test_registered_as_multiple_choice(choice_dir):
    config = ModelConfig(
        name="tiny-choice", backend="hf-multiple-choice", path=str(choice_dir), device="cpu"
    )

    assert isinstance(create_backend(config), HFMultipleChoice)


def test_score_count_matches_choices(choice_dir):
    backend = load_backend(choice_dir)

    scores = backend.choose(REQUESTS)

    assert [len(row) for row in scores] == [2, 3, 4, 2]


def test_batched_matches_alone(choice_dir):
    backend = load_backend(choice_dir)

    batched = backend.choose(REQUESTS)

    for index, request in enumerate(REQUESTS):
        alone = backend.choose([request])[0]
        for choice in range(len(request.choices)):
            difference = abs(alone[choice] - batched[index][choice])
            assert difference <= 1e-5, f"request {index}, choice {choice}: {difference}"


def test_batches_grouped_by_choice_count(choice_dir):
    backend = load_backend(choice_dir)

    with forward_inputs(backend.model) as calls:
        backend.choose(REQUESTS)

    shapes = [tuple(call["input_ids"].shape[:2]) for call in calls]
    assert shapes == [(1, 4), (1, 3), (2, 2)]


def test_passage_cut_choice_kept(choice_dir):
    backend = load_backend(choice_dir, max_length=16)
    tokenizer = backend.tokenizer
    request = MultipleChoiceRequest("王小明在北京大学读书，" * 3, "哪个人在读书？", ("王小明",))

    with forward_inputs(backend.model) as calls:
        backend.choose([request])

    input_ids = calls[0]["input_ids"][0, 0].tolist()
    token_types = calls[0]["token_type_ids"][0, 0].tolist()
    # 13 text tokens fit: the 10 of question and choice, and the first 3 of the passage.
    assert len(input_ids) == 16
    assert token_types == [0] * 5 + [1] * 11
    assert tokenizer.decode(input_ids[1:4]) == "王小明"
    assert tokenizer.decode(input_ids[5:15]) == "哪个人在读书？王小明"


def test_no_room_for_passage_rejected(choice_dir):
    backend = load_backend(choice_dir, max_length=10)
    request = MultipleChoiceRequest("明天天气很好", "明天天气怎样？", ("很好",))

    with pytest.raises(BackendError, match="request 0: the question and choice '很好' take 9"):
        backend.choose([request])


def test_no_choices_no_scores(choice_dir):
    backend = load_backend(choice_dir)

    scores = backend.choose([MultipleChoiceRequest("明天", "怎样？", ()), REQUESTS[0]])

    assert scores[0] == []
    assert len(scores[1]) == 2
