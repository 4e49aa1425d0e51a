"""Turn fetched raw messages into stored, threaded, findable messages.

Order matters for B14 (never lose, never duplicate):
1. the raw bytes are written durably, content-addressed;
2. then, in one transaction, the blob rows, the parsed-header message rows,
   the ledger rows keyed (folder, uidvalidity, uid) and the folder's new
   high-water mark are committed together;
3. bodies and attachments are extracted afterwards (``postroom.incoming.extract``): a message
   counts as stored before that, and a failure there quarantines it instead
   of losing it.
A crash before 2 leaves only orphan files that the retry rewrites; a crash
after 2 is invisible. Unique constraints, not luck, stop duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from django.db import transaction

from postroom.incoming.blobs import StoredBlob, write_blobs
from postroom.incoming.models import (
    FolderState,
    Message,
    MessageBlob,
    MessageLocation,
    Pop3Location,
    Thread,
)
from postroom.mail.mime import MessageHeaders, parse_headers

logger = logging.getLogger(__name__)

SEEN = "\\Seen"
FLAGGED = "\\Flagged"
ANSWERED = "\\Answered"


@dataclass(frozen=True)
class RawMail:
    """A message as fetched: where it was and its bytes."""

    uid: int | str  # IMAP UID, or POP3 UIDL
    raw: bytes
    flags: tuple[str, ...] = ()
    modseq: int | None = None


@dataclass
class BatchResult:
    fetched: int = 0
    stored: int = 0  # new messages
    duplicates: int = 0  # already held (another folder, a retry, a UIDVALIDITY reset)
    new_message_ids: list[int] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.fetched += other.fetched
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.new_message_ids.extend(other.new_message_ids)


def _flag_fields(flags: Sequence[str]) -> dict[str, bool]:
    return {"seen": SEEN in flags, "flagged": FLAGGED in flags, "answered": ANSWERED in flags}


def _message_row(
    account_id: int, sha: str, size: int, headers: MessageHeaders, flags: Sequence[str]
) -> Message:
    sender = headers.from_[0] if headers.from_ else None
    return Message(
        account_id=account_id,
        blob_id=sha,
        message_id=(headers.message_id or "")[:998],
        in_reply_to=(headers.in_reply_to or "")[:998],
        references=list(headers.references),
        subject=headers.subject,
        from_name=(sender.name if sender else "")[:300],
        from_email=(sender.email if sender else "")[:320],
        to=[a.email for a in headers.to],
        cc=[a.email for a in headers.cc],
        date=headers.date,
        size=size,
        **_flag_fields(flags),
    )


def _assign_threads(account_id: int, messages: list[Message], subjects: dict[int, str]) -> set[int]:
    """Thread by Message-ID, In-Reply-To and References, never by subject alone (B8).

    Threads new in this batch are created with their count and latest date
    already set; returns the ids of existing threads that gain messages, whose
    figures the caller recomputes after inserting the messages.
    """
    wanted: set[str] = set()
    for msg in messages:
        wanted.update(msg.references)
        if msg.in_reply_to:
            wanted.add(msg.in_reply_to)
    # Message-ID -> thread: saved threads by id, threads new in this batch by object,
    # so a reply finds a parent that arrived earlier in the same batch.
    known: dict[str, int | Thread] = {}
    if wanted:
        # The account is checked here, not in SQL: with it there, SQLite
        # walks the account index (every message of the account, for every
        # batch) instead of looking the Message-IDs up in their own index.
        rows = Message.objects.filter(message_id__in=wanted, thread_id__isnull=False).values_list(
            "message_id", "thread_id", "account_id"
        )
        known.update(
            (message_id, thread_id) for message_id, thread_id, owner in rows if owner == account_id
        )
    new_threads: list[Thread] = []
    chosen: list[int | Thread] = []
    for index, msg in enumerate(messages):
        parents = [msg.in_reply_to, *reversed(msg.references)]
        thread = next((known[p] for p in parents if p and p in known), None)
        if thread is None:
            thread = Thread(
                account_id=account_id,
                subject=subjects.get(index, msg.subject),
                message_count=0,
                last_message_at=None,
            )
            new_threads.append(thread)
        if isinstance(thread, Thread):
            thread.message_count += 1
            if msg.date is not None and (
                thread.last_message_at is None or msg.date > thread.last_message_at
            ):
                thread.last_message_at = msg.date
        chosen.append(thread)
        if msg.message_id:
            known.setdefault(msg.message_id, thread)
    if new_threads:
        Thread.objects.bulk_create(new_threads)
    for msg, thread in zip(messages, chosen, strict=True):
        msg.thread_id = thread if isinstance(thread, int) else thread.pk
    return {thread for thread in chosen if isinstance(thread, int)}


def _update_thread_stats(thread_ids: set[int]) -> None:
    """Recompute count and latest date of ``thread_ids`` in one statement."""
    from django.db.models import Count, Max, OuterRef, Subquery

    if not thread_ids:
        return
    members = Message.objects.filter(thread_id=OuterRef("pk")).order_by().values("thread_id")
    Thread.objects.filter(pk__in=thread_ids).update(
        message_count=Subquery(members.annotate(n=Count("id")).values("n")[:1]),
        last_message_at=Subquery(members.annotate(last=Max("date")).values("last")[:1]),
    )


@dataclass
class _Prepared:
    """A batch made durable and parsed, ready for one short transaction."""

    shas: list[str]
    blobs: Sequence[StoredBlob]
    existing: dict[str, int]
    fresh: list[Message]
    subjects: dict[int, str]


def _prepare(
    account_id: int, mails: Sequence[RawMail], blobs: Sequence[StoredBlob] | None = None
) -> _Prepared:
    """The slow part, done before any database lock is taken: fsync and header parsing.

    ``blobs``: the mails' raw bytes already written durably, in order (by
    the fetching thread); written here when None.
    Only one process syncs an account at a time (leases), so what already
    exists cannot change between this read and the insert that follows.
    """
    if blobs is None:
        blobs = write_blobs(m.raw for m in mails)
    elif len(blobs) != len(mails):
        raise ValueError("one stored blob per mail is needed")
    shas = [b.sha256 for b in blobs]
    existing = dict(
        Message.objects.filter(account_id=account_id, blob_id__in=set(shas)).values_list(
            "blob_id", "id"
        )
    )
    fresh: list[Message] = []
    subjects: dict[int, str] = {}
    seen: set[str] = set(existing)
    for mail, blob in zip(mails, blobs, strict=True):
        if blob.sha256 in seen:
            continue
        seen.add(blob.sha256)
        headers = parse_headers(mail.raw)
        subjects[len(fresh)] = headers.subject
        fresh.append(_message_row(account_id, blob.sha256, blob.size, headers, mail.flags))
    return _Prepared(shas, blobs, existing, fresh, subjects)


def _insert_messages(account_id: int, batch: _Prepared) -> tuple[list[int], list[int], int]:
    """Insert blob and message rows; returns (message id per mail, new ids, duplicates).

    Runs inside the caller's transaction.
    """
    MessageBlob.objects.bulk_create(
        [MessageBlob(sha256=b.sha256, size=b.size) for b in batch.blobs], ignore_conflicts=True
    )
    if batch.fresh:
        grown = _assign_threads(account_id, batch.fresh, batch.subjects)
        Message.objects.bulk_create(batch.fresh)
        _update_thread_stats(grown)
    ids_by_sha = dict(batch.existing)
    ids_by_sha.update({m.blob_id: m.pk for m in batch.fresh})
    per_mail = [ids_by_sha[sha] for sha in batch.shas]
    duplicates = len(batch.shas) - len(batch.fresh)
    return per_mail, [m.pk for m in batch.fresh], duplicates


def store_imap_batch(
    folder: FolderState,
    uidvalidity: int,
    mails: Sequence[RawMail],
    *,
    blobs: Sequence[StoredBlob] | None = None,
) -> BatchResult:
    """Store one fetched batch of an IMAP folder and advance its high-water mark.

    ``blobs``: what :func:`~postroom.incoming.blobs.write_blobs` returned for
    the mails' raw bytes, when the caller already made them durable.
    """
    if not mails:
        return BatchResult()
    prepared = _prepare(folder.account_id, mails, blobs)
    with transaction.atomic():
        per_mail, new_ids, duplicates = _insert_messages(folder.account_id, prepared)
        MessageLocation.objects.bulk_create(
            [
                MessageLocation(
                    folder=folder,
                    uidvalidity=uidvalidity,
                    uid=int(mail.uid),
                    message_id=message_id,
                    flags=list(mail.flags),
                    modseq=mail.modseq,
                )
                for mail, message_id in zip(mails, per_mail, strict=True)
            ],
            ignore_conflicts=True,
        )
        high = max(int(m.uid) for m in mails)
        FolderState.objects.filter(pk=folder.pk, last_uid__lt=high).update(last_uid=high)
        folder.last_uid = max(folder.last_uid, high)
    return BatchResult(
        fetched=len(mails), stored=len(new_ids), duplicates=duplicates, new_message_ids=new_ids
    )


def store_pop3_mail(account_id: int, mail: RawMail) -> BatchResult:
    """Store one POP3 message and its UIDL ledger row."""
    prepared = _prepare(account_id, [mail])
    with transaction.atomic():
        per_mail, new_ids, duplicates = _insert_messages(account_id, prepared)
        Pop3Location.objects.get_or_create(
            account_id=account_id, uidl=str(mail.uid), defaults={"message_id": per_mail[0]}
        )
    return BatchResult(
        fetched=1, stored=len(new_ids), duplicates=duplicates, new_message_ids=new_ids
    )


def apply_flags(
    folder: FolderState, uidvalidity: int, flags_by_uid: Mapping[int, Collection[str]]
) -> int:
    """Record flag changes seen on the server (B15); returns the messages changed."""
    changed = 0
    with transaction.atomic():
        for location in MessageLocation.objects.filter(
            folder=folder, uidvalidity=uidvalidity, uid__in=list(flags_by_uid)
        ).select_related("message"):
            flags = list(flags_by_uid[location.uid])
            if sorted(flags) == sorted(location.flags):
                continue
            location.flags = flags
            location.save(update_fields=["flags"])
            Message.objects.filter(pk=location.message_id).update(**_flag_fields(flags))
            changed += 1
    return changed


def forget_expunged(folder: FolderState, uidvalidity: int, uids: Sequence[int]) -> int:
    """Drop ledger rows for messages gone from the server folder; the messages stay."""
    deleted, _ = MessageLocation.objects.filter(
        folder=folder, uidvalidity=uidvalidity, uid__in=list(uids)
    ).delete()
    return deleted


__all__ = [
    "BatchResult",
    "RawMail",
    "apply_flags",
    "forget_expunged",
    "store_imap_batch",
    "store_pop3_mail",
]
