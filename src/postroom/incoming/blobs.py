"""Content-addressed, durable storage of raw messages and attachments.

A blob is named by the SHA-256 of its bytes, so writing the same message twice
(two folders, a retry after a crash, a UIDVALIDITY reset) writes one file.
Files are written to a temporary name, fsynced, then renamed into place; the
directories touched are fsynced once per batch, which is what makes a batch
durable before the ledger rows that point at it are committed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_blobs(items: Iterable[bytes]) -> list[StoredBlob]:
    """Store every item durably; returns their names in the same order."""
    stored: list[StoredBlob] = []
    touched: set[Path] = set()
    for data in items:
        sha = digest(data)
        stored.append(StoredBlob(sha, len(data)))
        path = blob_path(sha)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{sha}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        touched.add(path.parent)
        touched.add(path.parent.parent)
    for directory in touched:
        _fsync_dir(directory)
    return stored


def read_blob(sha256: str) -> bytes:
    return blob_path(sha256).read_bytes()
