"""The outgoing queue engine: claim due items under a lease, send, classify, record.

Claiming
--------
An item is *due* when ``next_attempt_at <= now`` and no live lease is on it.
A worker claims a batch of due items, most important first (priority, then
due time), in one short transaction that writes its lease
(``lease_holder``/``lease_expires_at``):

* PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers
  on several machines each take different rows without waiting;
* SQLite: the transaction is ``BEGIN IMMEDIATE`` (see settings), i.e. the
  single writer, and the lease is written by a conditional ``UPDATE`` that
  re-checks that the item is still due and its lease free or expired.

A worker that dies simply stops renewing; once its lease expires the items
are due again and the next claim takes them (a live worker renews the leases
it holds from a heartbeat thread, see :mod:`postroom.outgoing.worker`).

Per-account rate limits (per minute, hour, day) are applied inside the claim:
attempts already started in each window are counted (on PostgreSQL under a
lock on the account row, so two workers cannot both take the last slot) and
items over the limit get ``next_attempt_at`` set to when a slot frees and
their wait reason set, which is what the outbox shows.

Sending
-------
One SMTP transaction per item carries every recipient still to be served
(they share the same bytes); senders are kept per account and reused across
items (:class:`~postroom.mail.smtp_send.SmtpSender` checks a reused connection
before a transaction and drops it after a protocol error). Classification:

* accepted after DATA's 2xx: ``sent``;
* 4xx at RCPT or DATA, or a network failure: ``deferred``, retried with
  exponential back-off and jitter (about a minute, doubling, capped at four
  hours) until the account's maximum age (default 72 hours), then ``failed``;
* 5xx at RCPT (that recipient only), MAIL or DATA (every recipient): ``failed``;
* problems of the account rather than of the message (login refused,
  certificate, server unreachable) defer every due item of the account, with
  that reason, so a wrong password is not tried once per queued message.

Crash safety (and the one window for duplicates)
------------------------------------------------
1. claim: the lease is written; recipients stay ``queued``/``deferred``;
2. before the SMTP transactions, one commit marks the recipients of the whole
   claimed batch ``sending`` and renews the lease (recipients of items then
   not sent, because the account failed or the worker is stopping, are put
   back as they were);
3. the SMTP transactions, one per item, one after the other;
4. the outcomes — ``sent``/``deferred``/``failed`` per recipient with the
   server's reply, the attempt, the item's state, its lease released — are
   committed after every ``POSTROOM_OUTBOX_RECORD_EVERY`` items a sending
   thread has sent (default 1: after each message), after
   :data:`RECORD_SECONDS` (0.5 s) if that comes first, at the end of the
   batch, and before anything else is written (an account's back-off, a
   stop). Committing for several messages at once is faster, and widens the
   window below; the default keeps the narrowest one.

Whatever the point at which a worker is killed, its recipients are either
still ``queued``/``deferred`` or ``sending`` under a lease that will expire;
then the item is due again and every recipient still ``sending`` is sent
again. So **the messages that can arrive twice are exactly those whose DATA
phase had begun and whose outcome was not yet committed when the worker
died**: per sending thread, the message inside its DATA phase plus the ones
it finished since its last step-4 commit — at most
``POSTROOM_OUTBOX_RECORD_EVERY`` messages per sending thread (a worker has
``POSTROOM_WORKER_THREADS`` threads in each of its processes), each sent
at most once more per such kill; and a finished message waits for its
commit at most about half a second plus the next SMTP transaction.
A message whose DATA phase had not begun has reached no mailbox; one whose
outcome is committed is never sent again. The same holds when the
connection rather than the worker dies inside DATA
(:class:`~postroom.mail.smtp_send.DeliveryUncertain`, one message), or when
step 4 itself fails (the batch's messages stay ``sending`` and are sent
again once the lease expires); RFC 5321 accepts a rare duplicate over a
lost message, and so do we. Nothing is left ``sending`` for longer than one
lease. With the default ``POSTROOM_OUTBOX_RECORD_EVERY=1`` that is the
narrowest window: the one message cut inside its own DATA phase (or between
its final reply and the commit right after it); a site that prefers speed
may raise it and accept up to that many resent messages per thread and kill.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount
from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel
from postroom.core.notify import do_notify_delivery_failed
from postroom.incoming.blobs import read_blob
from postroom.mail.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    MailError,
    PlaintextRefused,
    SMTPRejected,
    TLSError,
)
from postroom.mail.smtp_send import SendResult
from postroom.outgoing.models import (
    PENDING_ITEM_STATES,
    PENDING_RECIPIENT_STATUSES,
    AttemptOutcome,
    DeliveryAttempt,
    ItemState,
    OutboxItem,
    OutboxRecipient,
    RecipientStatus,
    SentCopyState,
    Suppression,
    WaitReason,
)
from postroom.outgoing.sentcopy import SentCopier
from postroom.outgoing.suppression import suppressed_among
from postroom.outgoing.transport import Sender, make_sender
from postroom.webhooks.emit import emit, wanted_event_types
from postroom.webhooks.models import EventType
from postroom.webhooks.payloads import outbox_payload

logger = logging.getLogger(__name__)

BACKOFF_BASE = 60.0  # seconds before the first retry (about)
BACKOFF_CAP = 4 * 3600.0
SENT_COPY_TRIES = 5
ACCOUNT_RETRY = timedelta(minutes=5)  # an account that cannot send is looked at again
SENDER_IDLE_SECONDS = 30.0  # idle SMTP connections are closed after this
# Step 4 commits at least this often (seconds) while a batch is being sent.
RECORD_SECONDS = 0.5


class _SqliteWrites:
    """The queue's single-writer lock on SQLite: a thread lock inside the process and
    an ``flock`` on a file beside the database across processes (the forked sending
    processes of one worker, other workers on the same machine)."""

    def __init__(self) -> None:
        self.threads = threading.RLock()
        self.depth = 0  # nesting of the thread that holds ``threads``
        self._files: dict[tuple[int, str], int | None] = {}

    def _fd(self) -> int | None:
        name = str(connection.settings_dict["NAME"])
        key = (os.getpid(), name)  # never an inherited descriptor: flock is per open file
        if key not in self._files:
            fd: int | None = None
            if name and name != ":memory:" and not name.startswith("file:"):
                try:
                    fd = os.open(f"{name}-outbox.lock", os.O_RDWR | os.O_CREAT, 0o600)
                except OSError as exc:
                    logger.warning("no outbox write lock beside %s: %s", name, exc)
            self._files[key] = fd
        return self._files[key]

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.threads:
            fd = self._fd() if self.depth == 0 else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)


_SQLITE_WRITES = _SqliteWrites()


@contextmanager
def writing() -> Iterator[None]:
    """One write transaction of the queue.

    On SQLite there is a single writer: the queue's writers (threads, and the
    processes of a worker) take turns on a lock here rather than in SQLite's busy
    handler, which sleeps for milliseconds between its tries.
    """
    if connection.vendor == "sqlite":
        with _SQLITE_WRITES.held(), transaction.atomic():
            yield
    else:
        with transaction.atomic():
            yield


def lease_seconds() -> int:
    return int(settings.POSTROOM_OUTBOX_LEASE_SECONDS)


def backoff(deferrals: int) -> timedelta:
    """Exponential back-off with jitter: ~1, 2, 4 ... minutes, at most ~4 hours."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, min(deferrals - 1, 20)))
    return timedelta(seconds=ceiling * random.uniform(0.75, 1.25))


def due_filter(now: datetime) -> Q:
    return Q(next_attempt_at__isnull=False, next_attempt_at__lte=now) & (
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    )


def item_state(statuses: Iterable[str]) -> ItemState:
    """An item's state from its recipients' statuses."""
    active = [s for s in statuses if s != RecipientStatus.CANCELLED]
    if not active:
        return ItemState.CANCELLED
    if RecipientStatus.SENDING in active:
        return ItemState.SENDING
    if RecipientStatus.QUEUED in active:
        return ItemState.QUEUED
    if RecipientStatus.DEFERRED in active:
        return ItemState.DEFERRED
    if all(s == RecipientStatus.SENT for s in active):
        return ItemState.SENT
    if RecipientStatus.SENT in active:
        return ItemState.PARTIAL
    return ItemState.FAILED


def stored_item_state(item_id: int) -> ItemState:
    """An item's state from its recipients' statuses as the database has them now."""
    return item_state(
        OutboxRecipient.objects.filter(item_id=item_id).values_list("status", flat=True)
    )


# -- claiming --------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    item_id: int
    account_id: int
    attempt_id: int | None  # None: delivery is done, only the Sent copy is left


@dataclass
class _Wait:
    reason: WaitReason
    until: datetime
    detail: str


_WINDOWS = (
    ("rate_limit_per_minute", 60, WaitReason.RATE_MINUTE),
    ("rate_limit_per_hour", 3600, WaitReason.RATE_HOUR),
    ("rate_limit_per_day", 86400, WaitReason.RATE_DAY),
)


def _limit_detail(reason: WaitReason, limit: int) -> str:
    if reason == WaitReason.RATE_MINUTE:
        return _("The account's limit of %(n)d messages per minute is reached.") % {"n": limit}
    if reason == WaitReason.RATE_HOUR:
        return _("The account's limit of %(n)d messages per hour is reached.") % {"n": limit}
    return _("The account's limit of %(n)d messages per day is reached.") % {"n": limit}


@dataclass
class _Allowance:
    account: EmailAccount
    now: datetime
    used: dict[str, int] = field(default_factory=dict)
    taken: int = 0
    wait: _Wait | None = None

    def take(self) -> _Wait | None:
        """Count one more message against the limits, or say how long to wait."""
        if self.wait is not None:
            return self.wait
        blocked: _Wait | None = None
        for name, seconds, reason in _WINDOWS:
            limit = getattr(self.account, name)
            if not limit:
                continue
            since = self.now - timedelta(seconds=seconds)
            if name not in self.used:
                self.used[name] = DeliveryAttempt.objects.filter(
                    account_id=self.account.pk, started_at__gt=since
                ).count()
            over = self.used[name] + self.taken - limit
            if over < 0:
                continue
            # A slot frees when the (over)-th oldest counted attempt leaves the window.
            if over < self.used[name]:
                oldest = (
                    DeliveryAttempt.objects.filter(account_id=self.account.pk, started_at__gt=since)
                    .order_by("started_at")
                    .values_list("started_at", flat=True)[over]
                )
                until = oldest + timedelta(seconds=seconds)
            else:
                until = self.now + timedelta(seconds=seconds)
            if blocked is None or until > blocked.until:
                blocked = _Wait(reason, until, _limit_detail(reason, int(limit)))
        if blocked is not None:
            self.wait = blocked
            return blocked
        self.taken += 1
        return None


def _limited_accounts(account_ids: Collection[int]) -> dict[int, EmailAccount]:
    limited = (
        EmailAccount.objects.only("pk", *(name for name, _s, _r in _WINDOWS))
        .filter(pk__in=list(account_ids))
        .filter(
            Q(rate_limit_per_minute__isnull=False)
            | Q(rate_limit_per_hour__isnull=False)
            | Q(rate_limit_per_day__isnull=False)
        )
        .order_by("pk")
    )
    if connection.features.has_select_for_update:
        # Serialises the count-then-claim of one account across workers.
        limited = limited.select_for_update()
    return {account.pk: account for account in limited}


# The order of the ``outbox_due`` index (next_attempt_at, priority), then the row id.
_DUE_INDEX_ORDER = ("next_attempt_at", "priority", "pk")


def claim_due(
    worker_id: str, limit: int, *, item_ids: Collection[int] | None = None
) -> list[Claimed]:
    """Lease up to ``limit`` due items to ``worker_id``; see the module docstring."""
    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds())
    with writing():
        candidates = OutboxItem.objects.filter(due_filter(now))
        if item_ids is not None:
            candidates = candidates.filter(pk__in=list(item_ids))
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        # Most important first. While every due item has the default priority (the
        # usual case) the order is the due index's own and the claim reads its
        # first rows instead of sorting every due item (thousands in a full queue).
        prioritised = (
            OutboxItem.objects.filter(next_attempt_at__isnull=False, next_attempt_at__lte=now)
            .exclude(priority=0)
            .exists()
        )
        ordering = ("-priority", "next_attempt_at", "pk") if prioritised else _DUE_INDEX_ORDER
        rows = list(candidates.order_by(*ordering).values_list("pk", "account_id", "state")[:limit])
        if not rows:
            return []
        delivering = [row for row in rows if row[2] in PENDING_ITEM_STATES]
        copy_only = [row[0] for row in rows if row[2] not in PENDING_ITEM_STATES]
        allowances = {
            pk: _Allowance(account, now)
            for pk, account in _limited_accounts({row[1] for row in delivering}).items()
        }
        taken: list[int] = []
        for item_id, account_id, _state in delivering:
            allowance = allowances.get(account_id)
            wait = allowance.take() if allowance is not None else None
            if wait is None:
                taken.append(item_id)
            else:
                OutboxItem.objects.filter(pk=item_id).update(
                    next_attempt_at=wait.until, wait_reason=wait.reason, wait_detail=wait.detail
                )
        claimed_ids = taken + copy_only
        if not claimed_ids:
            return []
        # The conditional UPDATEs: still due, lease still free (SQLite's guarantee).
        if taken:
            OutboxItem.objects.filter(pk__in=taken).filter(due_filter(now)).update(
                lease_holder=worker_id,
                lease_expires_at=until,
                state=ItemState.SENDING,
                wait_reason=WaitReason.NONE,
                wait_detail="",
                attempt_count=F("attempt_count") + 1,
            )
        if copy_only:
            OutboxItem.objects.filter(pk__in=copy_only).filter(due_filter(now)).update(
                lease_holder=worker_id, lease_expires_at=until
            )
        ours = dict(
            OutboxItem.objects.filter(
                pk__in=claimed_ids, lease_holder=worker_id, lease_expires_at=until
            ).values_list("pk", "account_id")
        )
        sending = [pk for pk in taken if pk in ours]
        attempts: dict[int, int] = {}
        if sending:
            # An attempt still open belongs to a worker that died during it.
            DeliveryAttempt.objects.filter(
                item_id__in=sending, outcome=AttemptOutcome.IN_PROGRESS
            ).update(outcome=AttemptOutcome.INTERRUPTED, finished_at=now)
            attempts = _open_attempts(sending, worker_id, now)
    order = {pk: index for index, (pk, _a, _s) in enumerate(rows)}
    return sorted(
        (Claimed(pk, account_id, attempts.get(pk)) for pk, account_id in ours.items()),
        key=lambda claim: order[claim.item_id],
    )


def _open_attempts(item_ids: list[int], worker_id: str, now: datetime) -> dict[int, int]:
    """One attempt row per item, written by one ``INSERT ... SELECT``; ``{item: attempt}``."""
    q = connection.ops.quote_name
    columns = ", ".join(
        q(c)
        for c in (
            "item_id",
            "account_id",
            "worker",
            "started_at",
            "outcome",
            "recipients",
            "data_reply",
            "error",
        )
    )
    started: Any = _db_value(DeliveryAttempt, "started_at", now)
    no_recipients: Any = _db_value(DeliveryAttempt, "recipients", [])
    with connection.cursor() as cursor:
        for chunk in range(0, len(item_ids), 500):
            ids = item_ids[chunk : chunk + 500]
            cursor.execute(
                f"INSERT INTO {q(DeliveryAttempt._meta.db_table)} ({columns}) "  # noqa: S608
                f"SELECT {q('id')}, {q('account_id')}, %s, %s, %s, %s, '', '' "
                f"FROM {q(OutboxItem._meta.db_table)} "
                f"WHERE {q('id')} IN ({', '.join(['%s'] * len(ids))})",
                [
                    worker_id,
                    started,
                    AttemptOutcome.IN_PROGRESS.value,
                    no_recipients,
                    *ids,
                ],
            )
    return dict(
        DeliveryAttempt.objects.filter(
            item_id__in=item_ids,
            worker=worker_id,
            started_at=now,
            outcome=AttemptOutcome.IN_PROGRESS,
        ).values_list("item_id", "pk")
    )


def release(claims: Iterable[Claimed], worker_id: str) -> None:
    """Give back claimed items that were not started (a stopping worker)."""
    for claim in claims:
        with writing():
            OutboxItem.objects.filter(pk=claim.item_id, lease_holder=worker_id).update(
                lease_holder="", lease_expires_at=None, state=stored_item_state(claim.item_id)
            )
            if claim.attempt_id is not None:
                DeliveryAttempt.objects.filter(
                    pk=claim.attempt_id, outcome=AttemptOutcome.IN_PROGRESS
                ).delete()


# -- classification -----------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    status: RecipientStatus
    code: int | None
    reply: str


def _reply_code(reply: str | None) -> int | None:
    if reply and reply[:3].isdigit():
        return int(reply[:3])
    return None


def is_account_problem(exc: MailError) -> bool:
    """Errors about the account or its server, not this message: every item waits."""
    if isinstance(exc, ConnectionLost):
        return False  # mid-conversation: this item's transaction
    return isinstance(exc, AuthError | TLSError | PlaintextRefused | ConnectError)


def verdicts_from_result(result: SendResult) -> dict[str, Verdict]:
    verdicts: dict[str, Verdict] = {}
    for outcome in result.recipients:
        if outcome.accepted:
            status = RecipientStatus.SENT
        elif outcome.temporary:
            status = RecipientStatus.DEFERRED
        else:
            status = RecipientStatus.FAILED
        verdicts[outcome.address] = Verdict(status, outcome.code, outcome.reply)
    return verdicts


def verdict_from_error(exc: MailError) -> Verdict:
    reply = exc.server_reply or exc.detail
    if exc.temporary or is_account_problem(exc):
        return Verdict(RecipientStatus.DEFERRED, _reply_code(exc.server_reply), reply)
    if isinstance(exc, SMTPRejected) or (_reply_code(exc.server_reply) or 0) >= 500:
        return Verdict(RecipientStatus.FAILED, _reply_code(exc.server_reply), reply)
    return Verdict(RecipientStatus.DEFERRED, _reply_code(exc.server_reply), reply)


def _outcome(statuses: Collection[RecipientStatus]) -> AttemptOutcome:
    if statuses and all(s == RecipientStatus.SENT for s in statuses):
        return AttemptOutcome.SENT
    if RecipientStatus.SENT in statuses:
        return AttemptOutcome.PARTIAL
    if RecipientStatus.DEFERRED in statuses:
        return AttemptOutcome.DEFERRED
    return AttemptOutcome.FAILED


# PostgreSQL: step 4 as one ``UPDATE ... FROM (VALUES ...)`` per table; the
# columns of the rows above, in order, with their types.
_RECIPIENT_FROM_VALUES = (
    "UPDATE outgoing_outboxrecipient AS t SET status = v.status, code = v.code::integer, "
    "reply = v.reply, sent_at = COALESCE(v.sent_at::timestamptz, t.sent_at) "
    "FROM (VALUES {values}) AS v(status, code, reply, sent_at, item_id, address) "
    "WHERE t.item_id = v.item_id::bigint AND t.address = v.address "
    "AND t.status NOT IN ('cancelled', 'bounced')"
)
_ATTEMPT_FROM_VALUES = (
    "UPDATE outgoing_deliveryattempt AS t SET finished_at = v.finished_at::timestamptz, "
    "outcome = v.outcome, recipients = v.recipients::jsonb, data_code = v.data_code::integer, "
    "data_reply = v.data_reply, error = v.error "
    "FROM (VALUES {values}) AS v(finished_at, outcome, recipients, data_code, data_reply, "
    "error, id) WHERE t.id = v.id::bigint"
)


def _update_from_values(cursor: Any, template: str, rows: list[tuple[Any, ...]]) -> None:
    for chunk in range(0, len(rows), 500):
        part = rows[chunk : chunk + 500]
        row = "(" + ", ".join(["%s"] * len(part[0])) + ")"
        cursor.execute(
            template.format(values=", ".join([row] * len(part))),
            [value for values in part for value in values],
        )


# -- the courier: one worker thread's sending ---------------------------------------


# The fields of an item that sending and recording read (and webhooks' payloads).
_SENDING_FIELDS = (
    "id",
    "account_id",
    "blob_id",
    "mail_from",
    "message_id",
    "subject",
    "state",
    "deferrals",
    "expires_at",
    "sent_copy",
    "sent_copy_attempts",
    "created_at",
)


class _Row(NamedTuple):
    """A recipient row as step 2 found it (what undoing step 2 puts back)."""

    pk: int
    item_id: int
    address: str
    status: str
    attempts: int
    last_attempt_at: datetime | None


@dataclass
class _Started:
    """An item after step 2: whom to send to, verdicts already known, the rows as they were."""

    targets: list[str]
    verdicts: dict[str, Verdict]
    rows: list[_Row]


@dataclass
class _Done:
    """An item after step 3: what the server said, waiting for the batch's step-4 commit."""

    item: OutboxItem
    attempt_id: int
    verdicts: dict[str, Verdict]
    data_code: int | None
    data_reply: str
    error: str


def _db_value(model: type[models.Model], name: str, value: object) -> object:
    """``value`` as the database takes it for ``model.name`` (for raw ``executemany``)."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    return field.get_db_prep_save(value, connection)


def _record_recipient_sql() -> str:
    q = connection.ops.quote_name
    # Only quoted names of our own tables and columns are formatted in.
    return (
        f"UPDATE {q(OutboxRecipient._meta.db_table)} SET {q('status')} = %s, {q('code')} = %s, "  # noqa: S608
        f"{q('reply')} = %s, {q('sent_at')} = COALESCE(%s, {q('sent_at')}) "
        f"WHERE {q('item_id')} = %s AND {q('address')} = %s "
        f"AND {q('status')} NOT IN ('{RecipientStatus.CANCELLED.value}', '{RecipientStatus.BOUNCED.value}')"
    )


def _record_attempt_sql() -> str:
    q = connection.ops.quote_name
    return (
        f"UPDATE {q(DeliveryAttempt._meta.db_table)} SET {q('finished_at')} = %s, "  # noqa: S608
        f"{q('outcome')} = %s, {q('recipients')} = %s, {q('data_code')} = %s, "
        f"{q('data_reply')} = %s, {q('error')} = %s WHERE {q('id')} = %s"
    )


@dataclass
class _OpenSender:
    stamp: object
    sender: Sender
    last_used: float


class Courier:
    """Delivers claimed items; keeps one sender (connection) per account between batches.

    Not thread-safe: one courier per worker thread, each with its own ``worker_id``.
    """

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._senders: dict[int, _OpenSender] = {}
        self._copier = SentCopier()
        self.stopping = False
        # Messages sent before their outcomes are committed (the duplicate window).
        self.record_every = max(1, int(settings.POSTROOM_OUTBOX_RECORD_EVERY))
        # Event types some webhook wants, read once per batch (none: no payload is built).
        self._webhook_events: set[str] = set()

    # -- connections
    def _sender(self, account: EmailAccount) -> Sender:
        current = self._senders.get(account.pk)
        if current is not None and current.stamp == account.updated_at:
            current.last_used = time.monotonic()
            return current.sender
        self.drop_sender(account.pk)
        sender = make_sender(account)
        self._senders[account.pk] = _OpenSender(account.updated_at, sender, time.monotonic())
        return sender

    def drop_sender(self, account_id: int) -> None:
        current = self._senders.pop(account_id, None)
        if current is not None:
            try:
                current.sender.close()
            except MailError as exc:
                logger.debug("closing the sender of account %s: %s", account_id, exc)

    def close_idle(self, seconds: float = SENDER_IDLE_SECONDS) -> None:
        now = time.monotonic()
        for account_id, current in list(self._senders.items()):
            if now - current.last_used > seconds:
                self.drop_sender(account_id)

    def close(self) -> None:
        for account_id in list(self._senders):
            self.drop_sender(account_id)
        self._copier.close()

    # -- the batch
    def deliver_due(self, limit: int, *, item_ids: Collection[int] | None = None) -> int:
        """Claim up to ``limit`` due items and deliver them; returns how many were claimed."""
        claims = claim_due(self.worker_id, limit, item_ids=item_ids)
        if claims:
            self._deliver(claims)
        return len(claims)

    def _deliver(self, claims: list[Claimed]) -> dict[int, tuple[datetime, str]]:
        """Steps 2 to 4 for a claimed batch; returns the accounts that cannot send now.

        The items and their accounts are read in two queries; step 2 is one commit for
        the whole batch; then each item has its SMTP transaction, and their outcomes
        are committed together every ``record_every`` items or ``RECORD_SECONDS`` (the
        duplicate window of the module docstring), and at the end of the batch.
        """
        # Only what sending needs (anything else is read when used).
        items = OutboxItem.objects.only(*_SENDING_FIELDS).in_bulk(
            [claim.item_id for claim in claims]
        )
        accounts = EmailAccount.objects.in_bulk({each.account_id for each in items.values()})
        for each in items.values():
            each.account = accounts[each.account_id]  # one object per account, not per item
        self._webhook_events = wanted_event_types()
        blocked: dict[int, tuple[datetime, str]] = {}  # accounts that cannot send right now
        to_start: list[OutboxItem] = []
        for claim in claims:
            item = items.get(claim.item_id)
            if item is None or claim.attempt_id is None:
                continue
            if claim.account_id not in blocked:
                refusal = _account_refusal(item.account)
                if refusal is not None:
                    blocked[claim.account_id] = (timezone.now() + ACCOUNT_RETRY, refusal)
                    continue
                to_start.append(item)
        try:
            started = self._start(to_start)
        except Exception:
            # A database hiccup: nothing was marked; the leases expire and the items return.
            logger.exception("starting outbox items %s failed", [i.pk for i in to_start])
            return blocked
        done: list[_Done] = []  # sent, not yet recorded: the duplicate window
        since = 0.0
        for index, claim in enumerate(claims):
            if self.stopping:
                self._flush(done)
                rest = claims[index:]
                self._unstart([started[c.item_id] for c in rest if c.item_id in started])
                release(rest, self.worker_id)
                break
            item = items.get(claim.item_id)
            if item is None:
                continue
            try:
                if claim.attempt_id is None:
                    self._file_sent_copy(item)
                    continue
                if claim.account_id in blocked:
                    if item.pk in started:
                        self._unstart([started.pop(item.pk)])
                    until, detail = blocked[claim.account_id]
                    self._wait_for_account(claim, until, detail)
                    continue
                begun = started.pop(item.pk, None)
                if begun is None:
                    continue  # the lease was lost to another worker: it is theirs now
                outcome, problem = self._send(item, claim.attempt_id, begun)
            except Exception:
                # A bug or a database hiccup must not stop the batch; the lease
                # expires and the item is tried again.
                logger.exception("delivering outbox item %s failed", claim.item_id)
                continue
            if not done:
                since = time.monotonic()
            done.append(outcome)
            if problem is not None:
                blocked[claim.account_id] = problem
                self._flush(done)
                self._account_backoff(item.account, *problem)
            elif len(done) >= self.record_every or time.monotonic() - since >= RECORD_SECONDS:
                self._flush(done)
        self._flush(done)
        return blocked

    def _send(
        self, item: OutboxItem, attempt_id: int, begun: _Started
    ) -> tuple[_Done, tuple[datetime, str] | None]:
        """Step 3 for one item: its SMTP transaction, classified (recorded later, in a batch)."""
        account = item.account
        targets, verdicts = begun.targets, dict(begun.verdicts)
        error = ""
        data_code: int | None = None
        data_reply = ""
        problem: tuple[datetime, str] | None = None
        if targets:
            try:
                raw = read_blob(item.blob_id)
                result = self._sender(account).send(item.mail_from, targets, raw)
                verdicts.update(verdicts_from_result(result))
                data_code, data_reply = result.data_code, result.data_reply
            except MailError as exc:
                self.drop_sender(account.pk)
                verdict = verdict_from_error(exc)
                verdicts.update({address: verdict for address in targets})
                error = exc.detail
                if is_account_problem(exc):
                    problem = (timezone.now() + backoff(item.deferrals + 1), verdict.reply)
            except Exception as exc:
                self.drop_sender(account.pk)
                logger.exception("sending outbox item %s failed", item.pk)
                reply = _("Internal error: %(e)s") % {"e": type(exc).__name__}
                verdicts.update(
                    {address: Verdict(RecipientStatus.DEFERRED, None, reply) for address in targets}
                )
                error = reply
        return _Done(item, attempt_id, verdicts, data_code, data_reply, error), problem

    def _flush(self, done: list[_Done]) -> None:
        """Step 4 for the messages sent since the last flush: one commit, then Sent copies."""
        if not done:
            return
        batch = list(done)
        done.clear()
        try:
            copies = self._record(batch)
        except Exception:
            # The recipients stay "sending" under our lease; when it expires they are
            # sent again (these messages are the documented duplicate window).
            logger.exception("recording outbox items %s failed", [d.item.pk for d in batch])
            return
        for item in copies:
            try:
                item.refresh_from_db()
                self._file_sent_copy(item)
            except Exception:
                logger.exception("Sent copy of outbox item %s failed", item.pk)

    def _start(self, items: list[OutboxItem]) -> dict[int, _Started]:
        """Step 2 for a batch: recipients to ``sending`` and the leases renewed, in one commit.

        Items whose lease was lost to another worker are left out of the answer.
        """
        if not items:
            return {}
        now = timezone.now()
        ids = [item.pk for item in items]
        with writing():
            OutboxItem.objects.filter(pk__in=ids, lease_holder=self.worker_id).update(
                lease_expires_at=now + timedelta(seconds=lease_seconds())
            )
            ours = set(
                OutboxItem.objects.filter(pk__in=ids, lease_holder=self.worker_id).values_list(
                    "pk", flat=True
                )
            )
            if not ours:
                return {}
            pending = OutboxRecipient.objects.filter(
                item_id__in=ours, status__in=PENDING_RECIPIENT_STATUSES
            ).order_by("item_id", "pk")
            if connection.features.has_select_for_update:
                pending = pending.select_for_update()  # against a concurrent cancel
            rows = [
                _Row(*values)
                for values in pending.values_list(
                    "pk", "item_id", "address", "status", "attempts", "last_attempt_at"
                )
            ]
            suppressed = (
                suppressed_among({row.address for row in rows})
                if Suppression.objects.exists()  # one cheap query when the list is empty
                else {}
            )
            started = {pk: _Started([], {}, []) for pk in ours}
            for row in rows:
                begun = started[row.item_id]
                if row.address in suppressed:
                    begun.verdicts[row.address] = Verdict(
                        RecipientStatus.FAILED,
                        None,
                        _("Not sent: the address is on the suppression list (%(reason)s).")
                        % {"reason": suppressed[row.address]},
                    )
                else:
                    begun.targets.append(row.address)
                    begun.rows.append(row)
            sending: dict[str, object] = {
                "status": RecipientStatus.SENDING,
                "attempts": F("attempts") + 1,
                "last_attempt_at": now,
            }
            if not suppressed:
                # The rows just read (locked on PostgreSQL), without listing them.
                OutboxRecipient.objects.filter(
                    item_id__in=ours, status__in=PENDING_RECIPIENT_STATUSES
                ).update(**sending)
            marked = [row.pk for row in rows if row.address not in suppressed] if suppressed else []
            for chunk in range(0, len(marked), 500):
                OutboxRecipient.objects.filter(pk__in=marked[chunk : chunk + 500]).update(**sending)
        return started

    def _unstart(self, begun: list[_Started]) -> None:
        """Undo step 2 for items that will not be sent now (the account, or a stop)."""
        rows = [row for entry in begun for row in entry.rows]
        if not rows:
            return
        with writing():
            still = set(
                OutboxRecipient.objects.filter(
                    pk__in=[row.pk for row in rows], status=RecipientStatus.SENDING
                ).values_list("pk", flat=True)
            )
            OutboxRecipient.objects.bulk_update(
                [
                    OutboxRecipient(
                        pk=row.pk,
                        status=row.status,
                        attempts=row.attempts,
                        last_attempt_at=row.last_attempt_at,
                    )
                    for row in rows
                    if row.pk in still
                ],
                ["status", "attempts", "last_attempt_at"],
            )

    def _record(self, batch: list[_Done]) -> list[OutboxItem]:
        """Step 4 for a batch, in one commit: every recipient's verdict, the attempts,
        the items; returns the items whose copy goes to Sent now.

        Statements are few whatever the batch size: one ``executemany`` for the
        recipients and one for the attempts, one read of the items' statuses, one
        ``UPDATE`` per group of items ending alike (retries each get their own).
        """
        now = timezone.now()
        recipient_rows: list[tuple[Any, ...]] = []
        attempt_rows: list[tuple[Any, ...]] = []
        no_attempt: list[int] = []
        finals: list[tuple[_Done, dict[str, Verdict]]] = []
        db_now = _db_value(DeliveryAttempt, "finished_at", now)
        for entry in batch:
            item = entry.item
            expired = now >= item.expires_at
            final: dict[str, Verdict] = {}
            for address, verdict in entry.verdicts.items():
                if verdict.status == RecipientStatus.DEFERRED and expired:
                    verdict = Verdict(
                        RecipientStatus.FAILED,
                        verdict.code,
                        _("Gave up after %(h)d hours of retrying. Last reply: %(r)s")
                        % {"h": item.account.max_queue_age, "r": verdict.reply},
                    )
                final[address] = verdict
                recipient_rows.append(
                    (
                        str(verdict.status),
                        verdict.code,
                        verdict.reply[:5000],
                        db_now if verdict.status == RecipientStatus.SENT else None,
                        item.pk,
                        address,
                    )
                )
            finals.append((entry, final))
            if not final:
                # Nothing was left to send (cancelled meanwhile): no attempt happened.
                no_attempt.append(entry.attempt_id)
                continue
            attempt_rows.append(
                (
                    db_now,
                    str(_outcome([v.status for v in final.values()])),
                    _db_value(
                        DeliveryAttempt,
                        "recipients",
                        [
                            {
                                "address": address,
                                "status": str(v.status),
                                "code": v.code,
                                "reply": v.reply[:2000],
                            }
                            for address, v in final.items()
                        ],
                    ),
                    entry.data_code,
                    entry.data_reply[:2000],
                    entry.error[:2000],
                    entry.attempt_id,
                )
            )
        copies: list[OutboxItem] = []
        with writing(), connection.cursor() as cursor:
            if no_attempt:
                DeliveryAttempt.objects.filter(pk__in=no_attempt).delete()
            if connection.vendor == "postgresql":
                # One statement each, not one per row: PostgreSQL parses and plans
                # every statement of an executemany.
                _update_from_values(cursor, _RECIPIENT_FROM_VALUES, recipient_rows)
                _update_from_values(cursor, _ATTEMPT_FROM_VALUES, attempt_rows)
            else:
                if recipient_rows:
                    cursor.executemany(_record_recipient_sql(), recipient_rows)
                if attempt_rows:
                    cursor.executemany(_record_attempt_sql(), attempt_rows)
            statuses: dict[int, list[str]] = {}
            ids = [entry.item.pk for entry in batch]
            q = connection.ops.quote_name
            cursor.execute(
                f"SELECT {q('item_id')}, {q('status')} "  # noqa: S608
                f"FROM {q(OutboxRecipient._meta.db_table)} "
                f"WHERE {q('item_id')} IN ({', '.join(['%s'] * len(ids))})",
                ids,
            )
            for item_id, status in cursor.fetchall():
                statuses.setdefault(item_id, []).append(status)
            alike: dict[tuple[tuple[str, object], ...], list[int]] = {}
            for entry, final in finals:
                item = entry.item
                update = self._item_update(item, final, statuses.get(item.pk, []), now)
                if update.get("sent_copy") == SentCopyState.PENDING:
                    copies.append(item)
                if update.get("wait_reason") == WaitReason.BACKOFF:
                    OutboxItem.objects.filter(pk=item.pk).update(**update)
                else:
                    alike.setdefault(tuple(sorted(update.items())), []).append(item.pk)
            for fields, ids in alike.items():
                OutboxItem.objects.filter(pk__in=ids).update(**dict(fields))
            for entry, final in finals:
                item = entry.item
                self._emit_outcomes(item, final)
                failed = [a for a, v in final.items() if v.status == RecipientStatus.FAILED]
                if failed:
                    do_log_event(
                        kind="outbox.failed",
                        level=EventLevel.WARNING,
                        account=item.account,
                        message=_("Not delivered to %(who)s: %(reply)s")
                        % {"who": ", ".join(failed), "reply": final[failed[0]].reply},
                        data={"item": item.pk, "message_id": item.message_id},
                    )
                    # E3: the person who queued it hears of it (once per item).
                    do_notify_delivery_failed(item, failed, final[failed[0]].reply)
        return copies

    @staticmethod
    def _item_update(
        item: OutboxItem, final: dict[str, Verdict], statuses: list[str], now: datetime
    ) -> dict[str, object]:
        """The item's new fields once its recipients are recorded."""
        state = item_state(statuses)
        update: dict[str, object] = {"state": state}
        if state in PENDING_ITEM_STATES:
            deferred = any(v.status == RecipientStatus.DEFERRED for v in final.values())
            deferrals = item.deferrals + (1 if deferred else 0)
            update.update(
                deferrals=deferrals,
                next_attempt_at=min(now + backoff(max(deferrals, 1)), item.expires_at),
                wait_reason=WaitReason.BACKOFF,
                wait_detail=next(
                    (v.reply for v in final.values() if v.status == RecipientStatus.DEFERRED),
                    "",
                )[:2000],
                lease_holder="",
                lease_expires_at=None,
            )
            return update
        update.update(finished_at=now, wait_reason=WaitReason.NONE, wait_detail="")
        sent_any = RecipientStatus.SENT in statuses
        if item.account.copy_to_sent and sent_any and item.sent_copy == "":
            # Keep the lease: the copy is filed right after this commit.
            update.update(sent_copy=SentCopyState.PENDING, next_attempt_at=now)
        else:
            update.update(next_attempt_at=None, lease_holder="", lease_expires_at=None)
        return update

    def _emit_outcomes(self, item: OutboxItem, final: dict[str, Verdict]) -> None:
        """message.sent / message.failed for the recipients settled in this attempt."""
        for status, event in (
            (RecipientStatus.SENT, EventType.MESSAGE_SENT),
            (RecipientStatus.FAILED, EventType.MESSAGE_FAILED),
        ):
            if event not in self._webhook_events:
                continue
            rows = [
                {"address": a, "status": str(v.status), "code": v.code, "reply": v.reply[:1000]}
                for a, v in final.items()
                if v.status == status
            ]
            if rows:
                emit(
                    event,
                    outbox_payload(item, rows),
                    account_id=item.account_id,
                    ordering_key=f"outbox:{item.pk}",
                )

    def _wait_for_account(self, claim: Claimed, until: datetime, detail: str) -> None:
        """Give a claimed item back, to be tried when the account may send again."""
        with writing():
            OutboxItem.objects.filter(pk=claim.item_id, lease_holder=self.worker_id).update(
                state=stored_item_state(claim.item_id),
                lease_holder="",
                lease_expires_at=None,
                next_attempt_at=until,
                wait_reason=WaitReason.ACCOUNT,
                wait_detail=detail[:2000],
            )
            if claim.attempt_id is not None:
                DeliveryAttempt.objects.filter(pk=claim.attempt_id).delete()

    def _account_backoff(self, account: EmailAccount, until: datetime, detail: str) -> None:
        """Every due item of an account that cannot connect waits with it (and says why)."""
        now = timezone.now()
        with writing():
            waiting = (
                OutboxItem.objects.filter(
                    account_id=account.pk,
                    state__in=[ItemState.QUEUED, ItemState.DEFERRED],
                    next_attempt_at__lt=until,
                )
                .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
                .update(
                    next_attempt_at=until, wait_reason=WaitReason.ACCOUNT, wait_detail=detail[:2000]
                )
            )
            do_log_event(
                kind="outbox.account_error",
                level=EventLevel.ERROR,
                account=account,
                message=_("Sending from %(account)s failed: %(detail)s")
                % {"account": account.name, "detail": detail},
                data={"waiting": waiting, "retry_at": until.isoformat()},
            )

    def _file_sent_copy(self, item: OutboxItem) -> None:
        """C11, after delivery: APPEND to the Sent folder, then release the lease."""
        now = timezone.now()
        update: dict[str, object] = {"lease_holder": "", "lease_expires_at": None}
        try:
            self._copier.append(item.account, read_blob(item.blob_id), item.created_at)
        except MailError as exc:
            tries = item.sent_copy_attempts + 1
            give_up = not exc.temporary or tries >= SENT_COPY_TRIES
            update.update(
                sent_copy_attempts=tries,
                sent_copy_error=(exc.server_reply or exc.detail)[:2000],
                sent_copy=SentCopyState.FAILED if give_up else SentCopyState.PENDING,
                next_attempt_at=None if give_up else now + backoff(tries),
            )
            logger.warning("Sent copy of outbox item %s failed: %s", item.pk, exc)
        else:
            update.update(
                sent_copy=SentCopyState.DONE,
                sent_copy_error="",
                sent_copy_attempts=item.sent_copy_attempts + 1,
                next_attempt_at=None,
            )
        with writing():
            OutboxItem.objects.filter(pk=item.pk, lease_holder=self.worker_id).update(**update)


def _account_refusal(account: EmailAccount) -> str | None:
    if not account.outgoing_enabled:
        return _("Outgoing mail is switched off for this account.")
    if account.awaiting_password:
        return _("The account is awaiting its password.")
    return None


def deliver_due(worker_id: str, limit: int, *, item_ids: Collection[int] | None = None) -> int:
    """Claim and deliver up to ``limit`` due items now; returns how many were claimed.

    What a worker loop calls (through its own long-lived :class:`Courier`,
    which keeps connections between calls), and what ``postroom send --wait``
    calls in the foreground when no worker runs (``item_ids`` narrows the
    claim to the caller's items). Connections opened here are closed on return.
    """
    courier = Courier(worker_id)
    try:
        return courier.deliver_due(limit, item_ids=item_ids)
    finally:
        courier.close()
