"""Tiny random models and tokenizers built at test time, so tests need no download.

The character tokenizer covers every character of the fixtures and prompts; the BPE
tokenizer is trained so that some merges cross the point where a prompt ends and a
verbalizer starts, which is what the log-likelihood code must not let happen.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from harness.tasks import TASKS

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def corpus_characters() -> list[str]:
    """Every character in the fixtures, the task prompts and the label words."""
    text = []
    for path in sorted(FIXTURES.rglob("*.json")):
        text.append(path.read_text(encoding="utf-8"))
    for task in TASKS.values():
        text.append(task.prompt)
        text.extend(label.verbalizer + label.name + label.id for label in task.labels)
    text.append(
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ，。？！：；、_[]{}\"' \n"
    )
    return sorted(set("".join(text)))


def char_tokenizer(
    folder: Path, *, bos: bool = True, cls_sep: bool = False
) -> PreTrainedTokenizerFast:
    """Save a character-level tokenizer into `folder` and return it."""
    vocab = {token: index for index, token in enumerate(SPECIALS)}
    for char in corpus_characters():
        vocab.setdefault(char, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    # Join decoded characters without the space that a WordLevel model puts between tokens.
    backend.decoder = decoders.Fuse()
    if bos:
        from tokenizers import processors

        backend.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
        )
    if cls_sep:
        from tokenizers import processors

        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        padding_side="left" if bos else "right",
        # A pair encoder needs segment ids, which a bare tokenizers backend leaves out by default.
        model_input_names=["input_ids", "token_type_ids", "attention_mask"]
        if cls_sep
        else ["input_ids", "attention_mask"],
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def bpe_tokenizer(folder: Path, corpus: list[str]) -> PreTrainedTokenizerFast:
    """Train a small BPE tokenizer on `corpus` (with the fixture characters) and save it."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="\n", behavior="isolated")
    trainer = trainers.BpeTrainer(
        vocab_size=len(corpus_characters()) + 200,
        special_tokens=SPECIALS,
        initial_alphabet=corpus_characters(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus * 20, trainer=trainer)
    from tokenizers import processors

    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", backend.token_to_id("<bos>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def tiny_llama(
    folder: Path, tokenizer: PreTrainedTokenizerFast, *, seed: int = 0, dtype=None
) -> Path:
    """Save a 2-layer random Llama next to `tokenizer` in `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_gemma3(
    folder: Path, tokenizer: PreTrainedTokenizerFast, *, sliding_window: int = 8, seed: int = 0
) -> Path:
    """Save a random Gemma3 text model whose sliding window is shorter than the prompts."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=sliding_window,
        layer_types=[
            "sliding_attention",
            "sliding_attention",
            "full_attention",
            "sliding_attention",
        ],
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    Gemma3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_classifier(
    folder: Path, labels: list[str] | None, *, num_labels: int | None = None, seed: int = 0
) -> Path:
    """Save a random BERT sequence classifier whose id2label lists `labels`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = char_tokenizer(folder, bos=False, cls_sep=True)
    size = len(labels) if labels is not None else num_labels
    kwargs = (
        {
            "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)},
        }
        if labels
        else {}
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        num_labels=size,
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def tiny_bert_head(
    folder: Path,
    head: str,
    *,
    labels: list[str] | None = None,
    max_positions: int = 256,
    seed: int = 0,
) -> Path:
    """Save a random 2-layer BERT with the task head `head` (a transformers class name).

    The character tokenizer adds [CLS] and [SEP] and returns character offsets. `labels`
    names the outputs of a token-classification head.
    """
    import torch
    import transformers

    torch.manual_seed(seed)
    tokenizer = char_tokenizer(folder, bos=False, cls_sep=True)
    kwargs = {}
    if labels is not None:
        kwargs = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {name: index for index, name in enumerate(labels)},
        }
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )
    getattr(transformers, head)(config).save_pretrained(folder)
    return folder
