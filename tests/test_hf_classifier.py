"""HFSequenceClassifier: pair encoding, truncation, head labels and batch-invariant logits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tiny_models import FIXTURES

from harness.backends.base import ModelConfig
from harness.backends.hf_classifier import HFSequenceClassifier
from harness.errors import BackendError
from harness.tasks import get_task
from harness.tasks.examples import load_split

FIRST = "支付宝怎么改密码"
SECOND = "如何修改支付宝的登录密码"


def load_backend(folder: Path, **overrides) -> HFSequenceClassifier:
    config = ModelConfig(
        name="tiny-bert", backend="hf-classifier", path=str(folder), device="cpu", **overrides
    )
    return HFSequenceClassifier(config)


@contextmanager
def forward_inputs(model) -> Iterator[list[dict]]:
    """Record the keyword tensors of each forward call of `model` in the block."""
    calls: list[dict] = []

    def hook(module, args, kwargs):
        calls.append({name: value.clone() for name, value in kwargs.items()})

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def afqmc_dev_pairs() -> list[tuple[str, str | None]]:
    task = get_task("afqmc")
    loaded = load_split(task, "dev", FIXTURES / "clue" / "afqmc" / "dev.json")
    return [task.classifier_text(example.fields) for example in loaded.examples]


def test_pair_encoded_with_segments(classifier_dir):
    backend = load_backend(classifier_dir)
    tokenizer = backend.tokenizer

    with forward_inputs(backend.model) as calls:
        backend.classify([(FIRST, SECOND)])

    input_ids = calls[0]["input_ids"][0].tolist()
    token_types = calls[0]["token_type_ids"][0].tolist()
    assert input_ids[0] == tokenizer.cls_token_id
    assert input_ids.count(tokenizer.sep_token_id) == 2
    assert input_ids[9] == tokenizer.sep_token_id
    assert token_types == [0] * 10 + [1] * 13


def test_single_text_has_one_segment(classifier_dir):
    backend = load_backend(classifier_dir)

    with forward_inputs(backend.model) as calls:
        backend.classify([(FIRST, None)])

    assert calls[0]["input_ids"][0].tolist().count(backend.tokenizer.sep_token_id) == 1
    assert calls[0]["token_type_ids"][0].tolist() == [0] * 10


def test_pair_truncated_longest_first(classifier_dir):
    backend = load_backend(classifier_dir, max_length=16)
    tokenizer = backend.tokenizer

    with forward_inputs(backend.model) as calls:
        backend.classify([(FIRST, SECOND)])

    input_ids = calls[0]["input_ids"][0].tolist()
    token_types = calls[0]["token_type_ids"][0].tolist()
    # 13 text tokens fit. The longer second text is cut first, then both in turn.
    assert len(input_ids) == 16
    assert token_types == [0] * 8 + [1] * 8
    assert tokenizer.decode(input_ids[1:7]).replace(" ", "") == FIRST[:6]
    assert tokenizer.decode(input_ids[8:15]).replace(" ", "") == SECOND[:7]


def test_long_text_cut_to_positions(classifier_dir):
    backend = load_backend(classifier_dir)

    with forward_inputs(backend.model) as calls:
        logits = backend.classify([(FIRST * 40, None)])

    # The tiny BERT has 256 position embeddings, and its tokenizer sets no length limit.
    assert calls[0]["input_ids"].shape[1] == 256
    assert len(logits[0]) == 2


def test_labels_from_config_id2label(classifier_dir):
    backend = load_backend(classifier_dir)

    assert backend.head_labels == ["0", "1"]


def test_spec_labels_name_generic_head(generic_classifier_dir):
    backend = load_backend(generic_classifier_dir, labels=("1", "0"))

    assert backend.head_labels == ["1", "0"]


def test_spec_labels_override_id2label(classifier_dir):
    backend = load_backend(classifier_dir, labels=("same", "different"))

    assert backend.head_labels == ["same", "different"]


def test_label_count_mismatch_rejected(classifier_dir):
    with pytest.raises(BackendError, match="lists 3 labels but the classification head has 2"):
        load_backend(classifier_dir, labels=("0", "1", "2"))


def test_generic_labels_need_spec_labels(generic_classifier_dir):
    with pytest.raises(BackendError) as raised:
        load_backend(generic_classifier_dir)

    message = str(raised.value)
    assert "LABEL_0, LABEL_1" in message
    assert "`labels:`" in message


def test_batch_logits_match_single(classifier_dir):
    backend = load_backend(classifier_dir)
    pairs = afqmc_dev_pairs()

    with forward_inputs(backend.model) as calls:
        batched = backend.classify(pairs)
    assert [call["input_ids"].shape[0] for call in calls] == [len(pairs)]
    assert len({len(first) + len(second) for first, second in pairs}) > 3

    for index, pair in enumerate(pairs):
        alone = backend.classify([pair])[0]
        for output in range(2):
            difference = abs(alone[output] - batched[index][output])
            assert difference <= 1e-5, f"pair {index}, output {output}: {difference}"
