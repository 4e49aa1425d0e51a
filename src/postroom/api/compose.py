"""``/messages/{id}/reply`` and ``/records/{id}/messages``: answer mail, write from a record.

Both queue through the outbox (:mod:`postroom.records.compose`) and answer
with the outbox item, as ``POST /outbox`` does, honouring its
``Idempotency-Key`` header the same way (201 for a new item, 200 with the
first item for a repeated key).

Rights: replying needs the *read* right on the message's account (else
404); writing from a record needs to see the record (else 404) and the
*write* right on it (else 403). Sending needs the *send* right on the
account given (404 when invisible, 403 without the right), or on the
default one: the message's (or record's) account when the caller may send
from it, else their first account with the send right (403 when none).
A reply to a message on a record the caller may not change is 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema, Status

from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import has_right
from postroom.api.common import Conflict, Forbidden, InvalidInput, NotFound, current_user
from postroom.api.common import visible_account as _visible_account
from postroom.api.messages import readable_messages
from postroom.api.outbox import (
    AttachmentIn,
    OutboxItemOut,
    decoded_attachments,
    idempotency_key,
    item_dict,
)
from postroom.api.records import visible_record
from postroom.api.schemas import ErrorOut, FieldErrorsOut
from postroom.mail.mime.reply import ReplyMode
from postroom.outgoing.actions import (
    AccountCannotSend,
    InvalidMessage,
    RecipientsSuppressed,
)
from postroom.outgoing.models import OutboxItem
from postroom.records.compose import (
    NoSendingAccount,
    default_account,
    do_reply,
    do_send_from_record,
    forwardable_attachments,
    record_of,
    reply_draft,
)
from postroom.records.models import Record, RecordLink
from postroom.records.permissions import can_write_record, records_for

router = Router(tags=["compose"])

_RESPONSES: dict[int, Any] = {
    200: OutboxItemOut,
    201: OutboxItemOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    422: FieldErrorsOut,
}


class ReplyIn(Schema):
    mode: ReplyMode = Field(ReplyMode.REPLY, description="reply, reply_all or forward")
    text: str = Field("", description="The new text; the quote goes under it unless quote=false")
    html: str | None = Field(None, description="An HTML version; the quote goes under it too")
    quote: bool = Field(True, description="Add the quoted message (or the forwarded block)")
    account: int | None = Field(
        None, description="Account to send from; default the message's, else your first"
    )
    to: list[str] | None = Field(
        None, description="Replaces the reply's recipients (needed for a forward)"
    )
    cc: list[str] | None = Field(None, description="Replaces the reply-all copies")
    bcc: list[str] = Field(default_factory=list)
    subject: str | None = Field(None, description='Replaces "Re: ..." / "Fwd: ..."')
    include_attachments: bool | None = Field(
        None, description="Add the original's attachments (default: for a forward only)"
    )
    attachments: list[AttachmentIn] = Field(default_factory=list)
    record: int | None = Field(
        None, description="The record to answer in, when the message is on several"
    )


class ReplyDraftOut(Schema):
    mode: ReplyMode
    account_id: int | None = Field(description="The account a reply would be sent from")
    record_id: int | None = Field(description="The record the reply would join")
    subject: str
    to: list[str]
    cc: list[str]
    in_reply_to: str | None
    references: list[str]
    quoted: str = Field(description="The quote (or forwarded block) that goes under the text")
    attachments: list[str] = Field(description="File names a forward carries by default")


class RecordMessageIn(Schema):
    account: int | None = Field(
        None, description="Account to send from; default the record's, else your first"
    )
    to: list[str] | None = Field(None, description="Default: the record's contact")
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    subject: str | None = Field(None, description='Default: "[REFERENCE] title"')
    text: str = ""
    html: str | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list)


def _sending_account(
    user: AbstractBaseUser, account_id: int | None, preferred: EmailAccount | None
) -> EmailAccount:
    if account_id is None:
        try:
            return default_account(user, preferred)
        except NoSendingAccount as exc:
            raise Forbidden(str(exc)) from exc
    account = _visible_account(user, account_id)
    if not has_right(user, account, Right.SEND):
        raise Forbidden(_("You do not have the right to send from this account."))
    return account


def _queue(
    request: HttpRequest, account: EmailAccount, send: Callable[[str | None], OutboxItem]
) -> Status[dict[str, Any]]:
    """Run ``send`` with the request's idempotency key; 200 for a repeated key, else 201."""
    key = idempotency_key(request)
    if key:
        existing = OutboxItem.objects.filter(account=account, idempotency_key=key).first()
        if existing is not None:
            return Status(200, item_dict(existing))
    started = timezone.now()
    try:
        item = send(key or None)
    except InvalidMessage as exc:
        raise InvalidInput({exc.field: [exc.reason]}) from exc
    except RecipientsSuppressed as exc:
        raise InvalidInput({"to": [str(exc)]}) from exc
    except AccountCannotSend as exc:
        raise Conflict(str(exc)) from exc
    created = not key or item.created_at >= started
    return Status(201 if created else 200, item_dict(item))


@router.get(
    "/messages/{message_id}/reply",
    response={200: ReplyDraftOut, 404: ErrorOut},
    summary="What a reply, reply all or forward would start as (for a compose form)",
)
def reply_draft_view(
    request: HttpRequest, message_id: int, mode: ReplyMode = ReplyMode.REPLY
) -> dict[str, Any]:
    user = current_user(request)
    message = readable_messages(user).select_related("account").filter(pk=message_id).first()
    if message is None:
        raise NotFound(_("No message with this id."))
    start = reply_draft(message, mode, user)
    try:
        account: EmailAccount | None = default_account(user, message.account)
    except NoSendingAccount:
        account = None
    record = record_of(message)
    files = forwardable_attachments(message) if mode is ReplyMode.FORWARD else []
    return {
        "mode": mode,
        "account_id": account.pk if account else None,
        "record_id": record.pk if record else None,
        "subject": start.subject,
        "to": start.to,
        "cc": start.cc,
        "in_reply_to": start.in_reply_to,
        "references": list(start.references),
        "quoted": start.quoted,
        "attachments": [a.filename or a.content_type for a in files],
    }


@router.post(
    "/messages/{message_id}/reply",
    response=_RESPONSES,
    summary="Reply, reply all or forward a received message through the outbox",
)
def reply(request: HttpRequest, message_id: int, payload: ReplyIn) -> Status[dict[str, Any]]:
    user = current_user(request)
    message = readable_messages(user).select_related("account").filter(pk=message_id).first()
    if message is None:
        raise NotFound(_("No message with this id."))
    record: Record | None
    if payload.record is not None:
        record = records_for(user).filter(pk=payload.record).first()
        if record is None or not RecordLink.objects.filter(record=record, message=message):
            raise NotFound(_("The message is on no record with this id."))
    else:
        record = record_of(message)
    if record is not None and not can_write_record(user, record):
        raise Forbidden(
            _("The message belongs to %(reference)s, which you may not change.")
            % {"reference": record.reference}
        )
    if payload.mode is ReplyMode.FORWARD and not (payload.to or payload.cc or payload.bcc):
        raise InvalidInput({"to": [_("A forward needs at least one recipient.")]})
    account = _sending_account(user, payload.account, message.account)
    attachments = decoded_attachments(payload.attachments)
    return _queue(
        request,
        account,
        lambda key: do_reply(
            message,
            account=account,
            actor=user,
            mode=payload.mode,
            text=payload.text,
            html=payload.html,
            quote=payload.quote,
            to=payload.to,
            cc=payload.cc,
            bcc=payload.bcc,
            subject=payload.subject,
            attachments=attachments,
            include_original_attachments=payload.include_attachments,
            record=record,
            idempotency_key=key,
        ),
    )


@router.post(
    "/records/{record_id}/messages",
    response=_RESPONSES,
    summary="Send mail from a record: it joins the record's timeline",
)
def record_message(
    request: HttpRequest, record_id: int, payload: RecordMessageIn
) -> Status[dict[str, Any]]:
    user = current_user(request)
    record = visible_record(user, record_id, write=True)
    if payload.to is None and record.contact is None and not (payload.cc or payload.bcc):
        raise InvalidInput({"to": [_("The record has no contact; give the recipients.")]})
    account = _sending_account(user, payload.account, record.account)
    attachments = decoded_attachments(payload.attachments)
    return _queue(
        request,
        account,
        lambda key: do_send_from_record(
            record,
            account=account,
            actor=user,
            to=payload.to,
            cc=payload.cc,
            bcc=payload.bcc,
            subject=payload.subject,
            text=payload.text,
            html=payload.html,
            attachments=attachments,
            idempotency_key=key,
        ),
    )
