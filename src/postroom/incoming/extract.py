"""The "complete" stage: bodies and attachments, parsed on every core.

Parsing is CPU-bound pure Python, so it runs in worker processes that read
the blob file and return the parsed result; only this process writes to the
database. A message whose parse fails is quarantined, never dropped.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import islice

from django.db import transaction

from postroom.incoming.blobs import blob_path, write_blobs
from postroom.incoming.models import Attachment, Message, MessageBlob, ParseState
from postroom.incoming.parse_worker import Outcome, parse_chunk
from postroom.mail.mime import ParsedMessage

logger = logging.getLogger(__name__)

CHUNK = 64


@cache
def _pool() -> Executor:
    # "fork" would copy Django's open database connections into the children.
    import multiprocessing

    return ProcessPoolExecutor(
        max_workers=max(1, os.cpu_count() or 1), mp_context=multiprocessing.get_context("spawn")
    )


@dataclass(frozen=True)
class ExtractReport:
    processed: int
    quarantined: int


def _quarantine(message_id: int, error: str) -> None:
    logger.error("message %s quarantined: %s", message_id, error)
    Message.objects.filter(pk=message_id).update(
        parse_state=ParseState.QUARANTINED, parse_error=error[:2000]
    )


def _save(outcome: Outcome) -> bool:
    """Store one parse result; returns False when the message ends in quarantine."""
    if outcome.parsed is None:
        _quarantine(outcome.message_id, outcome.error)
        return False
    try:
        _save_parsed(outcome.message_id, outcome.parsed)
    except Exception as exc:
        # One message that cannot be saved (an odd filename, a database limit)
        # must not stop the others: it is kept raw and shown in quarantine.
        logger.exception("message %s could not be saved after parsing", outcome.message_id)
        _quarantine(outcome.message_id, f"{type(exc).__name__}: {exc}")
        return False
    return True


def _save_parsed(message_id: int, parsed: ParsedMessage) -> None:
    kept = [a for a in parsed.attachments if not a.dropped and a.payload is not None]
    stored = write_blobs(a.payload for a in kept if a.payload is not None)
    with transaction.atomic():
        MessageBlob.objects.bulk_create(
            [MessageBlob(sha256=b.sha256, size=b.size) for b in stored], ignore_conflicts=True
        )
        Attachment.objects.filter(message_id=message_id).delete()
        Attachment.objects.bulk_create(
            [
                Attachment(
                    message_id=message_id,
                    blob_id=blob.sha256,
                    filename=(a.filename or "")[:500],
                    content_type=a.content_type[:200],
                    content_id=(a.content_id or "")[:500],
                    size=a.size,
                    inline=a.disposition == "inline",
                )
                for a, blob in zip(kept, stored, strict=True)
            ]
        )
        Message.objects.filter(pk=message_id).update(
            parse_state=ParseState.COMPLETE,
            parse_error="",
            text=parsed.text,
            html=parsed.html or "",  # None when the mail has no HTML part
            has_attachments=bool(parsed.attachments),
            dropped_attachments=[
                {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                for a in parsed.attachments
                if a.dropped
            ],
        )


# Chunks handed to the pool at once: enough to keep every core busy while this
# process saves, few enough that parsed bodies never pile up in memory (a
# whole mailbox submitted at once grew the parent past a gigabyte).
IN_FLIGHT_PER_WORKER = 2


def _parallel_outcomes(items: list[tuple[int, str]], limit: int | None) -> Iterator[Outcome]:
    chunks = iter([items[i : i + CHUNK] for i in range(0, len(items), CHUNK)])
    pool = _pool()
    window = IN_FLIGHT_PER_WORKER * max(1, os.cpu_count() or 1)
    pending: deque[Future[list[Outcome]]] = deque(
        pool.submit(parse_chunk, chunk, limit) for chunk in islice(chunks, window)
    )
    while pending:
        done = pending.popleft().result()
        following = next(chunks, None)
        if following is not None:
            pending.append(pool.submit(parse_chunk, following, limit))
        yield from done


def extract_messages(
    message_ids: Sequence[int], limit: int | None, *, parallel: bool | None = None
) -> ExtractReport:
    """Extract bodies and attachments of ``message_ids`` (the "complete" stage)."""
    rows = list(Message.objects.filter(pk__in=list(message_ids)).values_list("pk", "blob_id"))
    items = [(pk, str(blob_path(sha))) for pk, sha in rows]
    if parallel is None:
        parallel = len(items) > CHUNK
    if parallel:
        outcomes: Iterator[Outcome] = _parallel_outcomes(items, limit)
    else:
        outcomes = iter(parse_chunk(items, limit))
    quarantined = sum(1 for outcome in outcomes if not _save(outcome))
    return ExtractReport(processed=len(items), quarantined=quarantined)
