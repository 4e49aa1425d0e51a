"""What each webhook event carries: the reference for receivers, shown in the OpenAPI
description and on the webhook pages.

Every event is a JSON object ``{"id", "type", "created_at", "data"}``; ``id``
is also the ``X-Postroom-Delivery`` header. The ``data`` of each type:
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from postroom.webhooks.models import EventType

# (event type, when it is sent, the fields of ``data``: field names, not translated)
EVENT_DOCS: list[tuple[str, Any, str]] = [
    (
        EventType.MESSAGE_RECEIVED,
        _("A received message was routed (after sync)."),
        "message: {id, account, message_id, subject, from, from_name, to, cc, date, thread}; "
        "record: the reference of the record it joined or created (e.g. ISSUE-42), or null.",
    ),
    (
        EventType.MESSAGE_SENT,
        _("The SMTP server accepted an outgoing message for one or more recipients."),
        "outbox_item, message_id, subject, account: {id, name, email}, "
        "recipients: [{address, status: sent, code, reply}] (those accepted in this attempt), "
        "record: {id, reference} of the record the message is on, or null.",
    ),
    (
        EventType.MESSAGE_FAILED,
        _(
            "An outgoing message failed for good for one or more recipients "
            "(refused, or retried until the account's maximum queue age)."
        ),
        "As message.sent, with recipients: [{address, status: failed, code, reply}].",
    ),
    (
        EventType.MESSAGE_BOUNCED,
        _("A delivery report came back for a message that had been sent."),
        "As message.sent, with recipients: [{address, status: bounced, dsn_status, reason, "
        "hard}] (hard: the address is now on the suppression list).",
    ),
    (
        EventType.RECORD_CREATED,
        _("A record was created (by routing, the UI or the API)."),
        "record: {id, reference, type, title, status, owner, contact: {id, email, name} or "
        "null, account, fields, created_at, updated_at}.",
    ),
    (
        EventType.RECORD_UPDATED,
        _("A record's title, status, owner, contact or fields changed."),
        "record: as in record.created; changed: the names of the fields that changed.",
    ),
    (
        EventType.ACCOUNT_STATE_CHANGED,
        _(
            "An account's sync state changed (idle, error, auth_error, disabled); "
            "a sync run itself is not reported."
        ),
        "account: {id, name, email}; state; previous_state; error_code and error_message "
        "(empty unless the state is error or auth_error).",
    ),
    (
        EventType.TEST,
        _('Sent by the "send test" button or POST /webhooks/{id}/test to that subscription only.'),
        "subscription: {id, name}; requested_by: the user name.",
    ),
]

ORDERING = _(
    "Events about the same record (record.*, message.received), the same outbox item "
    "(message.sent, message.failed, message.bounced) or the same account "
    "(account.state_changed) reach a subscription in the order they happened: a later "
    "one waits while an earlier one is being retried."
)


def markdown() -> str:
    """The event reference as Markdown (the OpenAPI description)."""
    lines = [
        "### Webhook events",
        "",
        "Each POST carries one JSON event `{id, type, created_at, data}` with the headers "
        "`X-Postroom-Event` (type), `X-Postroom-Delivery` (event id, the same on every retry: "
        "drop duplicates by it), `X-Postroom-Timestamp` (Unix seconds of this attempt) and "
        "`X-Postroom-Signature: sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<raw body>` "
        "keyed with the subscription's secret. Verify it in constant time on the raw body "
        "and reject timestamps more than 5 minutes from your clock. Answer 2xx; anything "
        "else is retried (about 30 s, doubling up to 1 h) until the delivery is "
        "POSTROOM_WEBHOOK_MAX_AGE_HOURS (72) old, then it is marked failed.",
        "",
        str(ORDERING),
        "",
        "| type | sent when | data |",
        "|---|---|---|",
    ]
    for event, when, fields in EVENT_DOCS:
        lines.append(f"| `{event}` | {when} | {fields} |")
    return "\n".join(lines)
