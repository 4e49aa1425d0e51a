"""The "complete" stage: bodies and attachments, parsed on every core.

Parsing is CPU-bound pure Python, so it runs in worker processes that read
the blob file and return the parsed result; only this process writes to the
database. A message whose parse fails is quarantined, never dropped.

An :class:`Extraction` is fed message ids while a sync is still storing
(``submit``), so the workers parse the first batches while later ones are
fetched; the workers run at a lower CPU priority, so on a busy machine they
take what fetching and storing leave over instead of slowing the "stored"
stage. Results are saved a chunk at a time: one durable write of the chunk's
attachments and one transaction.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from types import TracebackType

from django.db import transaction

from postroom.incoming.blobs import blob_path, write_blobs
from postroom.incoming.models import Attachment, Message, MessageBlob, ParseState
from postroom.incoming.parse_worker import Outcome, init_worker, parse_chunk
from postroom.mail.mime import ParsedMessage

logger = logging.getLogger(__name__)

CHUNK = 64


def _workers() -> int:
    return max(1, os.cpu_count() or 1)


@cache
def _pool() -> Executor:
    # "fork" would copy Django's open database connections into the children.
    import multiprocessing

    return ProcessPoolExecutor(
        max_workers=_workers(),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(os.getpid(),),
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
        _save_parsed([(outcome.message_id, outcome.parsed)])
    except Exception as exc:
        # One message that cannot be saved (an odd filename, a database limit)
        # must not stop the others: it is kept raw and shown in quarantine.
        logger.exception("message %s could not be saved after parsing", outcome.message_id)
        _quarantine(outcome.message_id, f"{type(exc).__name__}: {exc}")
        return False
    return True


def _save_many(outcomes: Sequence[Outcome]) -> int:
    """Store a chunk of parse results at once; returns how many ended in quarantine.

    When the chunk cannot be saved as a whole, each message is saved on its
    own, so one bad message is quarantined and the others are kept.
    """
    parsed = [(o.message_id, o.parsed) for o in outcomes if o.parsed is not None]
    failed = [o for o in outcomes if o.parsed is None]
    try:
        _save_parsed(parsed)
    except Exception:
        logger.warning("saving %d parsed messages at once failed; saving one by one", len(parsed))
        quarantined = 0
        for outcome in outcomes:
            quarantined += not _save(outcome)
        return quarantined
    for outcome in failed:
        _quarantine(outcome.message_id, outcome.error)
    return len(failed)


def _save_parsed(items: Sequence[tuple[int, ParsedMessage]]) -> None:
    if not items:
        return
    kept = [
        (message_id, a)
        for message_id, parsed in items
        for a in parsed.attachments
        if not a.dropped and a.payload is not None
    ]
    # Durable before the rows that name them: one flush for the whole chunk.
    stored = write_blobs(a.payload for _mid, a in kept if a.payload is not None)
    with transaction.atomic():
        MessageBlob.objects.bulk_create(
            [MessageBlob(sha256=b.sha256, size=b.size) for b in stored], ignore_conflicts=True
        )
        Attachment.objects.filter(message_id__in=[mid for mid, _p in items]).delete()
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
                for (message_id, a), blob in zip(kept, stored, strict=True)
            ]
        )
        for message_id, parsed in items:
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


class Extraction:
    """Extract bodies and attachments of messages handed over one batch at a time.

    ``submit`` never waits for parsing: it saves what the workers have
    finished and hands them more; ``finish`` waits for the rest. Memory is
    bounded by the chunks in flight (the ids waiting are plain integers).
    Use as a context manager; leaving it early abandons (never saves) what
    is in flight, which stays at the "stored" stage for the next run.
    """

    def __init__(self, limit: int | None, *, parallel: bool | None = None) -> None:
        self.limit = limit
        self.parallel = parallel
        self.processed = 0
        self.quarantined = 0
        self._waiting: deque[int] = deque()
        self._in_flight: deque[Future[list[Outcome]]] = deque()
        self._window = IN_FLIGHT_PER_WORKER * _workers()

    def __enter__(self) -> Extraction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for future in self._in_flight:
            future.cancel()
        self._in_flight.clear()
        self._waiting.clear()

    def submit(self, message_ids: Iterable[int]) -> None:
        """Queue ``message_ids``; save what is finished and keep the workers busy."""
        self._waiting.extend(message_ids)
        if self.parallel is not False and (self._in_flight or len(self._waiting) >= CHUNK):
            self._pump(wait=False)

    def finish(self, message_ids: Iterable[int] = ()) -> ExtractReport:
        """Queue ``message_ids`` too, then extract and save everything queued.

        Returns the figures of everything this extraction handled.
        """
        self._waiting.extend(message_ids)
        parallel = self.parallel
        if parallel is None:
            parallel = bool(self._in_flight) or len(self._waiting) > CHUNK
        if parallel:
            self._pump(wait=True)
        else:
            while self._waiting:
                items = self._items(self._take(CHUNK))
                self.processed += len(items)
                self.quarantined += _save_many(parse_chunk(items, self.limit))
        return ExtractReport(processed=self.processed, quarantined=self.quarantined)

    def _take(self, count: int) -> list[int]:
        return [self._waiting.popleft() for _ in range(min(count, len(self._waiting)))]

    @staticmethod
    def _items(message_ids: list[int]) -> list[tuple[int, str]]:
        rows = Message.objects.filter(pk__in=message_ids).values_list("pk", "blob_id")
        return [(pk, str(blob_path(sha))) for pk, sha in rows]

    def _pump(self, *, wait: bool) -> None:
        """Refill the workers, then save finished chunks in order (all of them when ``wait``)."""
        pool = _pool()
        while True:
            # Only full chunks while a sync is still storing; the rest at the end.
            while len(self._in_flight) < self._window and (
                len(self._waiting) >= CHUNK or (wait and self._waiting)
            ):
                items = self._items(self._take(CHUNK))
                if items:
                    self._in_flight.append(pool.submit(parse_chunk, items, self.limit))
            if not self._in_flight or not (wait or self._in_flight[0].done()):
                return
            outcomes = self._in_flight.popleft().result()
            self.processed += len(outcomes)
            self.quarantined += _save_many(outcomes)


def extract_messages(
    message_ids: Sequence[int], limit: int | None, *, parallel: bool | None = None
) -> ExtractReport:
    """Extract bodies and attachments of ``message_ids`` (the "complete" stage)."""
    with Extraction(limit, parallel=parallel) as extraction:
        return extraction.finish(message_ids)
