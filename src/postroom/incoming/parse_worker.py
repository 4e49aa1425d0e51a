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
