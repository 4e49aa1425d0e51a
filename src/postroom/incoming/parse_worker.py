"""Code that runs inside the extraction worker processes.

Deliberately free of Django: spawned workers import only this module, the
blob files helpers and the MIME parser, never settings or models.

Given the blob directory, a worker also writes the attachments it decoded
as temporary blob files and sends back only their names, not their bytes
(pickling every payload back to the parent cost as much as parsing); the
parent makes them durable and visible before it records them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from postroom.incoming.blobfiles import digest, write_temporary
from postroom.mail.mime import ParsedMessage, parse_message


@dataclass(frozen=True)
class WrittenPart:
    """An attachment the worker wrote: ``index`` into ``parsed.attachments``."""

    index: int
    sha256: str
    size: int
    temporary: str | None  # None: the blob existed already


@dataclass(frozen=True)
class Outcome:
    message_id: int
    parsed: ParsedMessage | None
    error: str
    # Set when the worker wrote the kept attachments (their payloads are then None).
    written: tuple[WrittenPart, ...] | None = None


def parse_one(message_id: int, path: str, limit: int | None) -> Outcome:
    try:
        parsed = parse_message(Path(path).read_bytes(), max_attachment_bytes=limit)
    except Exception as exc:  # reported back and quarantined by the parent
        return Outcome(message_id, None, f"{type(exc).__name__}: {exc}")
    return Outcome(message_id, parsed, "")


def _write_parts(outcome: Outcome, root: Path) -> Outcome:
    parsed = outcome.parsed
    if parsed is None:
        return outcome
    written: list[WrittenPart] = []
    attachments = list(parsed.attachments)
    for index, attachment in enumerate(attachments):
        payload = attachment.payload
        if attachment.dropped or payload is None:
            continue
        sha = digest(payload)
        tmp = write_temporary(root, payload, sha)
        written.append(WrittenPart(index, sha, len(payload), str(tmp) if tmp else None))
        attachments[index] = dataclasses.replace(attachment, payload=None)
    stripped = dataclasses.replace(parsed, attachments=tuple(attachments))
    return Outcome(outcome.message_id, stripped, outcome.error, tuple(written))


def parse_chunk(
    items: list[tuple[int, str]], limit: int | None, blob_root: str | None = None
) -> list[Outcome]:
    outcomes = [parse_one(mid, path, limit) for mid, path in items]
    if blob_root is not None:
        root = Path(blob_root)
        for position, outcome in enumerate(outcomes):
            try:
                outcomes[position] = _write_parts(outcome, root)
            except OSError:
                pass  # the payloads stay in the outcome: the parent writes them
    return outcomes


def init_worker(parent: int) -> None:
    """Pool initializer: parse in the background, and never outlive the parent.

    Workers run at a lower CPU priority, behind fetching and storing. A
    parent killed with SIGKILL cannot stop them, and they would wait on the
    pool's queue forever (holding its stdout and stderr open), so a thread
    ends each worker once its parent is gone.
    """
    import os
    import threading
    import time

    try:
        os.nice(5)
    except OSError:  # not allowed here: parse at normal priority
        pass

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
