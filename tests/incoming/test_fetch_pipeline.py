"""The fetch thread of a sync and the durable blob batches it writes, without a server."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest

from postroom.incoming import engine
from postroom.incoming.blobfiles import blob_file, publish, write_temporary
from postroom.incoming.blobs import blob_path, write_blobs
from postroom.mail.errors import ConnectionLost, Phase
from postroom.mail.imap_sync import FetchedMessage


def message(uid: int) -> FetchedMessage:
    raw = f"Subject: {uid}\r\n\r\nbody {uid}\r\n".encode()
    return FetchedMessage(
        uid=uid, flags=frozenset(), internaldate=None, size=len(raw), raw=raw, modseq=None
    )


class FakeSession:
    def __init__(self, fail_at: int | None = None, fail_planning: bool = False) -> None:
        self.fail_at = fail_at
        self.fail_planning = fail_planning
        self.closed_early = False

    def fetch(
        self, uids: Iterable[int], batch_size: int, *, max_batch_bytes: int
    ) -> Generator[list[FetchedMessage], None, None]:
        if self.fail_planning:
            raise ConnectionLost("cut while planning", phase=Phase.COMMAND)
        return self._batches(sorted(uids), batch_size)

    def _batches(self, uids: list[int], size: int) -> Generator[list[FetchedMessage], None, None]:
        try:
            for start in range(0, len(uids), size):
                if self.fail_at is not None and start >= self.fail_at:
                    raise ConnectionLost("cut mid-fetch", phase=Phase.COMMAND)
                yield [message(uid) for uid in uids[start : start + size]]
        except GeneratorExit:
            self.closed_early = True
            raise


def run(session: Any, uids: list[int], idle: Any = lambda: False) -> list[int]:
    got: list[int] = []
    batches = engine._fetch_ahead(session, uids, batch_size=3, max_batch_bytes=1 << 20, idle=idle)
    for batch, blobs in batches:
        assert [b.sha256 for b in blobs] == [b.sha256 for b in write_blobs(m.raw for m in batch)]
        assert all(blob_path(b.sha256).exists() for b in blobs)
        got += [m.uid for m in batch]
    return got


@pytest.fixture(autouse=True)
def blob_dir(tmp_path: Path, settings: Any) -> Path:
    settings.POSTROOM_BLOB_DIR = tmp_path / "blobs"
    return tmp_path / "blobs"


def test_batches_arrive_in_order_with_their_blobs_written() -> None:
    assert run(FakeSession(), list(range(1, 11))) == list(range(1, 11))


@pytest.mark.parametrize("session", [FakeSession(fail_at=6), FakeSession(fail_planning=True)])
def test_a_fetch_error_reaches_the_caller(session: FakeSession) -> None:
    with pytest.raises(ConnectionLost):
        run(session, list(range(1, 11)))


def test_stopping_early_closes_the_fetch_in_its_thread() -> None:
    session = FakeSession()
    batches = engine._fetch_ahead(
        session, list(range(1, 31)), batch_size=3, max_batch_bytes=1 << 20, idle=lambda: False
    )
    next(batches)
    batches.close()
    assert session.closed_early


def test_blob_files_get_their_final_name_only_when_published(blob_dir: Path) -> None:
    created: set[Path] = set()
    tmp = write_temporary(blob_dir, b"hello", created=created)
    assert tmp is not None and tmp.exists()
    final = blob_file(blob_dir, tmp.name.split(".")[0])
    assert not final.exists()
    assert final.parent in created
    publish(blob_dir, [tmp], created)
    assert final.read_bytes() == b"hello" and not tmp.exists()
    publish(blob_dir, [tmp], created)  # a retried save: already published
    assert write_temporary(blob_dir, b"hello") is None  # exists: nothing to write


def test_a_batch_is_published_with_one_flush(blob_dir: Path, monkeypatch: Any) -> None:
    from postroom.incoming import blobfiles

    flushes: list[Path] = []
    fsyncs: list[int] = []
    monkeypatch.setattr(blobfiles, "_flush_filesystem", lambda root: flushes.append(root) or True)
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd))
    stored = write_blobs([b"a", b"b", b"c", b"a"])
    assert len(stored) == 4 and stored[0] == stored[3]
    assert flushes == [blob_dir, blob_dir] and fsyncs == []
    assert all(blob_path(s.sha256).exists() for s in stored)


def test_one_attachment_in_two_messages_of_a_chunk_is_published_once(blob_dir: Path) -> None:
    # A worker writes the same temporary file for both (same process, same
    # content), so the chunk names it twice: publishing must not fail on it.
    first = write_temporary(blob_dir, b"shared")
    second = write_temporary(blob_dir, b"shared")
    assert first is not None and first == second
    publish(blob_dir, [first, second])
    assert blob_file(blob_dir, first.name.split(".")[0]).read_bytes() == b"shared"
    assert not first.exists()
