"""Loaded models, shared by every case of a worker process."""

from __future__ import annotations

import logging
import re

from harness.backends import create_backend
from harness.backends.base import Backend, ModelConfig
from harness.backends.batching import threads_per_worker

logger = logging.getLogger(__name__)

XDIST_GROUP_PREFIX = "clue-model-"


def xdist_group_name(config: ModelConfig) -> str:
    """Name the pytest-xdist group of a model's cases after the weights it loads.

    Under `--dist loadgroup`, xdist sends all items of one group to one worker, so each
    model is loaded by one worker instead of by every worker. Specs that name the same
    source under different model names share a group. xdist appends the name to node ids
    after an "@", so characters outside [A-Za-z0-9._-] become "_".

    >>> xdist_group_name(ModelConfig(name="m3e", backend="hf-embedding", packaged="m3e-small"))
    'clue-model-m3e-small'
    >>> xdist_group_name(ModelConfig(name="mine", backend="hf-classifier", path="/models/a b"))
    'clue-model-_models_a_b'
    """
    source = config.packaged or config.path or config.name
    if config.gguf_file:
        source = f"{source}/{config.gguf_file}"
    return XDIST_GROUP_PREFIX + re.sub(r"[^A-Za-z0-9._-]+", "_", source)


class ModelPool:
    """Loads each model at most once per process and hands out the same backend."""

    def __init__(self, cache_root, threads: int | None, worker_count: int) -> None:
        self.cache_root = cache_root
        self.threads = threads
        self.worker_count = worker_count
        self.loaded: dict[str, Backend] = {}
        self.threads_set = False

    def limit_workers(self, count: int) -> None:
        """Split the cores among at most `count` workers; call before the first model loads."""
        self.worker_count = max(1, min(self.worker_count, count))

    def _configure_threads(self) -> None:
        import torch

        threads = self.threads or threads_per_worker(self.worker_count)
        torch.set_num_threads(threads)
        logger.info("torch uses %d threads in this process", threads)
        self.threads_set = True

    def get(self, config: ModelConfig) -> Backend:
        backend = self.loaded.get(config.name)
        if backend is not None and backend.config == config:
            return backend
        if not self.threads_set:
            self._configure_threads()
        backend = create_backend(config, self.cache_root)
        self.loaded[config.name] = backend
        return backend

    def release(self, name: str) -> None:
        backend = self.loaded.pop(name, None)
        if backend is not None:
            backend.close()
            logger.info("released model %s", name)

    def close(self) -> None:
        for name in list(self.loaded):
            self.release(name)
