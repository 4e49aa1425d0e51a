"""One sync pass of one account: fetch what is new, store it, keep flags in step.

Pure orchestration between the protocol sessions in ``postroom.mail`` and the
ingest functions; the caller (an action) owns status, leases and errors.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

from django.db import transaction
from django.utils import timezone

from postroom.accounts.models import EmailAccount, IncomingProtocol, SyncOption
from postroom.accounts.resolve import incoming_check
from postroom.incoming.blobs import StoredBlob, write_blobs
from postroom.incoming.ingest import (
    BatchResult,
    RawMail,
    apply_flags,
    forget_expunged,
    store_imap_batch,
    store_pop3_mail,
)
from postroom.incoming.models import FolderState, MessageLocation, Pop3Location
from postroom.mail.imap_sync import FetchedMessage, FolderStatus, ImapSyncSession
from postroom.mail.pop3_sync import Pop3SyncSession

logger = logging.getLogger(__name__)

FETCH_BATCH = 200
# Bytes of one fetched batch at most (a single larger message comes alone);
# with the batch being stored, the one in the hand-over queue and the one
# being read, this bounds what fetching holds in memory.
FETCH_BATCH_BYTES = 8 * 1024 * 1024
# Fetched batches waiting for the storing thread.
HANDOVER_DEPTH = 1
# Without CONDSTORE, flags of this many newest messages are re-read each pass.
FLAG_REFRESH_WINDOW = 2000

Progress = Callable[[int, int], None]


class AfterStore(Protocol):
    """Told about new messages as each batch commits (the extraction)."""

    def submit(self, message_ids: Sequence[int]) -> None:
        """The ids of new messages of a batch just committed; must not wait."""

    def when_idle(self) -> bool:
        """Called while no fetched batch is waiting; True when it did some work."""


class _NoAfterStore:
    def submit(self, message_ids: Sequence[int]) -> None:
        return None

    def when_idle(self) -> bool:
        return False


@dataclass
class SyncResult:
    result: BatchResult
    seconds: float
    quarantined: int = 0  # of this run's new messages, set once extraction ran


def _noop_progress(done: int, total: int) -> None:
    return None


_END = object()


def _fetch_ahead(
    session: ImapSyncSession,
    uids: list[int],
    *,
    batch_size: int,
    max_batch_bytes: int,
    idle: Callable[[], bool],
) -> Generator[tuple[list[FetchedMessage], list[StoredBlob]], None, None]:
    """The batches of ``session.fetch``, read and written durably by a thread.

    The thread reads and parses FETCH replies (TLS, literals) and writes each
    batch's raw messages as durable blobs; the caller parses headers and runs
    the database transaction meanwhile: both release the GIL for their
    system calls, so they overlap. A batch is handed over only once its
    blobs are durable, so the caller's ledger rows still follow the bytes.
    Only that thread touches the session until the iterator is exhausted or
    closed; at most ``HANDOVER_DEPTH`` batches wait for the caller, who calls
    ``idle`` (until it returns False) whenever none is waiting. An error of
    the fetch is raised here, in the caller's thread.
    """
    handover: queue.Queue[object] = queue.Queue(maxsize=HANDOVER_DEPTH)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handover.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        batches: Generator[list[FetchedMessage], None, None] | None = None
        try:
            # Inside the try: planning the batches talks to the server too,
            # and an error there must reach the caller, not end the thread.
            batches = session.fetch(uids, batch_size=batch_size, max_batch_bytes=max_batch_bytes)
            for batch in batches:
                blobs = write_blobs(m.raw for m in batch)
                if not put((batch, blobs)):
                    break
        except BaseException as exc:  # handed to the caller, who raises it
            put(exc)
            return
        finally:
            if batches is not None:
                batches.close()  # on a stop: reads the answers still due
        put(_END)

    thread = threading.Thread(target=produce, name="imap-fetch", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = handover.get_nowait()
            except queue.Empty:
                if idle():
                    continue
                item = handover.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _folder_state(account: EmailAccount, name: str) -> FolderState:
    state, _created = FolderState.objects.get_or_create(account=account, name=name)
    return state


def _handle_uidvalidity(state: FolderState, status: FolderStatus) -> int | None:
    """On a UIDVALIDITY change start the folder over; returns the old value to clean up.

    The old ledger rows stay until the new ones are written, so a message is
    never without a location in between; re-fetched bytes hash to the same
    blob and so to the same message: nothing is duplicated.
    """
    if state.uidvalidity is None or state.uidvalidity == status.uidvalidity:
        if state.uidvalidity is None:
            state.uidvalidity = status.uidvalidity
            state.save(update_fields=["uidvalidity"])
        return None
    old = state.uidvalidity
    logger.warning(
        "UIDVALIDITY of %s changed from %s to %s: re-reading the folder",
        state.name,
        old,
        status.uidvalidity,
    )
    state.uidvalidity = status.uidvalidity
    state.last_uid = 0
    state.highestmodseq = None
    state.save(update_fields=["uidvalidity", "last_uid", "highestmodseq"])
    return old


def sync_imap_folder(
    session: ImapSyncSession,
    account: EmailAccount,
    folder: str,
    *,
    progress: Progress = _noop_progress,
    after_store: AfterStore | None = None,
) -> BatchResult:
    total = BatchResult()
    after = after_store or _NoAfterStore()
    # The watcher's IDLE session has the folder selected already: a STATUS
    # then saves Dovecot reopening the whole mailbox before new mail is fetched.
    status = session.refresh_selected(folder)
    state = _folder_state(account, folder)
    stale_uidvalidity = _handle_uidvalidity(state, status)
    first_sync = state.last_uid == 0 and not state.locations.exists()

    unseen_only = account.sync_option == SyncOption.UNSEEN
    if first_sync and account.initial_sync_count:
        uids = session.newest_uids(account.initial_sync_count)
        if unseen_only:
            unseen = set(session.uids_after(0, unseen_only=True))
            uids = [u for u in uids if u in unseen]
    else:
        uids = session.uids_after(state.last_uid, unseen_only=unseen_only)
    uids = sorted(uids)
    done = 0
    progress(done, len(uids))
    if uids:
        # Closed here even on an error: the fetch thread must be done with
        # the session before anyone else uses (or closes) it.
        with contextlib.closing(
            _fetch_ahead(
                session,
                uids,
                batch_size=FETCH_BATCH,
                max_batch_bytes=FETCH_BATCH_BYTES,
                idle=after.when_idle,
            )
        ) as batches:
            for batch, blobs in batches:
                mails = [
                    RawMail(uid=m.uid, raw=m.raw, flags=tuple(m.flags), modseq=m.modseq)
                    for m in batch
                ]
                del batch
                result = store_imap_batch(state, status.uidvalidity, mails, blobs=blobs)
                del mails
                total.add(result)
                done += result.fetched
                progress(done, len(uids))
                if result.new_message_ids:
                    after.submit(result.new_message_ids)

    if stale_uidvalidity is not None:
        MessageLocation.objects.filter(folder=state, uidvalidity=stale_uidvalidity).delete()

    _sync_flags_and_expunges(session, state, status)
    with transaction.atomic():
        state.uidnext = status.uidnext
        state.highestmodseq = status.highestmodseq
        state.last_synced_at = timezone.now()
        state.save(update_fields=["uidnext", "highestmodseq", "last_synced_at"])
    return total


def _sync_flags_and_expunges(
    session: ImapSyncSession, state: FolderState, status: FolderStatus
) -> None:
    known = MessageLocation.objects.filter(folder=state, uidvalidity=status.uidvalidity)
    if not known.exists():
        return
    if state.highestmodseq and status.highestmodseq:
        if status.highestmodseq != state.highestmodseq:
            apply_flags(state, status.uidvalidity, session.changed_flags_since(state.highestmodseq))
    else:
        window = list(known.order_by("-uid").values_list("uid", flat=True)[:FLAG_REFRESH_WINDOW])
        apply_flags(state, status.uidvalidity, session.flags_for(window))
    # With the previous pass's modseq, QRESYNC servers answer with VANISHED
    # for one UID range instead of a search over every known UID (which
    # costs a round trip per 2,000 messages on every pass, new mail or not).
    if session.qresync and state.highestmodseq and status.highestmodseq:
        gone = session.expunged_since(range(1, status.uidnext), state.highestmodseq)
    else:
        known_uids = list(known.values_list("uid", flat=True))
        gone = session.expunged_since(known_uids, state.highestmodseq)
    if gone:
        forget_expunged(state, status.uidvalidity, sorted(gone))


def sync_pop3(
    session: Pop3SyncSession,
    account: EmailAccount,
    *,
    progress: Progress = _noop_progress,
    after_store: AfterStore | None = None,
) -> BatchResult:
    total = BatchResult()
    after = after_store or _NoAfterStore()
    listing = session.uidl()
    held = set(Pop3Location.objects.filter(account=account).values_list("uidl", flat=True))
    todo = [(n, uidl) for n, uidl in sorted(listing.items()) if uidl not in held]
    progress(0, len(todo))
    for done, (number, uidl) in enumerate(todo, start=1):
        raw = session.retrieve(number)
        result = store_pop3_mail(account.pk, RawMail(uid=uidl, raw=raw))
        total.add(result)
        progress(done, len(todo))
        if result.new_message_ids:
            after.submit(result.new_message_ids)
    if account.pop3_delete_after_retrieval:
        # Only what the ledger proves is stored; deletions commit at QUIT.
        held_now = dict(
            Pop3Location.objects.filter(account=account, deleted_on_server=False).values_list(
                "uidl", "pk"
            )
        )
        deleted: list[int] = []
        for number, uidl in listing.items():
            pk = held_now.get(uidl)
            if pk is not None:
                session.delete(number)
                deleted.append(pk)
        session.quit()
        Pop3Location.objects.filter(pk__in=deleted).update(deleted_on_server=True)
    return total


def sync_account(
    account: EmailAccount,
    *,
    progress: Progress = _noop_progress,
    session: ImapSyncSession | None = None,
    after_store: AfterStore | None = None,
) -> SyncResult:
    """Fetch and store everything new on every configured folder of ``account``.

    ``session``: an IMAP session already logged in (the watcher's IDLE one),
    which saves a TLS handshake and a login when new mail has just arrived.
    ``after_store``: told the ids of new messages as each batch is committed
    (so extraction starts while later batches are still being fetched).
    """
    started = time.monotonic()
    check = incoming_check(account)
    result = BatchResult()
    protocol = account_protocol(account)
    if protocol == IncomingProtocol.POP3:
        with Pop3SyncSession(check.endpoint, check.credentials) as pop:
            result.add(sync_pop3(pop, account, progress=progress, after_store=after_store))
    else:
        # The caller's session stays open for the caller; our own one is closed here.
        with (
            contextlib.nullcontext(session)
            if session is not None
            else ImapSyncSession(check.endpoint, check.credentials)
        ) as imap:
            for folder in check.folders or ("INBOX",):
                result.add(
                    sync_imap_folder(
                        imap, account, folder, progress=progress, after_store=after_store
                    )
                )
    return SyncResult(result=result, seconds=time.monotonic() - started)


def account_protocol(account: EmailAccount) -> str:
    from postroom.accounts.resolve import resolve_servers

    return resolve_servers(account).incoming_protocol or IncomingProtocol.IMAP
