"""The only code that changes the outbox: queue, cancel, retry, suppress.

The API, the CLI and the web pages validate their input, check the "send"
right on the account, and call these. Delivery itself (what workers do) is
:func:`postroom.outgoing.queue.deliver_due`, re-exported here.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from email.utils import parseaddr

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount, OutgoingCharset
from postroom.core.actions import do_log_event
from postroom.incoming.blobs import write_blobs
from postroom.incoming.models import MessageBlob
from postroom.mail.mime.build import (
    AttachmentSpec,
    BuiltMessage,
    InvalidMessage,
    OutgoingAttachment,
    OutgoingMessage,
    build_message,
)
from postroom.outgoing.models import (
    PENDING_RECIPIENT_STATUSES,
    ItemState,
    OutboxItem,
    OutboxRecipient,
    RecipientKind,
    RecipientStatus,
    Suppression,
    SuppressionSource,
    WaitReason,
)
from postroom.outgoing.queue import Courier, deliver_due, stored_item_state
from postroom.outgoing.senders import sender_identity
from postroom.outgoing.suppression import suppressed_among, suppression_key
from postroom.outgoing.verp import verp_address

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None

__all__ = [
    "AccountCannotSend",
    "Courier",
    "InvalidMessage",
    "NothingToCancel",
    "NothingToRetry",
    "OutboxError",
    "OutgoingAttachment",
    "RecipientsSuppressed",
    "deliver_due",
    "do_cancel",
    "do_queue_message",
    "do_retry_now",
    "do_suppress",
    "do_unsuppress",
    "queue_changed",
]

# Set whenever something becomes due; a worker in this process wakes at once
# instead of at its next poll (``postroom run``: queued from the web, sent now).
queue_changed = threading.Event()


class OutboxError(Exception):
    """The request was refused; ``str(exc)`` says why in the user's language."""


class AccountCannotSend(OutboxError):
    pass


class RecipientsSuppressed(OutboxError):
    def __init__(self, addresses: Sequence[str]) -> None:
        super().__init__(
            _(
                "Not queued: these addresses are on the suppression list (they bounced "
                "permanently): %(list)s. Remove them from the list to send to them again."
            )
            % {"list": ", ".join(addresses)}
        )
        self.addresses = tuple(addresses)


class NothingToCancel(OutboxError):
    pass


class NothingToRetry(OutboxError):
    pass


def _actor_name(actor: Actor) -> str | None:
    return getattr(actor, "username", None)


def _notify() -> None:
    transaction.on_commit(queue_changed.set)


def _refusal(account: EmailAccount) -> str | None:
    if account.is_template:
        return _("The account %(name)s is a template; complete it first.") % {"name": account.name}
    if not account.outgoing_enabled:
        return _("Outgoing mail is switched off for the account %(name)s.") % {"name": account.name}
    if account.awaiting_password:
        return _("The account %(name)s is awaiting its password.") % {"name": account.name}
    return None


def _as_list(value: Sequence[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _bare(address: str) -> str:
    return (parseaddr(address)[1] or address).strip()


def _message_id(account: EmailAccount) -> str:
    domain = account.email.rpartition("@")[2] or "postroom.invalid"
    return f"{uuid.uuid4().hex}@{domain}"


def _build(spec: OutgoingMessage) -> BuiltMessage:
    """C4: the account's charset, or UTF-8 when the text does not fit it."""
    try:
        return build_message(spec)
    except InvalidMessage as exc:
        if spec.charset == OutgoingCharset.UTF8 or "cannot be written in" not in exc.reason:
            raise
        logger.info("text does not fit %s, sending as UTF-8: %s", spec.charset, exc)
    return build_message(dataclasses.replace(spec, charset=str(OutgoingCharset.UTF8)))


def do_queue_message(
    account: EmailAccount,
    *,
    actor: Actor,
    to: Sequence[str] | str = (),
    cc: Sequence[str] | str = (),
    bcc: Sequence[str] | str = (),
    subject: str = "",
    text: str = "",
    html: str | None = None,
    attachments: Sequence[AttachmentSpec] = (),
    reply_to: Sequence[str] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    send_at: datetime | None = None,
    priority: int = 0,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
) -> OutboxItem:
    """Queue one message from ``account``; returns its outbox item.

    The MIME message is built once here (sender rules C8/A10, the account's
    charset C4, its BCC addresses C5), stored content-addressed, and given
    the Message-ID it keeps across retries. One recipient row is made per
    envelope recipient. Addresses take ``addr`` or ``Name <addr>``.

    ``idempotency_key``: a second call with the same key for the same
    account returns the first item and queues nothing. ``send_at``: not
    before then (C13). ``priority``: higher goes first. ``message_id``: the
    Message-ID to use (a record's token id, see ``postroom.records.tokens``);
    a fresh one otherwise. ``in_reply_to``/``references``: threading headers
    of a reply (D5).

    Raises :class:`InvalidMessage` (a ValueError: CR/LF in a header, an
    address that does not parse; ``.field`` names it), :class:`RecipientsSuppressed`,
    or :class:`AccountCannotSend`, before anything is stored.
    """
    if idempotency_key:
        existing = OutboxItem.objects.filter(
            account=account, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            return existing
    refusal = _refusal(account)
    if refusal is not None:
        raise AccountCannotSend(refusal)
    identity = sender_identity(
        account, actor, reply_to=tuple(reply_to) if reply_to is not None else None
    )
    message_id = message_id or _message_id(account)
    built = _build(
        OutgoingMessage(
            from_address=identity.from_address,
            from_name=identity.from_name,
            sender=identity.sender,
            reply_to=identity.reply_to,
            to=to,
            cc=cc,
            bcc=bcc,
            subject=subject,
            text=text,
            html=html,
            attachments=attachments,
            charset=account.charset or OutgoingCharset.UTF8,
            extra_headers=dict(extra_headers or {}),
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=tuple(references),
        )
    )
    kinds: dict[str, RecipientKind] = {}
    for kind, values in ((RecipientKind.TO, to), (RecipientKind.CC, cc), (RecipientKind.BCC, bcc)):
        for value in _as_list(values):
            kinds.setdefault(suppression_key(_bare(value)), kind)
    recipients: dict[str, RecipientKind] = {}
    for address in built.envelope_recipients:
        recipients.setdefault(address, kinds.get(suppression_key(address), RecipientKind.TO))
    blocked = suppressed_among(recipients)
    if blocked:
        raise RecipientsSuppressed(sorted(blocked))
    # C5: the account's BCC addresses, never in the headers; a suppressed one is left out.
    taken = {suppression_key(a) for a in recipients}
    extra = [a for a in account.bcc_addresses or [] if suppression_key(a) not in taken]
    extra_blocked = suppressed_among(extra)
    for address in extra:
        if address not in extra_blocked and suppression_key(address) not in taken:
            recipients[address] = RecipientKind.ACCOUNT_BCC
            taken.add(suppression_key(address))

    stored = write_blobs([built.raw])[0]
    now = timezone.now()
    token = secrets.token_hex(8)
    mail_from = verp_address(account.email, token) if account.verp_return_path else account.email
    scheduled = send_at is not None and send_at > now
    try:
        with transaction.atomic():
            MessageBlob.objects.get_or_create(sha256=stored.sha256, defaults={"size": stored.size})
            item = OutboxItem.objects.create(
                account=account,
                created_by_id=actor.pk if isinstance(actor, AbstractBaseUser) else None,
                blob_id=stored.sha256,
                size=stored.size,
                message_id=built.message_id.strip("<>"),
                verp_token=token,
                mail_from=mail_from,
                from_header=(
                    f"{identity.from_name} <{identity.from_address}>"
                    if identity.from_name
                    else identity.from_address
                )[:400],
                subject=subject,
                charset=account.charset,
                needs_smtputf8=built.needs_smtputf8,
                idempotency_key=idempotency_key or "",
                state=ItemState.QUEUED,
                priority=priority,
                send_at=send_at,
                next_attempt_at=send_at if scheduled else now,
                expires_at=max(send_at or now, now) + timedelta(hours=account.max_queue_age),
                wait_reason=WaitReason.SCHEDULED if scheduled else WaitReason.NONE,
            )
            OutboxRecipient.objects.bulk_create(
                [
                    OutboxRecipient(item=item, address=address, kind=kind)
                    for address, kind in recipients.items()
                ]
            )
            do_log_event(
                kind="outbox.queued",
                account=account,
                message=_("Message %(id)s queued for %(n)d recipient(s).")
                % {"id": item.message_id, "n": len(recipients)},
                data={"item": item.pk, "actor": _actor_name(actor)},
            )
            _notify()
    except IntegrityError:
        if idempotency_key:
            existing = OutboxItem.objects.filter(
                account=account, idempotency_key=idempotency_key
            ).first()
            if existing is not None:
                return existing
        raise
    return item


def do_cancel(item: OutboxItem, actor: Actor = None) -> OutboxItem:
    """Cancel every recipient not yet handed to the server.

    Recipients being sent right now (``sending``) cannot be called back and
    keep their course. Raises :class:`NothingToCancel` when nothing was left.
    """
    now = timezone.now()
    with transaction.atomic():
        cancelled = OutboxRecipient.objects.filter(
            item=item, status__in=[RecipientStatus.QUEUED, RecipientStatus.DEFERRED]
        ).update(status=RecipientStatus.CANCELLED, reply=_("Cancelled."))
        if not cancelled:
            raise NothingToCancel(
                _("Nothing to cancel: every recipient has been sent to or is being sent to.")
            )
        state = stored_item_state(item.pk)
        update: dict[str, object] = {"state": state}
        if state not in (ItemState.SENDING, ItemState.QUEUED, ItemState.DEFERRED):
            update.update(next_attempt_at=None, finished_at=now, wait_reason=WaitReason.NONE)
        # A worker holding the lease records its own result; do not touch its lease.
        OutboxItem.objects.filter(pk=item.pk).exclude(state=ItemState.SENDING).update(**update)
        do_log_event(
            kind="outbox.cancelled",
            account=item.account,
            message=_("Message %(id)s cancelled for %(n)d recipient(s).")
            % {"id": item.message_id, "n": cancelled},
            data={"item": item.pk, "actor": _actor_name(actor)},
        )
    item.refresh_from_db()
    return item


def do_retry_now(item: OutboxItem, actor: Actor = None) -> OutboxItem:
    """Make the item due now: deferred and scheduled recipients, and failed ones again.

    Failed recipients (not bounced, not suppressed) go back to the queue with
    a fresh maximum age. Rate limits still apply. Raises :class:`NothingToRetry`.
    """
    now = timezone.now()
    with transaction.atomic():
        failed = dict(
            OutboxRecipient.objects.filter(item=item, status=RecipientStatus.FAILED).values_list(
                "address", "pk"
            )
        )
        suppressed = suppressed_among(failed)
        requeued = OutboxRecipient.objects.filter(
            pk__in=[pk for address, pk in failed.items() if address not in suppressed]
        ).update(status=RecipientStatus.QUEUED)
        waiting = OutboxRecipient.objects.filter(
            item=item, status__in=PENDING_RECIPIENT_STATUSES
        ).exists()
        if not (requeued or waiting):
            raise NothingToRetry(_("Nothing to retry: no recipient is waiting or failed."))
        update: dict[str, object] = {
            "next_attempt_at": now,
            "wait_reason": WaitReason.NONE,
            "wait_detail": "",
        }
        if requeued:
            update.update(
                state=stored_item_state(item.pk),
                finished_at=None,
                expires_at=now + timedelta(hours=item.account.max_queue_age),
            )
        OutboxItem.objects.filter(pk=item.pk).update(**update)
        do_log_event(
            kind="outbox.retry",
            account=item.account,
            message=_("Message %(id)s: retry now requested.") % {"id": item.message_id},
            data={"item": item.pk, "actor": _actor_name(actor)},
        )
        _notify()
    item.refresh_from_db()
    return item


def do_suppress(
    address: str,
    *,
    actor: Actor = None,
    reason: str = "",
    source: SuppressionSource = SuppressionSource.MANUAL,
    item: OutboxItem | None = None,
) -> Suppression:
    """Put ``address`` on the suppression list (or update its reason)."""
    key = suppression_key(address)
    if "@" not in key:
        raise OutboxError(_("%(a)s is not an email address.") % {"a": address})
    with transaction.atomic():
        entry, _created = Suppression.objects.update_or_create(
            address=key, defaults={"source": source, "reason": reason[:2000], "item": item}
        )
        do_log_event(
            kind="suppression.added",
            account=item.account if item is not None else None,
            message=_("%(a)s added to the suppression list.") % {"a": key},
            data={"actor": _actor_name(actor), "source": str(source)},
        )
    return entry


def do_unsuppress(address: str, actor: Actor = None) -> bool:
    """Take ``address`` off the suppression list; False when it was not on it."""
    key = suppression_key(address)
    with transaction.atomic():
        deleted, _rows = Suppression.objects.filter(address=key).delete()
        if deleted:
            do_log_event(
                kind="suppression.removed",
                message=_("%(a)s removed from the suppression list.") % {"a": key},
                data={"actor": _actor_name(actor)},
            )
    return bool(deleted)
