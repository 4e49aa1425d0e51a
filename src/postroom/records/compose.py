"""Reply, reply-all and forward (D5), and mail composed on a record (D4).

The only code that sends mail on behalf of a record or in answer to a
received message. The web pages and the API check the rights (read on the
message's account to see the form, send on the sending account, write on
the record) and call :func:`do_reply` or :func:`do_send_from_record`; both
queue through :func:`postroom.outgoing.actions.do_queue_message`.

When the answered message is on a record's timeline (or a record is
given), the new mail carries a Message-ID with the record's signed token
(``postroom.records.tokens``), its Reply-To is the account's plus-address
for the record when the account's routing settings ask for it, and the
outbox item joins the record's timeline, in the same transaction as the
queueing. A forward joins the record too: the timeline shows what left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import accounts_for, has_right
from postroom.incoming.blobs import blob_path, read_blob
from postroom.incoming.models import Attachment, Message
from postroom.mail.mime import sanitize_html
from postroom.mail.mime.build import AttachmentSpec, OutgoingAttachment
from postroom.mail.mime.reply import ForwardLabels, ReplyDraft, ReplyMode, ReplyParent, draft
from postroom.outgoing.actions import OutboxError, do_queue_message
from postroom.outgoing.models import OutboxItem
from postroom.records.actions import (
    do_link_outbox_item,
    do_update_record,
    our_addresses,
    routing_settings,
)
from postroom.records.models import Record, RecordLink
from postroom.records.tokens import plus_address, record_message_id

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None

__all__ = [
    "NoSendingAccount",
    "ReplyMode",
    "default_account",
    "do_reply",
    "do_send_from_record",
    "forwardable_attachments",
    "record_of",
    "reply_draft",
    "sendable_accounts",
]


class NoSendingAccount(OutboxError):
    """The user may not send from any account (or not from the one asked for)."""


def sendable_accounts(user: AbstractBaseUser | AnonymousUser) -> list[EmailAccount]:
    """Accounts ``user`` may send from, by name."""
    return list(accounts_for(user, Right.SEND).order_by("name", "pk"))


def default_account(
    user: AbstractBaseUser | AnonymousUser, preferred: EmailAccount | None
) -> EmailAccount:
    """``preferred`` (the account the mail came in by, the record's account) when the user
    may send from it, else their first account with the send right."""
    if preferred is not None and has_right(user, preferred, Right.SEND):
        return preferred
    accounts = sendable_accounts(user)
    if not accounts:
        raise NoSendingAccount(
            _(
                "You may not send mail from any account. Ask an account's manager for the "
                "send right."
            )
        )
    return accounts[0]


def record_of(message: Message) -> Record | None:
    """The record whose timeline holds ``message`` (the first one it joined)."""
    link = (
        RecordLink.objects.filter(message=message)
        .select_related("record")
        .order_by("created_at", "pk")
        .first()
    )
    return link.record if link is not None else None


def _own_addresses(actor: Actor) -> list[str]:
    """Our accounts' addresses and the sender's own: never among a reply's recipients."""
    own = list(our_addresses())
    personal = str(getattr(actor, "email", "") or "")
    return [*own, personal] if "@" in personal else own


def _date_text(message: Message) -> str:
    if message.date is None:
        return ""
    return formats.date_format(timezone.localtime(message.date), "DATETIME_FORMAT")


# Enough for any header block: parse_headers stops at the first empty line.
HEAD_BYTES = 1 << 20


def _head(message: Message) -> bytes:
    """The start of the stored raw message, with its headers (not the whole of a big one)."""
    with blob_path(message.blob_id).open("rb") as stored:
        return stored.read(HEAD_BYTES)


def reply_draft(message: Message, mode: ReplyMode | str, actor: Actor = None) -> ReplyDraft:
    """What the reply, reply-all or forward of ``message`` starts as, in the active language."""
    mode = ReplyMode(mode)
    html = sanitize_html(message.html).html if message.html else None
    parent = ReplyParent.from_raw(_head(message), message.text, html)
    name = parent.sender_name or message.from_email or _("unknown sender")
    date_text = _date_text(message)
    attribution = (
        _("On %(date)s, %(name)s wrote:") % {"date": date_text, "name": name}
        if date_text
        else _("%(name)s wrote:") % {"name": name}
    )
    labels = ForwardLabels(
        heading=_("---------- Forwarded message ----------"),
        from_=_("From"),
        date=_("Date"),
        subject=_("Subject"),
        to=_("To"),
        cc=_("Cc"),
    )
    return draft(
        parent,
        mode,
        own_addresses=_own_addresses(actor),
        attribution=attribution,
        date_text=date_text,
        labels=labels,
    )


def forwardable_attachments(message: Message) -> list[Attachment]:
    """The stored attachments of ``message`` a forward carries (not those over the size limit)."""
    return list(message.attachments.filter(blob__isnull=False).order_by("pk"))


def _original_attachments(message: Message) -> list[OutgoingAttachment]:
    return [
        OutgoingAttachment(
            attachment.filename or _("attachment"),
            attachment.content_type or "application/octet-stream",
            read_blob(attachment.blob_id or ""),
        )
        for attachment in forwardable_attachments(message)
    ]


def _record_headers(record: Record | None, account: EmailAccount) -> tuple[str | None, list[str]]:
    """The Message-ID and Reply-To of mail sent from ``record`` (none without a record)."""
    if record is None:
        return None, []
    domain = account.email.rpartition("@")[2] or "postroom.invalid"
    reply_to = (
        [plus_address(account.email, record.reference)]
        if routing_settings(account).plus_address_replies
        else []
    )
    return record_message_id(record.pk, domain), reply_to


def _queue(
    account: EmailAccount,
    record: Record | None,
    *,
    actor: Actor,
    idempotency_key: str | None,
    to: Sequence[str],
    cc: Sequence[str],
    bcc: Sequence[str],
    subject: str,
    text: str,
    html: str | None,
    attachments: Sequence[AttachmentSpec],
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    answers: bool = True,
) -> OutboxItem:
    """Queue and link; ``answers``: the mail answers the record's people (not a forward)."""
    message_id, reply_to = _record_headers(record, account)
    with transaction.atomic():
        item = do_queue_message(
            account,
            actor=actor,
            to=list(to),
            cc=list(cc),
            bcc=list(bcc),
            subject=subject,
            text=text,
            html=html,
            attachments=attachments,
            reply_to=reply_to or None,
            idempotency_key=idempotency_key,
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=references,
        )
        if record is not None:
            do_link_outbox_item(record, item)
            if answers:
                _mark_replied(record, actor)
    return item


# Answering an open record moves it to "waiting for the customer" when its
# type has that status (the built-in Issue and Job Applicant do), as in
# ERPNext; the customer's next mail reopens it (postroom.records.routing).
REPLIED = "Replied"


def _mark_replied(record: Record, actor: Actor) -> None:
    if REPLIED in record.type.statuses and record.status == record.type.default_status:
        do_update_record(record, actor=actor, status=REPLIED)


def do_reply(
    message: Message,
    *,
    account: EmailAccount,
    actor: Actor,
    mode: ReplyMode | str = ReplyMode.REPLY,
    text: str = "",
    html: str | None = None,
    to: Sequence[str] | None = None,
    cc: Sequence[str] | None = None,
    bcc: Sequence[str] = (),
    subject: str | None = None,
    quote: bool = True,
    attachments: Sequence[AttachmentSpec] = (),
    include_original_attachments: bool | None = None,
    record: Record | None = None,
    idempotency_key: str | None = None,
) -> OutboxItem:
    """Queue a reply, reply-all or forward of ``message`` from ``account``.

    ``to``/``cc``/``subject`` given replace the draft's (see
    :func:`postroom.mail.mime.reply.draft`); a forward has no recipients of
    its own, so it needs ``to``. ``quote``: put the quoted parent (or the
    forwarded block) under ``text`` and ``html``; the web form passes False
    because its text already holds the quote, edited. ``attachments`` are
    added; ``include_original_attachments`` (default: for a forward only)
    adds the parent's stored attachments. ``record``: the record to link
    to, default the one ``message`` is on.

    Raises what :func:`do_queue_message` raises (``InvalidMessage``,
    ``RecipientsSuppressed``, ``AccountCannotSend``).
    """
    mode = ReplyMode(mode)
    start = reply_draft(message, mode, actor)
    if quote:
        text = f"{text.rstrip()}\n\n{start.quoted}" if text.strip() else start.quoted
        if html is not None:
            html = f"{html}\n{start.quoted_html}"
    files = list(attachments)
    if include_original_attachments is None:
        include_original_attachments = mode is ReplyMode.FORWARD
    if include_original_attachments:
        files = [*_original_attachments(message), *files]
    if record is None:
        record = record_of(message)
    item = _queue(
        account,
        record,
        actor=actor,
        idempotency_key=idempotency_key,
        to=list(start.to if to is None else to),
        cc=list(start.cc if cc is None else cc),
        bcc=list(bcc),
        subject=start.subject if subject is None else subject,
        text=text,
        html=html,
        attachments=files,
        in_reply_to=start.in_reply_to,
        references=start.references,
        answers=mode is not ReplyMode.FORWARD,
    )
    if mode is not ReplyMode.FORWARD and not message.answered:
        from postroom.records.server_actions import apply_server_actions

        # B15: the original shows as answered here and in every other client.
        transaction.on_commit(lambda: apply_server_actions(message.pk, answered=True))
    return item


def record_subject(record: Record) -> str:
    """The subject mail from a record starts with: its reference (B9) and title."""
    return f"[{record.reference}] {record.title}"


def do_send_from_record(
    record: Record,
    *,
    account: EmailAccount,
    actor: Actor,
    to: Sequence[str] | None = None,
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    subject: str | None = None,
    text: str = "",
    html: str | None = None,
    attachments: Sequence[AttachmentSpec] = (),
    idempotency_key: str | None = None,
) -> OutboxItem:
    """Queue new mail about ``record`` from ``account`` (D4) and put it on its timeline.

    ``to`` defaults to the record's contact; ``subject`` to "[REFERENCE] title".
    """
    if to is None:
        to = [str(record.contact.email)] if record.contact is not None else []
    return _queue(
        account,
        record,
        actor=actor,
        idempotency_key=idempotency_key,
        to=list(to),
        cc=list(cc),
        bcc=list(bcc),
        subject=record_subject(record) if subject is None else subject,
        text=text,
        html=html,
        attachments=list(attachments),
    )
