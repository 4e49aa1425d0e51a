"""Code that runs inside the extraction worker processes.

Deliberately free of Django: spawned workers import only this module and the
MIME parser, never settings or models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from postroom.mail.mime import ParsedMessage, parse_message


@dataclass(frozen=True)
class Outcome:
    message_id: int
    parsed: ParsedMessage | None
    error: str


def parse_one(message_id: int, path: str, limit: int | None) -> Outcome:
    try:
        parsed = parse_message(Path(path).read_bytes(), max_attachment_bytes=limit)
    except Exception as exc:  # reported back and quarantined by the parent
        return Outcome(message_id, None, f"{type(exc).__name__}: {exc}")
    return Outcome(message_id, parsed, "")


def parse_chunk(items: list[tuple[int, str]], limit: int | None) -> list[Outcome]:
    return [parse_one(mid, path, limit) for mid, path in items]


def init_worker(parent: int) -> None:
    """Pool initializer: parse in the background, and never outlive the parent.

    Workers run at the lowest CPU priority, behind fetching and storing. A
    parent killed with SIGKILL cannot stop them, and they would wait on the
    pool's queue forever (holding its stdout and stderr open), so a thread
    ends each worker once its parent is gone.
    """
    import os
    import threading
    import time

    try:
        os.nice(19)
    except OSError:  # not allowed here: parse at normal priority
        pass

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
