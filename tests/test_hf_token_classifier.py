"""Tag decoding (BIO, BIOES, lenient rules), character windows and the token-classifier backend.

Backend tests with exact spans replace the model with `CharacterTags`, which tags each
token by its character, so the expected entities are known in advance.
"""

from __future__ import annotations

import doctest
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tiny_models import tiny_bert_head

import harness.backends.hf_token_classifier
import harness.backends.tagging
from harness.backends import create_backend
from harness.backends.base import EntitySpan, ModelConfig
from harness.backends.hf_token_classifier import HFTokenClassifier, plan_windows
from harness.backends.tagging import decode_entities, parse_tag
from harness.errors import BackendError

TAGS = [
    "O",
    "B-name",
    "I-name",
    "E-name",
    "S-name",
    "B-company",
    "I-company",
    "E-company",
    "S-company",
]


class CharacterTags:
    """A stand-in tagger: a fixed tag per token id, "O" for every other token.

    With `blind_edges`, the first and last text token of each window are tagged "O", so
    only a character that is away from a window's edge gets its own tag.
    """

    def __init__(self, tag_ids: dict[int, int], *, blind_edges: bool = False) -> None:
        self.tag_ids = tag_ids
        self.blind_edges = blind_edges
        self.calls: list[torch.Tensor] = []

    def __call__(self, input_ids, attention_mask, **inputs):
        self.calls.append(input_ids)
        logits = torch.zeros((*input_ids.shape, len(TAGS)))
        logits[..., 0] = 1.0
        for token, tag in self.tag_ids.items():
            logits[input_ids == token, tag] = 5.0
        if self.blind_edges:
            for row, length in enumerate(attention_mask.sum(dim=1).tolist()):
                # Positions 0 and length - 1 hold [CLS] and [SEP].
                for position in (1, length - 2):
                    logits[row, position] = 0.0
                    logits[row, position, 0] = 9.0
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def tagger_dir(model_root: Path) -> Path:
    return tiny_bert_head(model_root / "bert-tagger", "BertForTokenClassification", labels=TAGS)


def load_backend(folder: Path, **overrides) -> HFTokenClassifier:
    config = ModelConfig(
        name="tiny-tagger",
        backend="hf-token-classifier",
        path=str(folder),
        device="cpu",
        **overrides,
    )
    return HFTokenClassifier(config)


def mark(backend: HFTokenClassifier, tags: dict[str, str], **kwargs) -> CharacterTags:
    """Replace the backend's model by CharacterTags keyed on characters and tag names."""
    ids = backend.tokenizer.convert_tokens_to_ids
    model = CharacterTags({ids(char): TAGS.index(tag) for char, tag in tags.items()}, **kwargs)
    backend.model = model
    return model


def spans(*rows: tuple[str, int, int, str]) -> list[EntitySpan]:
    return [EntitySpan(*row) for row in rows]


def test_bio_golden_spans():
    text = "张三去上海银行工作"
    tags = ["B-name", "I-name", "O", "B-company", "I-company", "I-company", "I-company", "O", "O"]

    found = decode_entities(text, tags)

    assert found == spans(("name", 0, 1, "张三"), ("company", 3, 6, "上海银行"))


def test_bioes_golden_spans():
    text = "王小明在北京大学读书"
    tags = ["B-name", "M-name", "E-name", "O", "B-org", "I-org", "I-org", "E-org", "S-book", "O"]

    found = decode_entities(text, tags)

    assert found == spans(("name", 0, 2, "王小明"), ("org", 4, 7, "北京大学"), ("book", 8, 8, "读"))


def test_end_offsets_are_inclusive():
    text = "张三去上海"
    found = decode_entities(text, ["B-name", "E-name", "O", "B-address", "I-address"])

    for span in found:
        assert text[span.start : span.end + 1] == span.text
    assert [span.end for span in found] == [1, 4]


def test_i_without_b_starts_entity():
    found = decode_entities("去上海银行", ["O", "I-address", "I-address", "I-company", "I-company"])

    assert found == spans(("address", 1, 2, "上海"), ("company", 3, 4, "银行"))


def test_b_after_b_splits_entities():
    found = decode_entities("张三李四", ["B-name", "I-name", "B-name", "I-name"])

    assert found == spans(("name", 0, 1, "张三"), ("name", 2, 3, "李四"))


def test_e_without_begin_is_single():
    found = decode_entities("张三去", ["O", "E-name", "O"])

    assert found == spans(("name", 1, 1, "三"))


def test_entity_closed_by_e_then_i():
    found = decode_entities("张三李", ["B-name", "E-name", "I-name"])

    assert found == spans(("name", 0, 1, "张三"), ("name", 2, 2, "李"))


def test_untagged_character_inside_entity():
    found = decode_entities("Tom Li", ["B-name", "I-name", "I-name", None, "I-name", "I-name"])

    assert found == spans(("name", 0, 5, "Tom Li"))


def test_tag_count_mismatch_rejected():
    with pytest.raises(ValueError, match="got 2 tags for a text of 3 characters"):
        decode_entities("张三去", ["B-name", "I-name"])


def test_parse_tag_other_labels_outside():
    assert parse_tag("X") == ("O", "")
    assert parse_tag("[END]") == ("O", "")
    assert parse_tag("S_game") == ("S", "game")


@pytest.mark.parametrize(
    ("counts", "room", "overlap", "expected"),
    [
        ([1] * 10, 4, 1, [(0, 4), (3, 7), (6, 10)]),
        ([1] * 8, 4, 0, [(0, 4), (4, 8)]),
        ([1] * 3, 4, 2, [(0, 3)]),
        ([1, 2, 1, 2, 1], 3, 3, [(0, 2), (1, 3), (2, 4), (3, 5)]),
        # A character without tokens costs nothing, so a window may start on it.
        ([0, 1, 1, 0, 1], 2, 0, [(0, 4), (3, 5)]),
    ],
)
def test_plan_windows_cases(counts, room, overlap, expected):
    assert plan_windows(counts, room, overlap) == expected


def test_plan_windows_oversized_character():
    with pytest.raises(ValueError, match="character 1 has 3 tokens"):
        plan_windows([1, 3, 1], 2, 0)


@pytest.mark.parametrize("module", [harness.backends.tagging, harness.backends.hf_token_classifier])
def test_docstring_examples_hold(module):
    failures, attempts = doctest.testmod(module)

    assert attempts > 0
    assert failures == 0


def test_registered_as_token_classifier(tagger_dir):
    config = ModelConfig(
        name="tiny-tagger", backend="hf-token-classifier", path=str(tagger_dir), device="cpu"
    )

    assert isinstance(create_backend(config), HFTokenClassifier)


def test_backend_tags_each_character(tagger_dir):
    backend = load_backend(tagger_dir)
    model = mark(
        backend,
        {"张": "B-name", "三": "I-name", "上": "B-company", "海": "I-company", "银": "E-company"},
    )

    found = backend.tag(["张三去上海银行工作", "", "北京"])

    assert found == [
        spans(("name", 0, 1, "张三"), ("company", 3, 5, "上海银")),
        [],
        [],
    ]
    # One token per character, plus [CLS] and [SEP].
    assert model.calls[0].shape == (2, 11)


def test_long_text_windows_keep_entities(tagger_dir):
    backend = load_backend(tagger_dir, max_length=12, options={"stride": 4})
    model = mark(
        backend,
        {"张": "B-name", "三": "I-name", "上": "B-company", "海": "I-company", "银": "I-company"},
        blind_edges=True,
    )
    filler = "北京大学"
    text = filler * 2 + "上海银" + filler * 3 + "张三" + filler * 3 + "张三" + "读"
    # Windows of 10 characters overlap by 4 and start at 0, 6, 12, 18, 24 and 30.
    assert len(text) == 40
    entity_starts = [8, 23, 37]
    assert [text.index("上"), text.index("张"), text.rindex("张")] == entity_starts

    found = backend.tag([text])[0]

    assert found == spans(
        ("company", 8, 10, "上海银"), ("name", 23, 24, "张三"), ("name", 37, 38, "张三")
    )
    assert [call.shape[0] for call in model.calls] == [6]


def test_window_edges_blind_alone(tagger_dir):
    # Without overlap, 海 ends the first window and 银 starts the second, so CharacterTags
    # tags both "O" and only 上 remains of "上海银".
    backend = load_backend(tagger_dir, max_length=12, options={"stride": 0})
    mark(
        backend,
        {"上": "B-company", "海": "I-company", "银": "I-company"},
        blind_edges=True,
    )
    text = "北京大学北京大学上海银北京大学"

    found = backend.tag([text])[0]

    assert found == spans(("company", 8, 8, "上"))


def test_batched_matches_alone(tagger_dir):
    backend = load_backend(tagger_dir, max_length=16, options={"stride": 4})
    texts = ["张三去上海银行工作", "王小明在北京大学读书", "北京" * 20, "Tom Li, 2020"]

    batched = backend.tag(texts)

    for index, text in enumerate(texts):
        assert backend.tag([text])[0] == batched[index], f"text {index}"


def test_generic_labels_rejected(model_root):
    folder = tiny_bert_head(model_root / "bert-tagger-generic", "BertForTokenClassification")

    with pytest.raises(BackendError, match="contain no B-, I-, E-, M- or S- entity tags"):
        load_backend(folder)


def test_spec_labels_name_head(tagger_dir):
    labels = tuple(tag.replace("company", "organization") for tag in TAGS)

    backend = load_backend(tagger_dir, labels=labels)

    assert backend.tags[5] == "B-organization"


def test_stride_too_long_rejected(tagger_dir):
    with pytest.raises(BackendError, match="options.stride 10 must be smaller than the 10"):
        load_backend(tagger_dir, max_length=12, options={"stride": 10})
