"""Content-addressed, durable storage of raw messages and attachments.

A blob is named by the SHA-256 of its bytes, so writing the same message twice
(two folders, a retry after a crash, a UIDVALIDITY reset) writes one file.

A batch is made durable with one flush for all its files, not one per file
(per-file fsyncs plus the directory fsyncs were most of a first sync's time):
every new file is written under a temporary name, then the filesystem is
flushed once (``syncfs``), then the files are renamed into place and the
filesystem is flushed again, which makes the names (and any new directories)
durable. So a blob under its final name always has its whole content on disk,
and ``write_blobs`` returning means the whole batch survives a crash: the
ledger rows that point at it are committed only after that. Where ``syncfs``
is unavailable, and for batches of one or two new files, every file and
touched directory is fsynced instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings

# Batches of at most this many new files are fsynced file by file.
FSYNC_EACH_UP_TO = 2


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


def blob_root() -> Path:
    return Path(settings.POSTROOM_BLOB_DIR)


def blob_path(sha256: str) -> Path:
    return blob_root() / sha256[:2] / sha256[2:4] / sha256


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_path(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's syncfs(2) (Linux), or None. ctypes releases the GIL during the call."""
    if not hasattr(os, "O_DIRECTORY"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def _flush_filesystem(root: Path) -> bool:
    """Flush everything written on ``root``'s filesystem; False when not possible."""
    syncfs = _syncfs()
    if syncfs is None:
        return False
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs({root}) failed: {os.strerror(errno)}")
    finally:
        os.close(fd)
    return True


def write_blobs(items: Iterable[bytes]) -> list[StoredBlob]:
    """Store every item durably; returns their names in the same order."""
    stored: list[StoredBlob] = []
    written: dict[str, tuple[Path, Path]] = {}  # sha -> (temporary, final)
    created: set[Path] = set()  # directories made by this batch
    pid = os.getpid()
    try:
        for data in items:
            sha = digest(data)
            stored.append(StoredBlob(sha, len(data)))
            if sha in written:
                continue
            path = blob_path(sha)
            if path.exists():
                continue
            if not path.parent.is_dir():
                if not path.parent.parent.is_dir():
                    created.add(path.parent.parent)
                created.add(path.parent)
                path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{sha}.{pid}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    count = os.write(fd, view)
                    view = view[count:]
            finally:
                os.close(fd)
            written[sha] = (tmp, path)
        if not written:
            return stored
        # The contents first, before any final name exists.
        root = blob_root()
        # A file or two (new mail while watching) is cheaper to fsync on its
        # own than to flush a filesystem others may be writing to.
        batched = len(written) > FSYNC_EACH_UP_TO and _flush_filesystem(root)
        if not batched:
            for tmp, _path in written.values():
                _fsync_path(tmp, os.O_WRONLY)
        touched = {path.parent for _tmp, path in written.values()}
        for tmp, path in written.values():
            os.replace(tmp, path)
        written.clear()
        if not (batched and _flush_filesystem(root)):  # the names and new directories
            for directory in touched | created | {d.parent for d in created}:
                _fsync_path(directory, os.O_RDONLY | os.O_DIRECTORY)
    finally:
        for tmp, _path in written.values():  # an error before the renames
            tmp.unlink(missing_ok=True)
    return stored


def read_blob(sha256: str) -> bytes:
    return blob_path(sha256).read_bytes()
