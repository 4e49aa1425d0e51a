"""Template helpers for records: translated statuses, a message's records and routing."""

from __future__ import annotations

from typing import Any

from django import template

from postroom.records import labels

register = template.Library()


@register.filter
def status_label(status: str) -> str:
    return labels.status_label(status)


@register.inclusion_tag("web/records/_message_records.html", takes_context=True)
def message_records(context: template.Context, message: Any) -> dict[str, Any]:
    """The records ``message`` is on (those the user may read) and what routing did with it."""
    from postroom.records.permissions import records_for
    from postroom.records.queries import routing_of

    request = context.get("request")
    user = getattr(request, "user", None)
    records = (
        list(
            records_for(user)
            .filter(links__message=message)
            .select_related("type")
            .distinct()
            .order_by("pk")
        )
        if user is not None
        else []
    )
    return {"message": message, "records": records, "routing": routing_of(message)}
