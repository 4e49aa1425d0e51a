"""C15: bounces coming back through incoming sync mark the recipient bounced.

:func:`match_bounces` is called by incoming sync with the ids of messages it
has just stored. A message that looks like a delivery report is parsed
(:func:`postroom.mail.mime.dsn.parse_dsn`) and tied to an outbox item by the
original Message-ID it quotes, or by the VERP token in the address it came
back to. Each recipient it reports as failed is marked ``bounced`` with the
reason; a hard bounce (5.x.x) also puts the address on the suppression list,
which the queue honours. A report that names no recipient of that item
changes nothing: we never mark a recipient bounced on a guess.

Matching is idempotent (a bounce seen twice changes nothing the second time)
and never breaks sync: failures are logged and the mail stays stored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel
from postroom.incoming.blobs import blob_path, read_blob
from postroom.incoming.models import Message
from postroom.mail.mime.dsn import DeliveryReport, parse_dsn
from postroom.outgoing.actions import do_suppress
from postroom.outgoing.models import (
    OutboxItem,
    OutboxRecipient,
    RecipientStatus,
    SuppressionSource,
)
from postroom.outgoing.queue import stored_item_state
from postroom.outgoing.suppression import suppression_key
from postroom.outgoing.verp import parse_verp
from postroom.webhooks.emit import emit
from postroom.webhooks.models import EventType
from postroom.webhooks.payloads import outbox_payload

logger = logging.getLogger(__name__)

_HEAD_BYTES = 64 * 1024
_REPORT_MARKERS = re.compile(
    rb"delivery-status|x-failed-recipients|mailer-daemon|postmaster|undeliver|delivery failure",
    re.I,
)


def _might_be_a_report(message: Message, account_email: str) -> bool:
    """A cheap look before a full parse: most synced mail is no bounce."""
    if any(parse_verp(address, account_email) for address in message.to):
        return True
    with open(blob_path(message.blob_id), "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    return bool(_REPORT_MARKERS.search(head))


def _find_item(report: DeliveryReport, account_email: str) -> OutboxItem | None:
    if report.original_message_id:
        found = OutboxItem.objects.filter(
            message_id=report.original_message_id.strip().strip("<>")
        ).first()
        if found is not None:
            return found
    for address in report.addressed_to:
        token = parse_verp(address, account_email)
        if token:
            found = OutboxItem.objects.filter(verp_token=token.lower()).first()
            if found is not None:
                return found
    return None


def apply_report(item: OutboxItem, report: DeliveryReport) -> int:
    """Mark the item's recipients that ``report`` says failed; returns how many changed."""
    rows = {suppression_key(r.address): r for r in item.recipients.all()}
    changed = 0
    bounced: list[dict[str, object]] = []
    now = timezone.now()
    with transaction.atomic():
        for entry in report.recipients:
            if entry.action.lower() != "failed":
                continue  # "delayed", "delivered", "relayed": nothing to undo
            candidates = [entry.final_recipient, entry.original_recipient or ""]
            row = next((rows[k] for k in map(suppression_key, candidates) if k in rows), None)
            if row is None or row.status == RecipientStatus.BOUNCED:
                continue
            reason = entry.diagnostic or entry.status or _("Bounced.")
            OutboxRecipient.objects.filter(pk=row.pk).update(
                status=RecipientStatus.BOUNCED,
                bounced_at=now,
                bounce_status=entry.status[:20],
                reply=reason[:5000],
            )
            changed += 1
            bounced.append(
                {
                    "address": row.address,
                    "status": str(RecipientStatus.BOUNCED),
                    "dsn_status": entry.status,
                    "reason": reason[:1000],
                    "hard": entry.hard,
                }
            )
            if entry.hard:
                do_suppress(row.address, reason=reason, source=SuppressionSource.BOUNCE, item=item)
        if changed:
            OutboxItem.objects.filter(pk=item.pk).update(state=stored_item_state(item.pk))
            do_log_event(
                kind="outbox.bounced",
                level=EventLevel.WARNING,
                account=item.account,
                message=_("Message %(id)s bounced for %(n)d recipient(s).")
                % {"id": item.message_id, "n": changed},
                data={"item": item.pk},
            )
            emit(
                EventType.MESSAGE_BOUNCED,
                outbox_payload(item, bounced),
                account_id=item.account_id,
                ordering_key=f"outbox:{item.pk}",
            )
    return changed


def match_bounces(message_ids: Sequence[int]) -> int:
    """Look for delivery reports among newly stored messages; returns recipients marked.

    Never raises: a bounce that cannot be matched must not fail the sync that stored it.
    """
    try:
        return _match(message_ids)
    except Exception:
        logger.exception("bounce matching failed")
        return 0


def _match(message_ids: Sequence[int]) -> int:
    if not message_ids or not OutboxItem.objects.exists():
        return 0
    marked = 0
    messages = Message.objects.filter(pk__in=list(message_ids)).select_related("account")
    for message in messages.only("pk", "blob_id", "to", "account__email"):
        try:
            account_email = message.account.email
            if not _might_be_a_report(message, account_email):
                continue
            report = parse_dsn(read_blob(message.blob_id))
            if report is None:
                continue
            item = _find_item(report, account_email)
            if item is not None:
                marked += apply_report(item, report)
        except Exception:
            logger.exception("bounce matching failed for message %s", message.pk)
    return marked
