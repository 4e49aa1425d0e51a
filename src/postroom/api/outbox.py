"""``/outbox``: queue outgoing mail, list it, follow it, cancel and retry it.

Queueing, cancel and retry need the "send" right on the account; reading the
outbox needs any right on it (read or send: managing implies both). Changes go
through :mod:`postroom.outgoing.actions` only.

``POST /outbox`` honours an ``Idempotency-Key`` header: a second request with
the same key for the same account queues nothing and answers 200 with the
item the first one queued (the first answers 201).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import has_right, visible_accounts
from postroom.api.common import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    current_user,
    newest_first_page,
    visible_account,
)
from postroom.api.schemas import ErrorOut, FieldErrorsOut
from postroom.outgoing.actions import (
    AccountCannotSend,
    InvalidMessage,
    NothingToCancel,
    NothingToRetry,
    OutgoingAttachment,
    RecipientsSuppressed,
    do_cancel,
    do_queue_message,
    do_retry_now,
)
from postroom.outgoing.models import DeliveryAttempt, ItemState, OutboxItem
from postroom.outgoing.queries import attempts_of, item_summary, outbox_items
from postroom.outgoing.suppression import suppression_key

router = Router(tags=["outbox"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX = 200  # OutboxItem.idempotency_key


# -- schemas --------------------------------------------------------------------


class AttachmentIn(Schema):
    filename: str
    content_type: str = "application/octet-stream"
    data: str = Field(description="The content, base64-encoded")


class OutboxIn(Schema):
    account: int = Field(description="Id of the account to send from")
    to: list[str] = Field(default_factory=list, description="addr or Name <addr>")
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    subject: str = ""
    text: str = ""
    html: str | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list)
    reply_to: list[str] | None = Field(None, description="Overrides the account's sender rule")
    headers: dict[str, str] | None = Field(None, description="Extra headers, checked")
    send_at: datetime | None = Field(None, description="Not before then (scheduled sending)")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher goes first")


class RecipientOut(Schema):
    status: str
    reply: str
    kind: str


class OutboxItemOut(Schema):
    id: int
    message_id: str
    account: str
    account_id: int
    subject: str
    state: str
    wait_reason: str
    wait_detail: str
    next_attempt_at: str | None
    sent_copy: str
    recipients: dict[str, RecipientOut]
    priority: int
    send_at: datetime | None
    created_at: datetime
    finished_at: datetime | None


class AttemptOut(Schema):
    started_at: datetime
    finished_at: datetime | None
    worker: str
    outcome: str
    recipients: list[dict[str, Any]] = Field(description="[{address, status, code, reply}]")
    data_code: int | None
    data_reply: str
    error: str


class OutboxDetailOut(OutboxItemOut):
    from_header: str
    mail_from: str
    attempts: list[AttemptOut]


class OutboxPageOut(Schema):
    items: list[OutboxItemOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end")


class OutboxFilters(Schema):
    account: int | None = Field(None, description="Only this account's items")
    state: ItemState | None = Field(None, description="Only items in this state")
    cursor: str | None = Field(None, description="next_cursor of the previous page")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


# -- serialising ----------------------------------------------------------------


def item_dict(item: OutboxItem) -> dict[str, Any]:
    """item_summary (the CLI's ``--json`` shape) plus what API clients also need."""
    return {
        **item_summary(item),
        "account_id": item.account_id,
        "priority": item.priority,
        "send_at": item.send_at,
        "created_at": item.created_at,
        "finished_at": item.finished_at,
    }


def attempt_dict(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "worker": attempt.worker,
        "outcome": attempt.outcome,
        "recipients": attempt.recipients,
        "data_code": attempt.data_code,
        "data_reply": attempt.data_reply,
        "error": attempt.error,
    }


def detail_dict(item: OutboxItem) -> dict[str, Any]:
    return {
        **item_dict(item),
        "from_header": item.from_header,
        "mail_from": item.mail_from,
        "attempts": [attempt_dict(a) for a in attempts_of(item)],
    }


# -- permissions ----------------------------------------------------------------


def _require_send(user: AbstractBaseUser, account: EmailAccount) -> None:
    if not has_right(user, account, Right.SEND):
        raise Forbidden(_("You do not have the right to send from this account."))


def _item(user: AbstractBaseUser, item_id: int) -> OutboxItem:
    """The item if its account is visible to ``user`` (read or send), else 404."""
    item = outbox_items(visible_accounts(user)).filter(pk=item_id).first()
    if item is None:
        raise NotFound(_("No outbox item with this id."))
    return item


# -- queueing -------------------------------------------------------------------


def decoded_attachments(attachments: list[AttachmentIn]) -> list[OutgoingAttachment]:
    """The attachments' content decoded; 422 on the first one that is not base64."""
    result = []
    for index, attachment in enumerate(attachments):
        try:
            data = base64.b64decode(attachment.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(
                {f"attachments[{index}].data": [_("This is not valid base64.")]}
            ) from exc
        result.append(OutgoingAttachment(attachment.filename, attachment.content_type, data))
    return result


def idempotency_key(request: HttpRequest) -> str:
    """The request's Idempotency-Key header, stripped ("" without one); 422 when too long."""
    key = (request.headers.get(IDEMPOTENCY_HEADER) or "").strip()
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidInput(
            {IDEMPOTENCY_HEADER: [_("At most %(n)d characters.") % {"n": IDEMPOTENCY_KEY_MAX}]}
        )
    return key


def _suppressed_errors(payload: OutboxIn, exc: RecipientsSuppressed) -> dict[str, list[str]]:
    """The refusal under each address field that holds a suppressed address."""
    blocked = {suppression_key(a) for a in exc.addresses}
    errors: dict[str, list[str]] = {}
    for field in ("to", "cc", "bcc"):
        values: list[str] = getattr(payload, field)
        if any(suppression_key(parseaddr(v)[1] or v) in blocked for v in values):
            errors[field] = [str(exc)]
    return errors or {"to": [str(exc)]}


def _api_field(field: str) -> str:
    """The message builder's field name as the request body spells it."""
    for inner, outer in (("extra_headers", "headers"), ("from_address", "account")):
        if field.startswith(inner):
            return outer + field[len(inner) :]
    return field


class SuppressedInput(InvalidInput):
    code = "suppressed"

    def __init__(self, errors: dict[str, list[str]], addresses: tuple[str, ...]) -> None:
        super().__init__(errors)
        self.addresses = addresses

    def body(self) -> dict[str, Any]:
        return {**super().body(), "addresses": list(self.addresses)}


@router.post(
    "",
    response={
        200: OutboxItemOut,
        201: OutboxItemOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        422: FieldErrorsOut,
    },
    summary="Queue a message (Idempotency-Key: the same key never queues twice)",
)
def queue_message(request: HttpRequest, payload: OutboxIn) -> Status[dict[str, Any]]:
    user = current_user(request)
    account = visible_account(user, payload.account)
    _require_send(user, account)
    key = idempotency_key(request)
    if key:
        existing = OutboxItem.objects.filter(account=account, idempotency_key=key).first()
        if existing is not None:
            return Status(200, item_dict(existing))
    started = timezone.now()
    try:
        item = do_queue_message(
            account,
            actor=user,
            to=payload.to,
            cc=payload.cc,
            bcc=payload.bcc,
            subject=payload.subject,
            text=payload.text,
            html=payload.html,
            attachments=decoded_attachments(payload.attachments),
            reply_to=payload.reply_to,
            extra_headers=payload.headers,
            idempotency_key=key or None,
            send_at=payload.send_at,
            priority=payload.priority,
        )
    except InvalidMessage as exc:
        raise InvalidInput({_api_field(exc.field): [exc.reason]}) from exc
    except RecipientsSuppressed as exc:
        raise SuppressedInput(_suppressed_errors(payload, exc), exc.addresses) from exc
    except AccountCannotSend as exc:
        raise Conflict(str(exc)) from exc
    # A concurrent request with the same key may have won the race: do_queue_message
    # then returns that request's item, which was created before this one started.
    created = not key or item.created_at >= started
    return Status(201 if created else 200, item_dict(item))


# -- reading --------------------------------------------------------------------


@router.get(
    "",
    response={200: OutboxPageOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="List outbox items, newest first (cursor pagination)",
)
def list_outbox(request: HttpRequest, filters: Query[OutboxFilters]) -> dict[str, Any]:
    user = current_user(request)
    accounts = visible_accounts(user)
    if filters.account is not None:
        accounts = accounts.filter(pk=visible_account(user, filters.account).pk)
    items = outbox_items(accounts, state=filters.state.value if filters.state else None)
    rows, next_cursor = newest_first_page(items, filters.cursor, filters.limit)
    return {"items": [item_dict(i) for i in rows], "next_cursor": next_cursor}


@router.get(
    "/{item_id}",
    response={200: OutboxDetailOut, 404: ErrorOut},
    summary="One outbox item with its recipients and every delivery attempt",
)
def get_item(request: HttpRequest, item_id: int) -> dict[str, Any]:
    return detail_dict(_item(current_user(request), item_id))


# -- cancel, retry ----------------------------------------------------------------


@router.post(
    "/{item_id}/cancel",
    response={200: OutboxDetailOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Cancel every recipient not yet handed to the server",
)
def cancel_item(request: HttpRequest, item_id: int) -> dict[str, Any]:
    user = current_user(request)
    item = _item(user, item_id)
    _require_send(user, item.account)
    try:
        item = do_cancel(item, actor=user)
    except NothingToCancel as exc:
        raise Conflict(str(exc)) from exc
    return detail_dict(_item(user, item.pk))


@router.post(
    "/{item_id}/retry",
    response={200: OutboxDetailOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Retry now: waiting recipients become due, failed ones are queued again",
)
def retry_item(request: HttpRequest, item_id: int) -> dict[str, Any]:
    user = current_user(request)
    item = _item(user, item_id)
    _require_send(user, item.account)
    try:
        item = do_retry_now(item, actor=user)
    except NothingToRetry as exc:
        raise Conflict(str(exc)) from exc
    return detail_dict(_item(user, item.pk))
