"""The one way other apps report an event to webhook subscribers.

Call :func:`emit` inside the transaction that makes the change: the delivery
rows commit (or roll back) with it, so a receiver that is down loses nothing
and never hears of a change that did not happen.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from postroom.webhooks.models import EventType, WebhookDelivery, WebhookSubscription

# Set when deliveries were queued (on commit); the worker's webhook thread in
# this process wakes at once instead of at its next poll.
deliveries_changed = threading.Event()


def wanted_event_types() -> set[str]:
    """Every event type some active subscription wants: one query, for callers that
    emit in bulk (the outbox) and want to skip building payloads nobody receives."""
    wanted: set[str] = set()
    for types in WebhookSubscription.objects.filter(active=True).values_list(
        "event_types", flat=True
    ):
        wanted.update(types or [])
    return wanted


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    import json

    result: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return result


def emit(
    event_type: EventType,
    data: dict[str, Any],
    *,
    account_id: int | None = None,
    ordering_key: str = "",
) -> int:
    """Queue ``event_type`` for every active subscription that wants it; returns how many.

    ``ordering_key`` (e.g. ``"record:42"``) keeps deliveries of one subject in order.
    """
    subscriptions = [
        s
        for s in WebhookSubscription.objects.filter(active=True).only(
            "pk", "event_types", "account_id"
        )
        if event_type in s.event_types and (s.account_id is None or s.account_id == account_id)
    ]
    if not subscriptions:
        return 0
    now = timezone.now()
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": str(event_type),
        "created_at": now.isoformat(),
        "data": _jsonable(data),
    }
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                subscription_id=s.pk,
                event_id=event_id,
                event_type=str(event_type),
                payload=payload,
                ordering_key=ordering_key[:100],
                next_attempt_at=now,
            )
            for s in subscriptions
        ]
    )
    transaction.on_commit(deliveries_changed.set)
    return len(subscriptions)
