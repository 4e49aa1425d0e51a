"""Blob files without Django: naming, temporary writes, and making a batch durable.

Shared by :mod:`postroom.incoming.blobs` (the sync and the extraction's
parent process) and the extraction workers, which write the attachments
they decode as temporary files themselves; the parent then makes them
durable and visible with :func:`publish` before the rows that name them.

The rule that keeps content addressing safe after a crash: a file exists
under its final name only once its whole content is durable. New files are
written under a temporary name, the filesystem is flushed once for the
whole batch (``syncfs``; or each file is fsynced), and only then renamed;
a second flush makes the names (and any new directories) durable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

# Batches of at most this many new files are fsynced file by file: cheaper
# than flushing a filesystem others may be writing to (new mail while watching).
FSYNC_EACH_UP_TO = 2


def blob_file(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256[2:4] / sha256


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_temporary(
    root: Path, data: bytes, sha256: str | None = None, created: set[Path] | None = None
) -> Path | None:
    """Write ``data`` next to its final name, not yet durable nor visible.

    Returns the temporary path, or None when the blob already exists (and so
    is durable already). Directories it makes are added to ``created``.
    """
    sha = sha256 or digest(data)
    path = blob_file(root, sha)
    if path.exists():
        return None
    if created is None:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        if not path.parent.parent.is_dir():
            path.parent.parent.mkdir(parents=True, exist_ok=True)
            created.add(path.parent.parent)
        path.parent.mkdir(exist_ok=True)
        created.add(path.parent)
    tmp = path.with_name(f"{sha}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            count = os.write(fd, view)
            view = view[count:]
    finally:
        os.close(fd)
    return tmp


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


def publish(root: Path, temporaries: Sequence[Path], created: set[Path] | None = None) -> None:
    """Make temporary blob files durable, then give them their final names, durably.

    ``created``: the directories :func:`write_temporary` made for them, when
    it was told to keep track (else every parent is taken as possibly new).
    A temporary already published (a retried save) is skipped, and one named
    twice (the same attachment in two messages a worker parsed) is published once.
    """
    pending = [tmp for tmp in dict.fromkeys(temporaries) if tmp.exists()]
    if not pending:
        return
    batched = len(pending) > FSYNC_EACH_UP_TO and _flush_filesystem(root)
    if not batched:
        for tmp in pending:
            _fsync_path(tmp, os.O_WRONLY)
    for tmp in pending:
        os.replace(tmp, tmp.with_name(tmp.name.split(".", 1)[0]))
    if not (batched and _flush_filesystem(root)):
        # The names, and the entries of the directories new blobs needed.
        touched = {tmp.parent for tmp in pending}
        if created is None:
            created = touched | {d.parent for d in touched}
        for directory in touched | {d.parent for d in created}:
            _fsync_path(directory, os.O_RDONLY | os.O_DIRECTORY)


def discard(temporaries: Sequence[Path]) -> None:
    for tmp in temporaries:
        tmp.unlink(missing_ok=True)
