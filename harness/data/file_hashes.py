"""sha256 digests of files, memoised so that a later run does not read an unchanged file again.

A digest is reused while the file's resolved path, size and modification time (in
nanoseconds) are unchanged. The memo lives in one JSON file that several processes may
update: each update reads it again, merges and replaces it under a file lock.

NOTE: a file rewritten with the same size within one tick of the file system's clock
keeps its old digest. Ext4 and most other Linux file systems store nanosecond timestamps,
but they advance by the kernel's clock tick (a few milliseconds).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

from harness.data.jsonl import sha256_file
from harness.outputs import write_atomic

logger = logging.getLogger(__name__)

# Weight formats that the PyTorch backends never read; hashing them would only cost time.
FOREIGN_WEIGHTS = (".h5", ".msgpack", ".onnx", ".onnx_data", ".ot", ".tflite", ".mlmodel")


class FileHashes:
    """sha256 digests of files, memoised by (path, size, mtime_ns) in `store`.

    `store` None keeps the memo in this process only.
    """

    def __init__(self, store: Path | None) -> None:
        self.store = store
        self.entries: dict[str, list] | None = None

    def digest(self, path: Path) -> str:
        """Return the hex sha256 of one file's bytes."""
        return self.digests([path])[0]

    def digests(self, paths: Iterable[Path]) -> list[str]:
        """Return the hex sha256 of each file, reading only files that changed."""
        entries = self._entries()
        computed: dict[str, list] = {}
        results = []
        for path in paths:
            resolved = Path(path).resolve()
            # Stat before reading, so a file changed while it is read is hashed again later.
            stat = resolved.stat()
            entry = entries.get(str(resolved))
            if entry is not None and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
                results.append(entry[2])
                continue
            logger.info("computing the sha256 of %s (%d bytes)", resolved, stat.st_size)
            digest = sha256_file(resolved)
            computed[str(resolved)] = [stat.st_size, stat.st_mtime_ns, digest]
            results.append(digest)
        if computed:
            entries.update(computed)
            self._save(computed)
        return results

    def folder_digest(self, folder: Path) -> str:
        """Return one sha256 over the relative path and digest of every file in a folder.

        Hidden files and folders (such as `.cache/`) and weight formats that PyTorch does
        not load (TensorFlow, Flax, ONNX, Core ML) are left out.
        """
        files = sorted(
            path
            for path in folder.rglob("*")
            if path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(folder).parts)
            and not path.name.endswith(FOREIGN_WEIGHTS)
        )
        combined = hashlib.sha256()
        for path, digest in zip(files, self.digests(files)):
            combined.update(f"{path.relative_to(folder).as_posix()}\0{digest}\n".encode())
        return combined.hexdigest()

    def _entries(self) -> dict[str, list]:
        if self.entries is None:
            self.entries = self._read_store()
        return self.entries

    def _read_store(self) -> dict[str, list]:
        if self.store is None or not self.store.is_file():
            return {}
        try:
            data = json.loads(self.store.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            logger.warning("ignoring the unreadable file digest memo %s: %s", self.store, error)
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, computed: dict[str, list]) -> None:
        if self.store is None:
            return
        self.store.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.store) + ".lock"):
            merged = self._read_store()
            merged.update(computed)
            write_atomic(self.store, json.dumps(merged, indent=0, sort_keys=True) + "\n")
