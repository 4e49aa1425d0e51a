"""A20: the per-account auto-reply (vacation responder), by the rules of RFC 3834.

Answer only mail a person sent to this account (its address in To or Cc),
never automatic mail (the caller decides that, see
``postroom.records.routing.automatic_reason``), never our own accounts, at
most once per sender every ``auto_reply_interval_days``, only while the
auto-reply is on and within its dates, and only for mail that arrived
recently (a first sync of old mail must not answer years of it). The answer
carries ``Auto-Submitted: auto-replied`` so other responders (another
Postroom included) do not answer it back, and goes to the Return-Path.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount
from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel
from postroom.incoming.models import Message
from postroom.mail.mime.reply import address_key
from postroom.records.models import AutoReplyLog, Record, RoutingSettings
from postroom.records.tokens import record_message_id

logger = logging.getLogger(__name__)

# Mail older than this when routed is history (a first sync), not a conversation.
RECENT = timedelta(days=1)


def auto_reply_active(settings: RoutingSettings, now: object = None) -> bool:
    now = now or timezone.now()
    if not settings.auto_reply_enabled or not settings.auto_reply_text.strip():
        return False
    if settings.auto_reply_starts_at and now < settings.auto_reply_starts_at:  # type: ignore[operator]
        return False
    return not (settings.auto_reply_ends_at and now >= settings.auto_reply_ends_at)  # type: ignore[operator]


def maybe_auto_reply(
    account: EmailAccount,
    settings: RoutingSettings,
    message: Message,
    *,
    sender: str,
    return_path: str | None,
    automatic: bool,
    record: Record | None,
    own_addresses: frozenset[str],
) -> bool:
    """Queue the auto-reply to ``message`` when every rule allows; returns whether it did."""
    now = timezone.now()
    if automatic or not sender or not auto_reply_active(settings, now):
        return False
    if return_path is not None and not return_path.strip("<> "):
        return False  # null reverse path: a bounce or another automatic message
    target = (return_path or sender).strip("<> ").lower()
    if address_key(target) in own_addresses or address_key(sender) in own_addresses:
        return False
    addressed = {address_key(a) for a in [*(message.to or []), *(message.cc or [])]}
    if address_key(account.email) not in addressed:
        return False
    when = message.date or message.created_at or now
    if when < now - RECENT or (
        settings.auto_reply_starts_at and when < settings.auto_reply_starts_at
    ):
        return False
    interval = timedelta(days=settings.auto_reply_interval_days)
    log = AutoReplyLog.objects.select_for_update().filter(account=account, address=target).first()
    if log is not None and log.last_sent_at > now - interval:
        return False

    from postroom.outgoing.actions import OutboxError, do_queue_message

    domain = account.email.rpartition("@")[2]
    subject = settings.auto_reply_subject.strip() or _("Auto: %(subject)s") % {
        "subject": message.subject
    }
    try:
        item = do_queue_message(
            account,
            actor=None,
            to=[target],
            subject=subject,
            text=settings.auto_reply_text,
            message_id=record_message_id(record.pk, domain) if record else None,
            in_reply_to=message.message_id or None,
            references=[*message.references, message.message_id] if message.message_id else (),
            extra_headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
        )
    except (OutboxError, ValueError) as exc:
        do_log_event(
            kind="autoreply.failed",
            level=EventLevel.WARNING,
            account=account,
            message=_("Auto-reply to %(to)s not sent: %(error)s") % {"to": target, "error": exc},
            data={"message": message.pk},
        )
        return False
    if log is None:
        AutoReplyLog.objects.create(account=account, address=target, last_sent_at=now)
    else:
        log.last_sent_at = now
        log.save(update_fields=["last_sent_at"])
    if record is not None:
        from postroom.records.actions import do_link_outbox_item

        do_link_outbox_item(record, item)
    do_log_event(
        kind="autoreply.queued",
        account=account,
        message=_("Auto-reply queued to %(to)s.") % {"to": target},
        data={"message": message.pk, "item": item.pk},
    )
    return True
