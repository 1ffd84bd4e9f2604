"""Loaded models, shared by every case of a worker process."""

from __future__ import annotations

import logging

from harness.backends import create_backend
from harness.backends.base import Backend, ModelConfig
from harness.backends.batching import threads_per_worker

logger = logging.getLogger(__name__)


class ModelPool:
    """Loads each model at most once per process and hands out the same backend."""

    def __init__(self, cache_root, threads: int | None, worker_count: int) -> None:
        self.cache_root = cache_root
        self.threads = threads
        self.worker_count = worker_count
        self.loaded: dict[str, Backend] = {}
        self.threads_set = False

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
