"""Read-only helpers for the outbox pages, the API and the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Prefetch, QuerySet

from postroom.accounts.models import EmailAccount
from postroom.outgoing.models import (
    FINAL_RECIPIENT_STATUSES,
    DeliveryAttempt,
    ItemState,
    OutboxItem,
    OutboxRecipient,
    Suppression,
)
from postroom.outgoing.worker import worker_running

__all__ = [
    "attempts_of",
    "is_final",
    "item_summary",
    "outbox_items",
    "queue_depth",
    "suppressions",
    "worker_running",
]


def outbox_items(
    accounts: QuerySet[EmailAccount] | Iterable[int] | None = None,
    *,
    state: str | None = None,
) -> QuerySet[OutboxItem]:
    """Items of ``accounts`` (a queryset, e.g. ``accounts_for(user, Right.READ)``, or ids),
    newest first, optionally in one :class:`ItemState`, with recipients prefetched."""
    items = OutboxItem.objects.select_related("account")
    if accounts is not None:
        items = items.filter(account__in=accounts)
    if state:
        items = items.filter(state=ItemState(state))
    return items.prefetch_related(
        Prefetch("recipients", queryset=OutboxRecipient.objects.order_by("id"))
    )


def is_final(item: OutboxItem) -> bool:
    """Every recipient is sent, failed, bounced or cancelled (what ``--wait`` waits for)."""
    return not item.recipients.exclude(status__in=FINAL_RECIPIENT_STATUSES).exists()


def item_summary(item: OutboxItem) -> dict[str, Any]:
    """The shape ``postroom send --json`` and ``outbox list --json`` print."""
    return {
        "id": item.pk,
        "message_id": item.message_id,
        "account": item.account.name,
        "subject": item.subject,
        "state": item.state,
        "wait_reason": item.wait_reason,
        "wait_detail": item.wait_detail,
        "next_attempt_at": item.next_attempt_at.isoformat() if item.next_attempt_at else None,
        "sent_copy": item.sent_copy,
        "recipients": {
            r.address: {"status": r.status, "reply": r.reply, "kind": r.kind}
            for r in item.recipients.all()
        },
    }


def attempts_of(item: OutboxItem) -> QuerySet[DeliveryAttempt]:
    """Every attempt with the server's replies, oldest first (the detail page)."""
    return item.attempts.order_by("started_at", "id")


def queue_depth(accounts: QuerySet[EmailAccount] | None = None) -> dict[str, int]:
    """Items per state (E4 metrics, the outbox filters)."""
    items = OutboxItem.objects.all()
    if accounts is not None:
        items = items.filter(account__in=accounts)
    counts = dict(items.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    return {state.value: counts.get(state.value, 0) for state in ItemState}


def suppressions() -> QuerySet[Suppression]:
    return Suppression.objects.order_by("address")
