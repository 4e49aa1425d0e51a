"""Mail for routing tests, stored through the real ingest path, then routed.

``deliver`` does what a sync pass does after fetching: blob, message and
ledger row (``store_imap_batch``), extraction, then routing of everything
not yet routed (``do_route_pending``) — no server needed for the routing rules.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Max
from django.utils import timezone

from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.incoming.extract import extract_messages
from postroom.incoming.ingest import RawMail, store_imap_batch
from postroom.incoming.models import FolderState, Message, MessageLocation
from postroom.records.models import RecordType
from postroom.records.routing import RouteReport, do_route_pending
from tests.web.conftest import domain, make_account

UIDVALIDITY = 777
_ids = itertools.count(1)


def mail(
    subject: str = "Printer on fire",
    *,
    sender: str = "Carol Customer <carol@customer.example>",
    to: str = "support@example.test",
    cc: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
    body: str = "Hello, it is on fire.\n",
    message_id: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or timezone.now())
    msg["Message-ID"] = message_id or make_msgid(
        idstring=str(next(_ids)), domain="customer.example"
    )
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
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


def record_type(key: str) -> RecordType:
    return RecordType.objects.get(key=key)


@pytest.fixture
def owner(db: None) -> User:
    return User.objects.create_user("olga", email="olga@example.test")


@pytest.fixture
def support(owner: User, domain: EmailDomain) -> EmailAccount:
    return make_account("support@example.test", owner=owner)


def recent(minutes: int = 1) -> datetime:
    return timezone.now() - timedelta(minutes=minutes)


__all__ = ["Any", "deliver", "domain", "mail", "recent", "record_type", "store"]
