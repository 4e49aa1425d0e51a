"""Issue 5 end to end: a private Dovecot holds the mailboxes, an aiosmtpd server takes what we send.

Mail is APPENDed into the support mailbox as a mail server would deliver it,
``do_sync_account`` syncs, extracts and routes it; replies go out through the
outbox worker to the SMTP server, and what that server received is what the
customer "answers".
"""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes
from email.policy import default
from typing import Any

import pytest

from postroom.accounts.models import EmailAccount
from postroom.incoming.actions import do_sync_account
from postroom.outgoing.actions import do_queue_message
from postroom.outgoing.models import OutboxItem
from postroom.outgoing.queue import deliver_due
from postroom.records.actions import (
    do_link_outbox_item,
    do_save_routing_settings,
    do_set_append_to,
)
from postroom.records.models import LinkVia, Record, RecordLink, RoutedMessage, RouteOutcome
from postroom.records.tokens import plus_address, record_message_id
from tests.outgoing.conftest import make_smtp_account
from tests.records.conftest import mail, record_type
from tests.servers.dovecot import Dovecot, DovecotUser
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.django_db(transaction=True)

Mailbox = Callable[..., tuple[EmailAccount, DovecotUser, SmtpServer]]


@pytest.fixture
def mailbox(dovecot: Dovecot, smtp_server_factory: Callable[..., SmtpServer]) -> Mailbox:
    """``make(prefix) -> (account, dovecot user, smtp server)``: reads Dovecot, sends to aiosmtpd."""

    def make(
        prefix: str, user: DovecotUser | None = None, **extra: Any
    ) -> tuple[EmailAccount, DovecotUser, SmtpServer]:
        user = user or dovecot.new_user(prefix)
        server = smtp_server_factory()
        fields: dict[str, Any] = {
            "name": user.name,
            "email": user.name,
            "incoming_enabled": True,
            "incoming_protocol": "imap",
            "incoming_host": "localhost",
            "incoming_port": dovecot.imaps_port,
            "incoming_security": "ssl",
            "ca_cert": dovecot.ca_pem,
            "password": user.password,
        }
        fields.update(extra)
        return make_smtp_account(server, **fields), user, server

    return make


def _arrive(dovecot: Dovecot, account: EmailAccount, user: DovecotUser, raw: bytes) -> None:
    dovecot.append(user.name, "INBOX", raw)
    do_sync_account(account)


def _send_all() -> None:
    while deliver_due("e2e-worker", 100):
        pass


def test_support_mail_becomes_an_issue_and_every_kind_of_reply_lands_on_it(
    dovecot: Dovecot, mailbox: Mailbox
) -> None:
    support, user, smtp = mailbox("support")
    do_set_append_to(support, record_type("issue"))
    do_save_routing_settings(support, plus_address_replies=True)

    _arrive(dovecot, support, user, mail("Printer on fire", to=support.email))
    [issue] = Record.objects.all()
    assert (issue.reference, issue.title, issue.contact.email) == (  # type: ignore[union-attr]
        "ISSUE-1",
        "Printer on fire",
        "carol@customer.example",
    )

    # Our answer from the record: a token Message-ID, Reply-To carrying the reference.
    item = do_queue_message(
        support,
        actor=None,
        to=["carol@customer.example"],
        subject="Re: Printer on fire",
        text="Please unplug it.",
        message_id=record_message_id(issue.pk, "example.test"),
        reply_to=[plus_address(support.email, issue.reference)],
    )
    do_link_outbox_item(issue, item)
    _send_all()
    [sent] = smtp.wait_for_messages(1)
    ours = sent.message["Message-ID"]
    assert sent.message["Reply-To"] == plus_address(support.email, "ISSUE-1")

    # The customer answers three times, each client keeping different headers.
    _arrive(dovecot, support, user, mail("Re: Printer", to=support.email, in_reply_to=ours))
    _arrive(dovecot, support, user, mail("Re: Printer", to=support.email, references=[ours]))
    _arrive(dovecot, support, user, mail("still burning", to=sent.message["Reply-To"]))
    links = RecordLink.objects.filter(record=issue, message__isnull=False).order_by("pk")
    assert [link.via for link in links] == [
        LinkVia.CREATED,
        LinkVia.TOKEN,
        LinkVia.TOKEN,
        LinkVia.PLUS_ADDRESS,
    ]
    assert Record.objects.count() == 1

    # A forward of our mail starts a new record.
    _arrive(dovecot, support, user, mail("Fwd: Printer", to=support.email, in_reply_to=ours))
    assert sorted(Record.objects.values_list("reference", flat=True)) == ["ISSUE-1", "ISSUE-2"]


def test_auto_reply_goes_out_once_and_never_to_lists_or_daemons(
    dovecot: Dovecot, mailbox: Mailbox
) -> None:
    support, user, smtp = mailbox("away")
    do_save_routing_settings(support, auto_reply_enabled=True, auto_reply_text="Back on Monday.")
    _arrive(dovecot, support, user, mail("Hello", to=support.email))
    _arrive(dovecot, support, user, mail("Hello again", to=support.email))
    _arrive(
        dovecot,
        support,
        user,
        mail("Digest", to=support.email, headers={"List-Id": "<dev.lists.example>"}),
    )
    _arrive(
        dovecot,
        support,
        user,
        mail("Undelivered", sender="MAILER-DAEMON@mx.example", to=support.email),
    )
    _send_all()
    [reply] = smtp.wait_for_messages(1)
    assert reply.rcpt_tos == ("carol@customer.example",)
    assert reply.message["Auto-Submitted"] == "auto-replied"
    assert OutboxItem.objects.count() == 1


def test_two_postroom_auto_replies_do_not_loop(dovecot: Dovecot, mailbox: Mailbox) -> None:
    """Two separate Postroom sites, both away: one auto-reply, then silence.

    Within one site our own addresses are never answered anyway; to test the
    RFC 3834 marking itself the first site's account is gone before the
    second site (its only account) sees the auto-reply.
    """
    second_user = dovecot.new_user("second")
    first, first_user, first_smtp = mailbox("first")
    do_save_routing_settings(first, auto_reply_enabled=True, auto_reply_text="Away.")
    do_set_append_to(first, record_type("issue"))
    # Someone at the second site writes to the first by hand...
    _arrive(dovecot, first, first_user, mail("Hi", sender=second_user.name, to=first.email))
    _send_all()
    [answer] = first_smtp.wait_for_messages(1)
    assert message_from_bytes(answer.data, policy=default)["Auto-Submitted"] == "auto-replied"
    first.delete()

    # ...and the first site's auto-reply reaches the second, away as well.
    second, _user, second_smtp = mailbox("second", user=second_user)
    do_save_routing_settings(second, auto_reply_enabled=True, auto_reply_text="Away too.")
    do_set_append_to(second, record_type("issue"))
    _arrive(dovecot, second, second_user, answer.data)
    _send_all()
    assert OutboxItem.objects.filter(account=second).count() == 0
    assert second_smtp.messages == []
    [routed] = RoutedMessage.objects.filter(message__account=second)
    assert (routed.outcome, routed.detail) == (RouteOutcome.LOOP, "Auto-Submitted: auto-replied")
    assert not Record.objects.filter(account=second).exists()


def test_rule_actions_mark_read_and_move_on_the_server(dovecot: Dovecot, mailbox: Mailbox) -> None:
    from postroom.records.actions import RuleSpec, do_save_rule

    support, user, _smtp = mailbox("rules")
    dovecot.create_folder(user.name, "Invoices")
    do_save_rule(
        support,
        RuleSpec(
            name="invoices",
            conditions=[{"field": "subject", "op": "contains", "value": "invoice"}],
            actions=[
                {"action": "label", "value": "billing"},
                {"action": "mark_read"},
                {"action": "move_to_folder", "value": "Invoices"},
            ],
        ),
    )
    _arrive(dovecot, support, user, mail("Your invoice 42", to=support.email))
    _arrive(dovecot, support, user, mail("Hello", to=support.email))
    assert len(dovecot.messages(user.name, "INBOX")) == 1
    [flags] = dovecot.flags(user.name, "Invoices").values()
    assert "\\Seen" in flags
    routed = RoutedMessage.objects.get(message__subject="Your invoice 42")
    assert routed.labels == ["billing"]
    routed.message.refresh_from_db()
    assert routed.message.seen
    # Moved on the server, so no longer in the ledger of INBOX; the message stays.
    assert not routed.message.locations.filter(folder__name="INBOX").exists()
