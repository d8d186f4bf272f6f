"""Sparsity curves for the price of one training: the dense model at the branch epoch, cached and shared.

Runs that differ only in their pruning settings (and the epochs after the branch) need the same dense model.
The first of them saves it at the branch point into ``cache_dir/<hash of the dense identity>/dense.ckpt``; the
others start from there. A file lock (flock: released by the kernel if the holder dies) makes a run that finds
no usable checkpoint wait while another run trains it, so parallel branches train it once. A checkpoint is used
only if its recorded identity is this run's and its SHA-256 matches: a corrupt, truncated or foreign file is
never loaded; the run says why and trains the dense model again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as L

from bvp.io import FileLock, atomic_write_json, readable_json

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class DenseCache:
    """The cached dense checkpoint of one dense identity (``bvp.identity.dense_identity``) and its lock."""

    def __init__(self, root: str | os.PathLike, identity: dict[str, Any]) -> None:
        self.identity = json.loads(json.dumps(identity, sort_keys=True, default=str))  # as it reads back from JSON
        self.key = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:16]
        self.dir = Path(root) / self.key
        self.ckpt, self.meta = self.dir / "dense.ckpt", self.dir / "dense.json"
        self._lock = FileLock(self.dir / ".lock")

    # -- the lock -------------------------------------------------------------------------------
    def acquire(self, wait: bool = True) -> bool:
        """Take the lock (waiting while another run holds it, unless ``wait`` is false); True if held."""
        return self._lock.acquire(wait)

    def release(self) -> None:
        self._lock.release()

    # -- the checkpoint ---------------------------------------------------------------------------
    def problem(self) -> str | None:
        """None if the cached checkpoint can be used; else why not."""
        meta = readable_json(self.meta)
        if meta is None or not self.ckpt.is_file():
            return "no dense checkpoint cached yet"
        if meta.get("identity") != self.identity:
            return f"{self.ckpt} was trained with another config"
        if self.ckpt.stat().st_size != meta.get("bytes") or file_sha256(self.ckpt) != meta.get("sha256"):
            return f"{self.ckpt} is corrupt or truncated (its SHA-256 does not match {self.meta.name})"
        return None

    def older_code(self) -> Path | None:
        """A cached dense checkpoint of this identity that other code trained (only the code fingerprint differs):
        never used, but worth saying why this run trains again."""
        mine = {k: v for k, v in self.identity.items() if k != "code"}
        for meta in sorted(self.dir.parent.glob("*/dense.json")):
            theirs = (readable_json(meta) or {}).get("identity") or {}
            if meta != self.meta and {k: v for k, v in theirs.items() if k != "code"} == mine:
                return meta.parent / "dense.ckpt"
        return None

    def save(self, trainer: L.Trainer, trained_by: str) -> None:
        """Write the trainer's current state as the dense checkpoint: file first, then its record (both atomic)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".dense.{os.getpid()}.ckpt"
        trainer.save_checkpoint(tmp)
        record = {"identity": self.identity, "bytes": tmp.stat().st_size, "sha256": file_sha256(tmp), "trained_by": trained_by}
        os.replace(tmp, self.ckpt)
        atomic_write_json(self.meta, record)
        log.info("dense model at the branch point saved to %s", self.ckpt)
