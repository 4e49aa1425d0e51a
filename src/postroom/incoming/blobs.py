"""Content-addressed, durable storage of raw messages and attachments.

A blob is named by the SHA-256 of its bytes, so writing the same message twice
(two folders, a retry after a crash, a UIDVALIDITY reset) writes one file.

A batch is made durable with one flush for all its files, not one per file
(per-file fsyncs plus the directory fsyncs were most of a first sync's time):
see :mod:`postroom.incoming.blobfiles`. A blob under its final name always
has its whole content on disk, and ``write_blobs`` returning means the whole
batch survives a crash: the ledger rows that point at it are committed only
after that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from postroom.incoming.blobfiles import blob_file, digest, discard, publish, write_temporary


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


def blob_root() -> Path:
    return Path(settings.POSTROOM_BLOB_DIR)


def blob_path(sha256: str) -> Path:
    return blob_file(blob_root(), sha256)


def write_blobs(items: Iterable[bytes]) -> list[StoredBlob]:
    """Store every item durably; returns their names in the same order."""
    root = blob_root()
    stored: list[StoredBlob] = []
    written: dict[str, Path] = {}
    created: set[Path] = set()
    try:
        for data in items:
            sha = digest(data)
            stored.append(StoredBlob(sha, len(data)))
            if sha not in written:
                tmp = write_temporary(root, data, sha, created)
                if tmp is not None:
                    written[sha] = tmp
        publish(root, list(written.values()), created)
    except BaseException:
        discard(list(written.values()))
        raise
    return stored


def read_blob(sha256: str) -> bytes:
    return blob_path(sha256).read_bytes()
