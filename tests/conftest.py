"""Shared fixtures: tiny random models saved once per session, and pytester for plugin runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from tiny_models import (
    FIXTURES,
    bpe_tokenizer,
    char_tokenizer,
    tiny_classifier,
    tiny_gemma3,
    tiny_llama,
)

from harness.tasks import get_task
from harness.tasks.examples import load_split
from harness.tasks.prompting import fill

pytest_plugins = ["pytester"]

DATA_ROOT = FIXTURES / "clue"


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread():
    """Run torch on one thread, because tiny models gain nothing from more.

    On a 2-core machine busy with another job, two OpenMP threads made a forward pass of
    the tiny Llama about 100 times slower than one thread did.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def isolated_prediction_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give each test an empty prediction cache and keep the hub client offline.

    Plugin runs in pytester subprocesses inherit the environment, so they neither read
    nor write the user's cache, and a hub id in a test spec never reaches the network.
    """
    folder = tmp_path_factory.mktemp("prediction-cache")
    monkeypatch.setenv("CLUE_PREDICTION_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def llama_dir(model_root: Path) -> Path:
    """A 2-layer random Llama with the character tokenizer (BOS added, left padding)."""
    folder = model_root / "llama"
    folder.mkdir()
    return tiny_llama(folder, char_tokenizer(folder))


@pytest.fixture(scope="session")
def gemma_dir(model_root: Path) -> Path:
    """A random Gemma3 whose sliding window (8 tokens) is shorter than every prompt."""
    folder = model_root / "gemma3"
    folder.mkdir()
    return tiny_gemma3(folder, char_tokenizer(folder), sliding_window=8)


def afqmc_prompt_corpus() -> list[str]:
    """AFQMC prompts followed by each verbalizer, so BPE learns merges such as "答：相同"."""
    task = get_task("afqmc")
    texts = []
    for split in ("train", "dev"):
        path = DATA_ROOT / "afqmc" / f"{split}.json"
        for example in load_split(task, split, path).examples:
            prompt = fill(task.prompt, example.fields)
            texts.extend(prompt + label.verbalizer for label in task.labels)
    return texts


@pytest.fixture(scope="session")
def bpe_llama_dir(model_root: Path) -> Path:
    """A random Llama whose BPE tokenizer has tokens that cross the prompt/answer boundary."""
    folder = model_root / "bpe-llama"
    folder.mkdir()
    return tiny_llama(folder, bpe_tokenizer(folder, afqmc_prompt_corpus()))


@pytest.fixture(scope="session")
def classifier_dir(model_root: Path) -> Path:
    """A random BERT pair classifier whose id2label names the AFQMC labels "0" and "1"."""
    return tiny_classifier(model_root / "bert-afqmc", ["0", "1"])


@pytest.fixture(scope="session")
def generic_classifier_dir(model_root: Path) -> Path:
    """A random BERT classifier with 2 outputs and the generic names LABEL_0, LABEL_1."""
    return tiny_classifier(model_root / "bert-generic", None, num_labels=2)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Keep Hypothesis's example database and constants cache under pytest's temp folder.

    This is a hook and not a fixture because the Hypothesis plugin writes its constants
    cache during collection. `config._tmp_path_factory` is the object that pytest's own
    `tmp_path_factory` fixture returns.
    """
    set_hypothesis_home_dir(config._tmp_path_factory.mktemp("hypothesis"))
