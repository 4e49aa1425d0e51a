"""`postroom watch`: keep every enabled account in sync, IDLE where it helps.

One watcher process runs one thread per account it holds a lease on. The
thread syncs, then waits in IMAP IDLE on INBOX (re-issued well before the
29-minute limit) or sleeps for the poll interval (POP3, or a server without
IDLE), and syncs again as soon as the server reports new mail or someone
asks for a sync. New mail and the periodic pass are both synced on the IDLE
session itself, so neither costs a new login. Each SELECT of the IDLE session is first compared with
what the last sync stored, since IDLE only reports changes made after it.
The main loop takes free leases, renews held ones, and stops threads whose
lease was lost, so several watchers can share one PostgreSQL without ever
syncing an account twice at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.db import close_old_connections, connection

from postroom.accounts.models import EmailAccount, IncomingProtocol
from postroom.accounts.resolve import incoming_check
from postroom.incoming import leases
from postroom.incoming.actions import do_sync_account, may_sync, status_for
from postroom.incoming.engine import account_protocol
from postroom.incoming.models import FolderState, SyncState, SyncStatus
from postroom.mail.errors import MailError
from postroom.mail.imap_sync import FolderStatus, ImapSyncSession

logger = logging.getLogger(__name__)

# A fresh IDLE session after this long (IDLE itself is re-issued every round;
# RFC 2177: servers may drop it after 29 minutes).
IDLE_RENEW_SECONDS = 25 * 60
SCAN_SECONDS = 2.0
# Short IDLE rounds so a stop or a "sync now" is noticed quickly.
IDLE_ROUND_SECONDS = 2.0


def make_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class _AccountThread:
    account_id: int
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def thread_alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Watcher:
    def __init__(self, holder: str | None = None, *, lease_seconds: int | None = None):
        self.holder = holder or make_holder_id()
        self.lease_seconds = lease_seconds or leases.lease_seconds()
        self.stop_event = threading.Event()
        self._threads: dict[int, _AccountThread] = {}

    # -- main loop ---------------------------------------------------------
    def run(self) -> None:
        logger.info("watcher %s started", self.holder)
        try:
            while not self.stop_event.is_set():
                close_old_connections()
                try:
                    self._scan()
                except Exception:
                    # The loop must outlive a database hiccup; the error is logged.
                    logger.exception("watcher scan failed")
                self.stop_event.wait(SCAN_SECONDS)
        finally:
            self._stop_all()
            connection.close()
            logger.info("watcher %s stopped", self.holder)

    def stop(self) -> None:
        self.stop_event.set()

    def _scan(self) -> None:
        wanted = set(
            EmailAccount.objects.filter(
                incoming_enabled=True, sync_enabled=True, awaiting_password=False
            ).values_list("pk", flat=True)
        )
        for account_id in list(self._threads):
            held = account_id in wanted and leases.renew(
                account_id, self.holder, self.lease_seconds
            )
            if not held or not self._threads[account_id].thread_alive():
                self._stop_one(account_id)
        for account_id in wanted - set(self._threads):
            if leases.try_acquire(account_id, self.holder, self.lease_seconds):
                self._start_one(account_id)
        # Wake threads whose account has a pending "sync now" request.
        for status in SyncStatus.objects.filter(
            account_id__in=list(self._threads), sync_requested_at__isnull=False
        ):
            started = status.last_run_started_at
            requested = status.sync_requested_at
            if requested is not None and (started is None or requested > started):
                self._threads[status.account_id].wake.set()

    def _start_one(self, account_id: int) -> None:
        # A "syncing" left by a holder that died is stale: we own the account now.
        SyncStatus.objects.filter(account_id=account_id, state=SyncState.SYNCING).update(
            state=SyncState.IDLE
        )
        entry = _AccountThread(account_id)
        entry.thread = threading.Thread(
            target=self._account_loop, args=(entry,), name=f"sync-{account_id}", daemon=True
        )
        self._threads[account_id] = entry
        entry.thread.start()

    def _stop_one(self, account_id: int) -> None:
        entry = self._threads.pop(account_id)
        entry.stop.set()
        entry.wake.set()
        leases.release(account_id, self.holder)

    def _stop_all(self) -> None:
        for account_id in list(self._threads):
            entry = self._threads[account_id]
            self._stop_one(account_id)
            if entry.thread is not None:
                entry.thread.join(timeout=10)

    # -- one account ---------------------------------------------------------
    def _account_loop(self, entry: _AccountThread) -> None:
        try:
            while not entry.stop.is_set():
                close_old_connections()
                account = EmailAccount.objects.filter(pk=entry.account_id).first()
                if account is None:
                    return
                status = status_for(account)
                if may_sync(account, status) or entry.wake.is_set():
                    entry.wake.clear()
                    self._sync(account)
                self._wait_for_news(account, entry)
        finally:
            connection.close()

    @staticmethod
    def _sync(account: EmailAccount, session: ImapSyncSession | None = None) -> bool:
        """One pass; False when it failed (already recorded by do_sync_account)."""
        try:
            do_sync_account(account, session=session)
        except MailError:
            return False  # in the status and the event log: do_sync_account recorded it
        except Exception:
            logger.exception("sync of account %s failed", account.pk)
            return False
        return True

    def _wait_for_news(self, account: EmailAccount, entry: _AccountThread) -> None:
        """Block until new mail, a sync request, a stop, or the poll interval."""
        interval = float(account.poll_interval)
        status = status_for(account)
        can_idle = (
            account_protocol(account) == IncomingProtocol.IMAP
            and may_sync(account, status)
            and "INBOX" in (account.folders or ["INBOX"])
        )
        if not can_idle:
            entry.wake.wait(interval)
            return
        try:
            check = incoming_check(account)
            with ImapSyncSession(check.endpoint, check.credentials) as session:
                if not session.supports_idle:
                    entry.wake.wait(interval)
                    return
                selected: FolderStatus | None = session.select("INBOX")
                caught_up: tuple[int, int, int | None] | None = None
                started = connected = time.monotonic()
                while not entry.stop.is_set() and not entry.wake.is_set():
                    # IDLE and NOOP only report what changes after this
                    # session's SELECT, and a SELECT already counts what came
                    # before it: mail delivered after the sync looked but
                    # before this SELECT would never be announced. So each
                    # SELECT is first compared with what the sync stored.
                    # (caught_up: a sync that did not move the stored state
                    # past this very SELECT must not repeat forever.)
                    behind = False
                    if selected is not None:
                        mark = _mark(selected)
                        behind = mark != caught_up and _server_ahead(account, selected)
                        if behind:
                            caught_up = mark
                        selected = None
                    # Dovecot only watches the mailbox while IDLE is running: a
                    # change between two rounds would wait for its 30-second
                    # re-check, so each round ends with a NOOP, which reports it.
                    if behind or session.idle_wait(timeout=IDLE_ROUND_SECONDS) or session.noop():
                        # New mail: fetch it on this very connection, no new
                        # handshake or login, then go back to waiting.
                        if not self._sync(account, session):
                            return
                        selected = session.select("INBOX")
                    now = time.monotonic()
                    if now - connected >= IDLE_RENEW_SECONDS:
                        return
                    if now - started >= interval:
                        # The periodic pass (other folders, flags) on this
                        # session too: a new login and SELECT here cost new
                        # mail arriving meanwhile a whole pass and a handshake.
                        account.refresh_from_db()
                        if incoming_check(account) != check or not may_sync(
                            account, status_for(account)
                        ):
                            return  # settings changed: the account loop starts over
                        interval = float(account.poll_interval)
                        started = now
                        if not self._sync(account, session):
                            return
                        selected = session.select("INBOX")
        except MailError as exc:
            logger.warning("IDLE on account %s failed: %s", account.pk, exc)
            entry.wake.wait(min(interval, 30.0))


def _mark(selected: FolderStatus) -> tuple[int, int, int | None]:
    return (selected.uidvalidity, selected.uidnext, selected.highestmodseq)


def _server_ahead(account: EmailAccount, selected: FolderStatus) -> bool:
    """Whether a fresh SELECT of INBOX shows changes the last sync did not store.

    The sync records the UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ its own
    SELECT saw; anything delivered (or, with CONDSTORE, flagged or expunged)
    since moves them on. Mail that arrived during the sync and was already
    fetched costs one pass that finds nothing new.
    """
    state = (
        FolderState.objects.filter(account=account, name="INBOX")
        .values("uidvalidity", "uidnext", "highestmodseq")
        .first()
    )
    if state is None or state["uidvalidity"] != selected.uidvalidity:
        return True
    if state["uidnext"] is None or selected.uidnext > state["uidnext"]:
        return True
    return (
        selected.highestmodseq is not None
        and state["highestmodseq"] is not None
        and selected.highestmodseq > state["highestmodseq"]
    )
