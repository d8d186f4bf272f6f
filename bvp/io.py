"""Atomic file writes (a crash leaves either the old file or the new one, never half of one), file locks, and
whether a folder can be written into at all, asked before anything is written."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace over ``path``. The file gets the mode a
    plain ``open`` gives (0o666 less the umask), not mkstemp's 0o600: a shared machine's users read the records."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FileLock:
    """An exclusive lock (flock) on the file ``path``, made if missing. The kernel releases it when its process
    dies, so a killed run never keeps a folder, a cache entry or a sweep record locked."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, wait: bool = True) -> bool:
        """Take the lock (waiting while another process holds it, unless ``wait`` is false); True if held."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask: a shared folder's users share it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:  # another process holds it, and this one does not wait
                os.close(fd)
                return False
            except BaseException:  # an interrupt while waiting
                os.close(fd)
                raise
            self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)  # now, even if a forked child still holds a copy of the descriptor
            os.close(self._fd)
            self._fd = None


@contextmanager
def locked(path: str | os.PathLike, wait: bool = True) -> Iterator[bool]:
    """``FileLock(path)`` held while the block runs: True if this process holds it, False if another does
    (only when ``wait`` is false)."""
    lock = FileLock(path)
    try:
        yield lock.acquire(wait)
    finally:
        lock.release()


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike, obj: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None if the file is missing; ValueError if it is not a JSON object."""
    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object but {type(value).__name__} {json.dumps(value)[:40]}")
    return value


def readable_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """``read_json``, with a damaged file (not JSON: atomic writes never leave one, a disk or a hand can) read as
    missing, and a warning saying so: the run it records runs again instead of stopping the sweep."""
    try:
        return read_json(path)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, not an object
        logging.getLogger(__name__).warning("%s is damaged (%s): read as missing", path, " ".join(str(err).split()))
        return None


def remove_empty_folders(outer: Path) -> None:
    """Remove ``outer`` and every folder below it that holds no file, deepest first: the folders a step that
    failed had made (torchvision's download makes ``data_dir/MNIST/raw`` before it fails offline)."""
    inner = sorted((p for p in outer.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
    remove_if_empty((*inner, outer))


def remove_if_empty(folders: Iterable[Path]) -> None:
    """Remove each of ``folders``, in order, that exists and holds nothing (inner folders first)."""
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def folder_problem(path: str | os.PathLike) -> str | None:
    """Why the folder ``path`` cannot be created or written into, or None if it can; found without writing
    anything: the nearest existing folder on its way must be a folder this process may write into."""
    path = Path(path).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        return "is a file, not a folder" if existing == path else f"cannot be created: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return "is not writable" if existing == path else f"cannot be created: {existing} is not writable"
    return None


def writable_folder(path: str) -> Path:
    """An argparse ``type`` for an output folder (bvp-report --out): refused, naming it, unless it can be written."""
    if (problem := folder_problem(path)) is not None:
        raise argparse.ArgumentTypeError(f"{path}: {problem}")
    return Path(path)
