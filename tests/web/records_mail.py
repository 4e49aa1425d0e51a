"""Mail for the records pages, API and CLI tests: stored through the real ingest path, then routed.

``deliver`` does what a sync pass does after fetching: blob, message and
ledger row (``store_imap_batch``), extraction, then ``do_route_pending``.
"""

from __future__ import annotations

import itertools
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from django.db.models import Max
from django.utils import timezone

from postroom.accounts.models import EmailAccount
from postroom.incoming.extract import extract_messages
from postroom.incoming.ingest import RawMail, store_imap_batch
from postroom.incoming.models import FolderState, Message, MessageLocation
from postroom.records.routing import RouteReport, do_route_pending

UIDVALIDITY = 4242
_ids = itertools.count(1)


def mail(
    subject: str = "Printer on fire",
    *,
    sender: str = "Carol Customer <carol@customer.example>",
    to: str = "support@example.test",
    in_reply_to: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(timezone.now())
    msg["Message-ID"] = make_msgid(idstring=str(next(_ids)), domain="customer.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content("Hello.\n")
    return msg.as_bytes(policy=SMTP)


def store(account: EmailAccount, *raws: bytes, folder: str = "INBOX") -> list[Message]:
    state, _created = FolderState.objects.get_or_create(
        account=account, name=folder, defaults={"uidvalidity": UIDVALIDITY}
    )
    start = (MessageLocation.objects.filter(folder=state).aggregate(m=Max("uid"))["m"] or 0) + 1
    mails = [RawMail(uid=start + i, raw=raw) for i, raw in enumerate(raws)]
    result = store_imap_batch(state, UIDVALIDITY, mails)
    extract_messages(result.new_message_ids, account.max_attachment_size, parallel=False)
    return [Message.objects.get(locations__folder=state, locations__uid=m.uid) for m in mails]


def deliver(
    account: EmailAccount, *raws: bytes, folder: str = "INBOX"
) -> tuple[list[Message], RouteReport]:
    messages = store(account, *raws, folder=folder)
    return messages, do_route_pending(account)
