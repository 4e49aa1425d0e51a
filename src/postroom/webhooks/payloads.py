"""The ``data`` of the outgoing-mail and account events (documented in :mod:`.events`).

Small on purpose: ids to fetch the rest through the API, the addresses and
the server's reply, and the record the message belongs to, if any.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from postroom.accounts.models import EmailAccount
from postroom.outgoing.models import OutboxItem


def account_payload(account: EmailAccount) -> dict[str, Any]:
    return {"id": account.pk, "name": account.name, "email": account.email}


def linked_record(item_id: int) -> dict[str, Any] | None:
    """The record an outbox item is on (RecordLink), as ``{id, reference}``."""
    from postroom.records.models import RecordLink

    link = (
        RecordLink.objects.filter(outbox_item_id=item_id)
        .select_related("record")
        .only("record__id", "record__reference")
        .order_by("pk")
        .first()
    )
    if link is None:
        return None
    return {"id": link.record.pk, "reference": link.record.reference}


def outbox_payload(item: OutboxItem, recipients: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``message.sent`` / ``message.failed`` / ``message.bounced``."""
    return {
        "outbox_item": item.pk,
        "message_id": item.message_id,
        "account": account_payload(item.account),
        "subject": item.subject,
        "recipients": list(recipients),
        "record": linked_record(item.pk),
    }
