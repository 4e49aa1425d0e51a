"""B11: tell the chosen addresses about threads nobody answered within N minutes.

Per account whose routing settings have ``unreplied_after_minutes``: a thread
of that account is unreplied when its latest message

* is from someone else (not one of our accounts' addresses: our Sent copy or
  a reply stored in the thread counts as an answer),
* is older than N minutes, and arrived after the setting was switched on and
  within the last :data:`MAX_AGE` (a first sync of old mail never notifies),
* is not flagged answered, is not automatic mail (RFC 3834, bounces, lists,
  no-reply senders: what routing calls a loop) and was not skipped by a rule,
* and no outbox item answers it: an item queued after it, to its sender or
  from its record, whose In-Reply-To or References name a message of the
  thread (or that was sent from the same record), and that was not an
  automatic mail itself (auto-replies do not count as answers).

Each such thread is reported once: the :class:`UnrepliedNotice` row is
written in the same transaction as the mail to ``unreplied_notify`` (queued
through the account itself, else the default outgoing account) and the in-app
notification to the account's people. :func:`do_check_unreplied` is run every
minute by ``postroom worker`` (and ``postroom run``); it costs one query when
no account asks for it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, Subquery
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount
from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel
from postroom.core.notify import absolute_url, do_notify_account_people
from postroom.incoming.blobs import read_blob
from postroom.incoming.models import Message, Thread
from postroom.mail.mime.fields import header_fields
from postroom.outgoing.actions import OutboxError, do_queue_message
from postroom.outgoing.models import ItemState, OutboxItem
from postroom.records.actions import our_addresses
from postroom.records.models import (
    RecordLink,
    RoutedMessage,
    RouteOutcome,
    RoutingSettings,
    UnrepliedNotice,
)

logger = logging.getLogger(__name__)

# Mail older than this is never reported, whenever the setting was switched on.
MAX_AGE = timedelta(days=7)
# Tolerance for senders' clocks when comparing a Date header with our own times.
CLOCK_SKEW = timedelta(minutes=10)
# At most this many threads are examined per account and pass; the rest wait a minute.
BATCH = 200

_NOT_ANSWERS = (ItemState.CANCELLED, ItemState.FAILED)


@dataclass
class UnrepliedReport:
    accounts: int = 0
    examined: int = 0
    notified: int = 0
    thread_ids: list[int] = field(default_factory=list)


def _strip(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


def _ids_in(values: list[str]) -> set[str]:
    found: set[str] = set()
    for value in values:
        found.update(_strip(part) for part in value.replace(",", " ").split() if part.strip())
    return found


class _OutboxHeaders:
    """In-Reply-To/References and Auto-Submitted of outbox items, read once per pass."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[set[str], bool]] = {}

    def get(self, item: OutboxItem) -> tuple[set[str], bool]:
        if item.pk not in self._cache:
            try:
                raw = read_blob(item.blob_id)
            except OSError:
                logger.warning("outbox item %s: stored message missing", item.pk)
                raw = b""
            fields = header_fields(raw)
            parents = _ids_in(fields.get("in-reply-to", []) + fields.get("references", []))
            auto = (fields.get("auto-submitted") or ["no"])[0].strip().lower()
            self._cache[item.pk] = (parents, bool(auto) and not auto.startswith("no"))
        return self._cache[item.pk]


def _answered_by_outbox(
    thread: Thread, latest: Message, headers: _OutboxHeaders, own_sent_since: datetime
) -> bool:
    records = list(
        RecordLink.objects.filter(message__thread=thread).values_list("record_id", flat=True)
    )
    sender = latest.from_email.strip()
    to_sender = Q(recipients__address__iexact=sender) if sender else Q(pk__in=[])
    from_record = Q(record_links__record_id__in=records) if records else Q(pk__in=[])
    items = (
        OutboxItem.objects.filter(to_sender | from_record, created_at__gte=own_sent_since)
        .exclude(state__in=_NOT_ANSWERS)
        .distinct()
        .order_by("created_at")
    )
    thread_ids: set[str] | None = None
    for item in items[:50]:
        parents, automatic = headers.get(item)
        if automatic:
            continue
        if records and RecordLink.objects.filter(outbox_item=item, record_id__in=records).exists():
            return True
        if thread_ids is None:
            thread_ids = {
                _strip(i)
                for i in Message.objects.filter(thread=thread).values_list("message_id", flat=True)
                if i
            }
        if parents & thread_ids:
            return True
    return False


def _latest(thread: Thread) -> Message | None:
    return Message.objects.filter(thread=thread).order_by("-date", "-created_at", "-id").first()


def _automatic(message: Message) -> bool:
    from postroom.records.routing import automatic_reason

    try:
        fields = header_fields(read_blob(message.blob_id))
    except OSError:
        return False
    return bool(automatic_reason(fields, message.from_email.strip().lower()))


def _is_unreplied(
    thread: Thread, own: frozenset[str], floor: datetime, headers: _OutboxHeaders
) -> Message | None:
    """The message that waits for an answer, or None when the thread needs no notice."""
    latest = _latest(thread)
    if latest is None or latest.date is None:
        return None  # (the thread's date is its latest message's: not a candidate)
    if latest.from_email.strip().lower() in own or not latest.from_email:
        return None  # we wrote last (our Sent copy, a reply stored in the thread)
    if latest.answered:
        return None
    if latest.created_at < floor or latest.date < floor - CLOCK_SKEW:
        return None  # arrived before the setting was switched on, or too long ago
    outcome = RoutedMessage.objects.filter(message=latest).values_list("outcome", flat=True).first()
    if outcome in (RouteOutcome.LOOP, RouteOutcome.SKIPPED):
        return None
    if _automatic(latest):
        return None  # bounces, lists, auto-replies, no-reply senders expect no answer
    if _answered_by_outbox(thread, latest, headers, latest.date - CLOCK_SKEW):
        return None
    return latest


def addresses_of(settings: RoutingSettings) -> list[str]:
    """The configured B11 addresses, cleaned."""
    return [str(a).strip() for a in settings.unreplied_notify or [] if str(a).strip()]


def _thread_url(message: Message) -> str:
    link = RecordLink.objects.filter(message=message).select_related("record").first()
    if link is not None:
        return f"/records/{link.record_id}/"
    return reverse("web:mail_message", args=[message.pk])


def _record_reference(message: Message) -> str:
    link = RecordLink.objects.filter(message=message).select_related("record").first()
    return link.record.reference if link is not None else ""


def _queue_notice_mail(
    account: EmailAccount, settings: RoutingSettings, message: Message, minutes: int, url: str
) -> str:
    """Queue the mail to the configured addresses; returns "" or why it could not go."""
    addresses = addresses_of(settings)
    if not addresses:
        return ""
    sender_name = (
        f"{message.from_name} <{message.from_email}>" if message.from_name else message.from_email
    )
    reference = _record_reference(message)
    lines = [
        _("No reply for %(minutes)d minutes to this mail to %(account)s:")
        % {"minutes": minutes, "account": account.email},
        "",
        _("From: %(sender)s") % {"sender": sender_name},
        _("Subject: %(subject)s") % {"subject": message.subject or _("(no subject)")},
    ]
    if message.date is not None:
        when = timezone.localtime(message.date).strftime("%Y-%m-%d %H:%M %Z")
        lines.append(_("Received: %(date)s") % {"date": when})
    if reference:
        lines.append(_("Record: %(reference)s") % {"reference": reference})
    lines += ["", _("Open in Postroom: %(url)s") % {"url": absolute_url(url)}]
    text = "\n".join(lines) + "\n"
    subject = _("Unreplied for %(minutes)d minutes: %(subject)s") % {
        "minutes": minutes,
        "subject": message.subject or _("(no subject)"),
    }
    problems = []
    default = EmailAccount.objects.filter(default_outgoing=True).exclude(pk=account.pk).first()
    for sender in [account, default]:
        if sender is None:
            continue
        try:
            with transaction.atomic():
                do_queue_message(
                    sender,
                    actor=None,
                    to=addresses,
                    subject=subject,
                    text=text,
                    extra_headers={"Auto-Submitted": "auto-generated"},
                    idempotency_key=f"unreplied:{message.thread_id}",
                )
            return ""
        except (OutboxError, ValueError) as exc:
            problems.append(str(exc))
    return " ".join(problems) or _("there is no default outgoing account")


def _notify(
    account: EmailAccount, settings: RoutingSettings, thread: Thread, message: Message
) -> bool:
    """Write the notice, queue the mail and the in-app notification, all at once."""
    minutes = int(settings.unreplied_after_minutes or 0)
    url = _thread_url(message)
    try:
        with transaction.atomic():
            UnrepliedNotice.objects.create(thread=thread)
            problem = _queue_notice_mail(account, settings, message, minutes, url)
            do_notify_account_people(
                account,
                kind="thread.unreplied",
                key=f"unreplied:{thread.pk}",
                title=_("No reply for %(minutes)d minutes: %(subject)s")
                % {"minutes": minutes, "subject": message.subject or _("(no subject)")},
                body=_("From %(sender)s to %(account)s.")
                % {"sender": message.from_email, "account": account.email},
                url=url,
                # Whoever is among the configured addresses has the mail already.
                skip_mail=addresses_of(settings),
            )
            do_log_event(
                kind="thread.unreplied",
                level=EventLevel.WARNING if problem else EventLevel.INFO,
                account=account,
                message=(
                    _(
                        "Thread %(subject)s unreplied after %(minutes)d minutes; the mail to %(to)s could not be queued: %(problem)s"
                    )
                    if problem
                    else _(
                        "Thread %(subject)s unreplied after %(minutes)d minutes; notified %(to)s."
                    )
                )
                % {
                    "subject": message.subject or _("(no subject)"),
                    "minutes": minutes,
                    "to": ", ".join(settings.unreplied_notify or []) or _("the account's people"),
                    "problem": problem,
                },
                data={"thread": thread.pk, "message": message.pk},
            )
    except IntegrityError:
        return False  # another worker reported it first
    return True


# Threads found answered (or not needing an answer), by the latest message they
# were judged on: a worker judges each (thread, latest message) once, not every
# minute for a week. Lost on restart, which costs one full look.
_settled: dict[int, int] = {}
_settled_lock = threading.Lock()


def _candidates(
    settings: RoutingSettings, own: frozenset[str], floor: datetime, cutoff: datetime
) -> list[tuple[Thread, int]]:
    """Threads due a look, with their latest message's id; most filtering is in SQL."""
    latest = Message.objects.filter(thread=OuterRef("pk")).order_by("-date", "-created_at", "-id")
    rows = (
        Thread.objects.filter(
            account=settings.account,
            last_message_at__lte=cutoff,
            last_message_at__gte=floor - CLOCK_SKEW,
        )
        .exclude(pk__in=UnrepliedNotice.objects.values("thread_id"))
        .annotate(
            latest_id=Subquery(latest.values("id")[:1]),
            latest_from=Lower(Subquery(latest.values("from_email")[:1])),
            latest_answered=Subquery(latest.values("answered")[:1]),
            latest_created=Subquery(latest.values("created_at")[:1]),
        )
        .filter(latest_answered=False, latest_created__gte=floor)
        .exclude(latest_from__in=own)
        .exclude(latest_from="")
        .order_by("last_message_at", "pk")
    )
    return [(thread, int(thread.latest_id)) for thread in rows]


def do_check_unreplied(now: datetime | None = None) -> UnrepliedReport:
    """Report every thread that waits longer than its account allows; once per thread.

    ``now`` is for tests (controlled time); the worker passes nothing.
    """
    now = now or timezone.now()
    report = UnrepliedReport()
    configured = list(
        RoutingSettings.objects.filter(unreplied_after_minutes__isnull=False).select_related(
            "account"
        )
    )
    if not configured:
        return report
    own = our_addresses()
    headers = _OutboxHeaders()
    for settings in configured:
        if settings.unreplied_since is None:
            # Switched on without do_save_routing_settings: from now on.
            RoutingSettings.objects.filter(pk=settings.pk).update(unreplied_since=now)
            continue
        report.accounts += 1
        cutoff = now - timedelta(minutes=int(settings.unreplied_after_minutes or 0))
        floor = max(settings.unreplied_since, now - MAX_AGE)
        examined = 0
        for thread, latest_id in _candidates(settings, own, floor, cutoff):
            with _settled_lock:
                if _settled.get(thread.pk) == latest_id:
                    continue
            if examined >= BATCH:
                break  # the rest next minute
            examined += 1
            report.examined += 1
            try:
                message = _is_unreplied(thread, own, floor, headers)
                if message is None:
                    with _settled_lock:
                        _settled[thread.pk] = latest_id
                elif _notify(settings.account, settings, thread, message):
                    report.notified += 1
                    report.thread_ids.append(thread.pk)
            except Exception:
                logger.exception("unreplied check of thread %s failed", thread.pk)
    return report
