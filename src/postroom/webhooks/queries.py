"""Read-only look-ups the webhook pages and the API share."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count

from postroom.webhooks.models import WebhookDelivery


def delivery_counts(subscription_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """``{subscription id: {state: deliveries}}`` in one query."""
    counts: dict[int, dict[str, int]] = {}
    rows = (
        WebhookDelivery.objects.filter(subscription_id__in=list(subscription_ids))
        .values("subscription_id", "state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        counts.setdefault(row["subscription_id"], {})[row["state"]] = row["n"]
    return counts
