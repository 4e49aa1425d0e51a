"""The "complete" stage: bodies and attachments, parsed on every core.

Parsing is CPU-bound pure Python, so it runs in worker processes that read
the blob file and return the parsed result; only this process writes to the
database. A message whose parse fails is quarantined, never dropped.

An :class:`Extraction` is fed message ids while a sync is still storing
(``submit``), so the workers parse the first batches while later ones are
fetched; they run at a lower CPU priority, behind fetching and storing.
Results are saved when the sync waits for the network and after it: a
chunk at a time, with one durable publication of the attachment files the
workers wrote and one transaction.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from django.db import connection, transaction

from postroom.incoming.blobfiles import publish
from postroom.incoming.blobs import blob_path, blob_root, write_blobs
from postroom.incoming.models import Attachment, Message, MessageBlob, ParseState
from postroom.incoming.parse_worker import Outcome, init_worker, parse_chunk
from postroom.mail.mime import Attachment as MimeAttachment

logger = logging.getLogger(__name__)

CHUNK = 64


def _workers() -> int:
    return max(1, os.cpu_count() or 1)


def _new_pool() -> Executor:
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
        _save_parsed([outcome])
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
    parsed = [o for o in outcomes if o.parsed is not None]
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


@dataclass(frozen=True)
class _Part:
    message_id: int
    attachment: MimeAttachment
    sha256: str
    size: int


def _blobs_of(outcomes: Sequence[Outcome]) -> list[_Part]:
    """The kept attachments of ``outcomes``, made durable: written by the
    workers (published here) or, when a worker could not, written here."""
    parts: list[_Part] = []
    temporaries: list[Path] = []
    unwritten: list[tuple[int, MimeAttachment]] = []
    for outcome in outcomes:
        assert outcome.parsed is not None
        attachments = outcome.parsed.attachments
        if outcome.written is None:
            unwritten += [
                (outcome.message_id, a)
                for a in attachments
                if not a.dropped and a.payload is not None
            ]
            continue
        for part in outcome.written:
            parts.append(_Part(outcome.message_id, attachments[part.index], part.sha256, part.size))
            if part.temporary is not None:
                temporaries.append(Path(part.temporary))
    # Durable before the rows that name them: one flush for the whole chunk.
    publish(blob_root(), temporaries)
    stored = write_blobs(a.payload for _mid, a in unwritten if a.payload is not None)
    parts += [
        _Part(mid, a, blob.sha256, blob.size)
        for (mid, a), blob in zip(unwritten, stored, strict=True)
    ]
    return parts


_UPDATED = (
    "parse_state",
    "parse_error",
    "text",
    "html",
    "has_attachments",
    "dropped_attachments",
)


def _update_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(f"{quote(name)} = %s" for name in _UPDATED)
    # Only identifiers of our own model are interpolated; values go as parameters.
    return f"UPDATE {quote(Message._meta.db_table)} SET {columns} WHERE {quote('id')} = %s"  # noqa: S608


def _save_parsed(outcomes: Sequence[Outcome]) -> None:
    if not outcomes:
        return
    parts = _blobs_of(outcomes)
    message_ids = [o.message_id for o in outcomes]
    dropped = Message._meta.get_field("dropped_attachments")
    rows = []
    for outcome in outcomes:
        parsed = outcome.parsed
        assert parsed is not None
        rows.append(
            (
                str(ParseState.COMPLETE),
                "",
                parsed.text,
                parsed.html or "",  # None when the mail has no HTML part
                bool(parsed.attachments),
                dropped.get_db_prep_save(
                    [
                        {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                        for a in parsed.attachments
                        if a.dropped
                    ],
                    connection,
                ),
                outcome.message_id,
            )
        )
    with transaction.atomic():
        MessageBlob.objects.bulk_create(
            [MessageBlob(sha256=p.sha256, size=p.size) for p in parts], ignore_conflicts=True
        )
        Attachment.objects.filter(message_id__in=message_ids).delete()
        Attachment.objects.bulk_create(
            [
                Attachment(
                    message_id=p.message_id,
                    blob_id=p.sha256,
                    filename=(p.attachment.filename or "")[:500],
                    content_type=p.attachment.content_type[:200],
                    content_id=(p.attachment.content_id or "")[:500],
                    size=p.attachment.size,
                    inline=p.attachment.disposition == "inline",
                )
                for p in parts
            ]
        )
        # One statement for the chunk: the ORM's per-row UPDATE cost more than SQLite.
        with connection.cursor() as cursor:
            cursor.executemany(_update_sql(), rows)


# Chunks handed to the pool at once: enough to keep every core busy while this
# process saves, few enough that parsed bodies never pile up in memory (a
# whole mailbox submitted at once grew the parent past a gigabyte).
IN_FLIGHT_PER_WORKER = 2


class Extraction:
    """Extract bodies and attachments of messages handed over one batch at a time.

    While a sync stores, ``submit`` hands full chunks to the workers and
    never waits, and ``when_idle`` saves a finished chunk when the sync has
    nothing else to do; saving otherwise waits for ``finish``, so the
    database work of the "complete" stage never delays the "stored" one.
    Memory is bounded by the chunks in flight (the ids waiting are plain
    integers). Use as a context manager; leaving it early abandons (never
    saves) what is in flight, which stays at the "stored" stage for the next run.
    """

    def __init__(self, limit: int | None, *, parallel: bool | None = None) -> None:
        self.limit = limit
        self.parallel = parallel
        self.processed = 0
        self.quarantined = 0
        self._waiting: deque[int] = deque()
        self._in_flight: deque[Future[list[Outcome]]] = deque()
        self._window = IN_FLIGHT_PER_WORKER * _workers()
        self._root = str(blob_root())
        # Its own workers, started at the first full chunk and stopped when
        # it ends: idle workers would hold their memory for nothing.
        self._executor: Executor | None = None

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
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _pool(self) -> Executor:
        if self._executor is None:
            self._executor = _new_pool()
        return self._executor

    def submit(self, message_ids: Sequence[int]) -> None:
        """Queue ``message_ids`` and keep the workers busy; never waits, never saves."""
        self._waiting.extend(message_ids)
        if self.parallel is not False:
            self._fill(final=False)

    def when_idle(self) -> bool:
        """Save one chunk the workers finished; False when there was none."""
        if not self._in_flight or not self._in_flight[0].done():
            return False
        self._save_next()
        self._fill(final=False)
        return True

    def finish(self, message_ids: Iterable[int] = ()) -> ExtractReport:
        """Queue ``message_ids`` too, then extract and save everything queued.

        Returns the figures of everything this extraction handled.
        """
        self._waiting.extend(message_ids)
        parallel = self.parallel
        if parallel is None:
            parallel = bool(self._in_flight) or len(self._waiting) > CHUNK
        if parallel:
            while True:
                self._fill(final=True)
                if not self._in_flight:
                    break
                self._save_next()
        else:
            while self._waiting:
                items = self._items(self._take(CHUNK))
                self.processed += len(items)
                self.quarantined += _save_many(parse_chunk(items, self.limit, self._root))
        return ExtractReport(processed=self.processed, quarantined=self.quarantined)

    def _take(self, count: int) -> list[int]:
        return [self._waiting.popleft() for _ in range(min(count, len(self._waiting)))]

    @staticmethod
    def _items(message_ids: list[int]) -> list[tuple[int, str]]:
        rows = Message.objects.filter(pk__in=message_ids).values_list("pk", "blob_id")
        return [(pk, str(blob_path(sha))) for pk, sha in rows]

    def _fill(self, *, final: bool) -> None:
        """Hand chunks to the workers up to the window (partial ones only when ``final``)."""
        while len(self._in_flight) < self._window and (
            len(self._waiting) >= CHUNK or (final and self._waiting)
        ):
            items = self._items(self._take(CHUNK))
            if items:
                self._in_flight.append(
                    self._pool().submit(parse_chunk, items, self.limit, self._root)
                )

    def _save_next(self) -> None:
        outcomes = self._in_flight.popleft().result()
        self.processed += len(outcomes)
        self.quarantined += _save_many(outcomes)


def pending_message_ids(account_id: int) -> list[int]:
    """Messages of the account still at the "stored" stage (not extracted yet).

    Filtered by parse state in SQL and by account here: SQLite would
    otherwise walk every message of the account on every pass.
    """
    rows = Message.objects.filter(parse_state=ParseState.HEADERS).values_list("pk", "account_id")
    return [pk for pk, owner in rows if owner == account_id]


def extract_messages(
    message_ids: Sequence[int], limit: int | None, *, parallel: bool | None = None
) -> ExtractReport:
    """Extract bodies and attachments of ``message_ids`` (the "complete" stage)."""
    with Extraction(limit, parallel=parallel) as extraction:
        return extraction.finish(message_ids)
