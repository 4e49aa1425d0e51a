"""Read-only look-ups shared by the web UI, the API and the CLI: filters, timelines, counts.

Callers pass a queryset that permissions already narrowed (``records_for``);
nothing here checks rights or changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from postroom.accounts.models import EmailAccount
from postroom.incoming.models import Message
from postroom.outgoing.models import OutboxItem
from postroom.records.models import Record, RecordLink, RecordType, RoutedMessage, RouteOutcome


@dataclass(frozen=True)
class RecordFilters:
    """What lists filter by; every part optional. ``type`` is a key or a name, case-insensitive."""

    type: str = ""
    status: str = ""
    owner: str = ""  # a username; "-" for records without owner
    contact: str = ""  # an address or a contact id
    account: int | None = None
    q: str = ""


def find_record_type(value: str) -> RecordType | None:
    """A record type by key, name or prefix, case-insensitive."""
    value = value.strip()
    if not value:
        return None
    return (
        RecordType.objects.filter(
            Q(key__iexact=value) | Q(name__iexact=value) | Q(prefix__iexact=value)
        )
        .order_by("pk")
        .first()
    )


def filter_records(records: QuerySet[Record], filters: RecordFilters) -> QuerySet[Record]:
    if filters.type:
        found = find_record_type(filters.type)
        records = records.filter(type=found) if found else records.none()
    if filters.status:
        records = records.filter(status=filters.status)
    if filters.owner == "-":
        records = records.filter(owner__isnull=True)
    elif filters.owner:
        records = records.filter(owner__username=filters.owner)
    if filters.contact:
        value = filters.contact.strip()
        if value.isdigit():
            records = records.filter(contact_id=int(value))
        else:
            records = records.filter(contact__email=value.lower())
    if filters.account is not None:
        records = records.filter(account_id=filters.account)
    if filters.q.strip():
        q = filters.q.strip()
        records = records.filter(Q(title__icontains=q) | Q(reference__iexact=q))
    return records


def with_counts(records: QuerySet[Record]) -> QuerySet[Record]:
    """Adds ``message_count`` (linked received messages) to each record."""
    return (
        records.select_related("type", "owner", "contact", "account")
        .annotate(message_count=Count("links", filter=Q(links__message__isnull=False)))
        .order_by("-last_activity_at", "-id")
    )


@dataclass(frozen=True)
class TimelineEntry:
    """One message on a record's timeline, received or sent."""

    kind: str  # "received" or "sent"
    at: datetime
    via: str
    via_label: str
    subject: str
    sender: str
    recipients: list[str]
    message: Message | None
    outbox_item: OutboxItem | None

    @property
    def id(self) -> int:
        item = self.message or self.outbox_item
        assert item is not None
        return item.pk


def timeline(record: Record) -> list[TimelineEntry]:
    """The record's linked messages and outbox items, oldest first."""
    links = RecordLink.objects.filter(record=record).select_related("message", "outbox_item")
    entries: list[TimelineEntry] = []
    for link in links:
        if link.message is not None:
            m = link.message
            entries.append(
                TimelineEntry(
                    kind="received",
                    at=m.date or link.created_at,
                    via=link.via,
                    via_label=str(link.get_via_display()),
                    subject=m.subject,
                    sender=m.from_email,
                    recipients=[*m.to, *m.cc],
                    message=m,
                    outbox_item=None,
                )
            )
        elif link.outbox_item is not None:
            item = link.outbox_item
            entries.append(
                TimelineEntry(
                    kind="sent",
                    at=item.created_at,
                    via=link.via,
                    via_label=str(link.get_via_display()),
                    subject=item.subject,
                    sender=item.from_header,
                    recipients=list(item.recipients.values_list("address", flat=True)),
                    message=None,
                    outbox_item=item,
                )
            )
    entries.sort(key=lambda e: (e.at, e.kind, e.id))
    return entries


def timeline_dicts(record: Record) -> list[dict[str, Any]]:
    """The timeline as the API shows it."""
    return [
        {
            "kind": e.kind,
            "at": e.at,
            "via": e.via,
            "subject": e.subject,
            "from": e.sender,
            "to": e.recipients,
            "message": e.message.pk if e.message else None,
            "outbox_item": e.outbox_item.pk if e.outbox_item else None,
        }
        for e in timeline(record)
    ]


def routing_of(message: Message) -> RoutedMessage | None:
    return RoutedMessage.objects.filter(message=message).select_related("record").first()


def held_or_failed(account: EmailAccount) -> QuerySet[RoutedMessage]:
    """Mail of ``account`` held by the loop limit or whose routing failed, newest first."""
    return (
        RoutedMessage.objects.filter(
            message__account=account, outcome__in=[RouteOutcome.HELD, RouteOutcome.ERROR]
        )
        .select_related("message")
        .order_by("-routed_at")
    )
