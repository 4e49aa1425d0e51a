"""Fixtures for replies and mail from records: one mailbox on the test Dovecot that
sends through its own aiosmtpd server, a received message in it, users with rights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from postroom.accounts.actions import do_save_account, do_share_account
from postroom.accounts.models import EmailAccount
from postroom.core.actions import do_create_api_token
from postroom.incoming.actions import do_sync_account
from postroom.incoming.models import Message
from postroom.outgoing.queue import deliver_due
from postroom.records.actions import do_create_record, do_link_message, do_save_contact
from postroom.records.models import LinkVia, Record, RecordType
from tests.servers.dovecot import Dovecot, DovecotUser
from tests.servers.smtp import ReceivedMessage, SmtpServer

PDF = b"%PDF-1.4 fake invoice\n" + bytes(range(256))


def customer_mail(
    *,
    subject: str = "AW: Printer on fire",
    message_id: str = "<m2@customer.test>",
    to: str = "",
    attachment: bool = True,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jane Doe <jane@customer.test>"
    msg["To"] = to
    msg["Cc"] = "carol@customer.test"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 03 Mar 2026 10:15:00 +0000"
    msg["Message-ID"] = message_id
    msg["In-Reply-To"] = "<m1@customer.test>"
    msg["References"] = "<m0@customer.test> <m1@customer.test>"
    msg.set_content("The printer is on fire.\nPlease help.\n")
    if attachment:
        msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes(policy=SMTP)


@dataclass
class Mailroom:
    account: EmailAccount
    smtp: SmtpServer
    dovecot: Dovecot
    user: DovecotUser
    owner: User

    def receive(self, raw: bytes) -> Message:
        """Deliver ``raw`` into INBOX by IMAP APPEND and sync it in."""
        uid = self.dovecot.append(self.user.name, "INBOX", raw)
        do_sync_account(self.account)
        return Message.objects.get(account=self.account, locations__uid=uid)

    def deliver(self) -> list[ReceivedMessage]:
        """Run the outbox worker once; what the SMTP server received so far."""
        deliver_due("test-worker", 100)
        return list(self.smtp.messages)


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, **extra: Any) -> User:
        return User.objects.create_user(username, **extra)

    return make


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", email="alice@example.test", first_name="Alice")


@pytest.fixture
def mailroom(
    dovecot: Dovecot, smtp_server_factory: Callable[..., SmtpServer], alice: User
) -> Mailroom:
    """alice's support mailbox: reads INBOX on Dovecot, sends through aiosmtpd."""
    user = dovecot.new_user("support")
    smtp = smtp_server_factory()
    account = do_save_account(
        EmailAccount(
            name=f"Support {user.name}",
            email=user.name.lower(),
            owner=alice,
            incoming_protocol="imap",
            incoming_host=dovecot.host,
            incoming_port=dovecot.imaps_port,
            incoming_security="ssl",
            ca_cert=dovecot.ca_pem,
            folders=["INBOX"],
            outgoing_enabled=True,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            smtp_auth=False,
            always_use_account_email_as_sender=True,
        ),
        actor=None,
        password=user.password,
        check=False,
    )
    return Mailroom(account=account, smtp=smtp, dovecot=dovecot, user=user, owner=alice)


@pytest.fixture
def received(mailroom: Mailroom) -> Message:
    """Jane's message (with a PDF) in the support mailbox, addressed to it."""
    message = mailroom.receive(customer_mail(to=f"Support <{mailroom.account.email}>"))
    assert message.attachments.count() == 1
    return message


@pytest.fixture
def issue(mailroom: Mailroom, received: Message) -> Record:
    """An Issue for Jane's message, with the message on its timeline."""
    record = Record.objects.filter(links__message=received).first()
    if record is None:
        record = do_create_record(
            RecordType.objects.get(prefix="ISSUE"),
            title=received.subject,
            contact=do_save_contact("jane@customer.test", "Jane Doe"),
            account=mailroom.account,
        )
        do_link_message(record, received, LinkVia.CREATED)
    return record


def share(account: EmailAccount, user: User, **rights: bool) -> None:
    do_share_account(account, actor=None, user=user, **rights)


def web_client(user: User) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    return client


def api_client(user: User) -> Client:
    _token, raw = do_create_api_token(user, "test")
    return Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {raw}"})
