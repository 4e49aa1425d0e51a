"""do_reply and do_send_from_record, delivered by the outbox worker to a real SMTP server."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest
from django.contrib.auth.models import User
from django.utils import translation

from postroom.accounts.models import EmailAccount
from postroom.incoming.models import Message
from postroom.mail.mime.headers import parse_headers
from postroom.outgoing.models import ItemState, OutboxItem
from postroom.records.actions import do_save_routing_settings
from postroom.records.compose import (
    NoSendingAccount,
    default_account,
    do_reply,
    do_send_from_record,
)
from postroom.records.models import LinkVia, Record, RecordLink
from postroom.records.tokens import record_from_message_id
from tests.outgoing.conftest import make_smtp_account
from tests.replies.conftest import PDF, Mailroom, share

pytestmark = pytest.mark.django_db


def body_text(received: EmailMessage) -> str:
    part = received.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_reply_threads_quotes_and_joins_the_record(
    mailroom: Mailroom, received: Message, issue: Record, alice: User
) -> None:
    item = do_reply(
        received, account=mailroom.account, actor=alice, mode="reply", text="We are on it.\n"
    )
    [sent] = mailroom.deliver()
    assert OutboxItem.objects.get(pk=item.pk).state == ItemState.SENT
    assert sent.rcpt_tos == ("jane@customer.test",)
    mail = sent.message
    assert mail["Subject"] == "Re: Printer on fire"
    assert mail["In-Reply-To"] == "<m2@customer.test>"
    assert mail["References"].split() == [
        "<m0@customer.test>",
        "<m1@customer.test>",
        "<m2@customer.test>",
    ]
    assert mail["To"] == "Jane Doe <jane@customer.test>"
    assert mail["Cc"] is None
    text = body_text(mail)
    assert text.startswith("We are on it.\n\nOn ")
    assert "Jane Doe wrote:\n> The printer is on fire.\n> Please help.\n" in text
    assert not mail.is_multipart() or not list(mail.iter_attachments())
    # The record's token is in the Message-ID; the item is on the timeline.
    assert record_from_message_id(item.message_id) == issue.pk
    assert RecordLink.objects.filter(record=issue, outbox_item=item, via=LinkVia.SENT).exists()


def test_reply_all_copies_the_others_but_never_our_own_addresses(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    do_reply(received, account=mailroom.account, actor=alice, mode="reply_all", text="Hi all")
    [sent] = mailroom.deliver()
    assert sorted(sent.rcpt_tos) == ["carol@customer.test", "jane@customer.test"]
    assert sent.message["Cc"] == "carol@customer.test"
    assert sent.message["To"] == "Jane Doe <jane@customer.test>"
    assert mailroom.account.email not in f"{sent.message['To']} {sent.message['Cc']}".lower()


def test_reply_all_leaves_out_plus_variants_of_our_addresses(
    mailroom: Mailroom, alice: User
) -> None:
    local, _, domain = mailroom.account.email.partition("@")
    raw = (
        "From: jane@customer.test\r\n"
        f"To: {local}+ISSUE-7@{domain.upper()}, dan@customer.test\r\n"
        "Subject: plus\r\nMessage-ID: <plus@customer.test>\r\n\r\nHi\r\n"
    ).encode()
    message = mailroom.receive(raw)
    do_reply(message, account=mailroom.account, actor=alice, mode="reply_all", text="x")
    [sent] = mailroom.deliver()
    assert sorted(sent.rcpt_tos) == ["dan@customer.test", "jane@customer.test"]


def test_forward_carries_the_attachments_and_joins_the_record(
    mailroom: Mailroom, received: Message, issue: Record, alice: User
) -> None:
    item = do_reply(
        received,
        account=mailroom.account,
        actor=alice,
        mode="forward",
        to=["Tech <tech@partner.test>"],
        text="Can you have a look?",
    )
    [sent] = mailroom.deliver()
    assert sent.rcpt_tos == ("tech@partner.test",)
    mail = sent.message
    assert mail["Subject"] == "Fwd: AW: Printer on fire"
    text = body_text(mail)
    assert text.startswith("Can you have a look?\n\n---------- Forwarded message ----------\n")
    assert "From: Jane Doe <jane@customer.test>\n" in text
    assert "Subject: AW: Printer on fire\n" in text
    assert "\nThe printer is on fire.\nPlease help.\n" in text
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF
    assert RecordLink.objects.filter(record=issue, outbox_item=item).exists()


def test_a_forward_without_the_attachments(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    do_reply(
        received,
        account=mailroom.account,
        actor=alice,
        mode="forward",
        to=["tech@partner.test"],
        include_original_attachments=False,
    )
    [sent] = mailroom.deliver()
    assert not list(sent.message.iter_attachments())


def test_plus_address_replies_put_the_reference_in_reply_to(
    mailroom: Mailroom, received: Message, issue: Record, alice: User
) -> None:
    do_save_routing_settings(mailroom.account, plus_address_replies=True)
    do_reply(received, account=mailroom.account, actor=alice, text="ok")
    [sent] = mailroom.deliver()
    local, _, domain = mailroom.account.email.partition("@")
    assert sent.message["Reply-To"] == f"{local}+{issue.reference}@{domain}"


def test_a_reply_outside_any_record_has_no_token(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    item = do_reply(received, account=mailroom.account, actor=alice, text="ok")
    assert record_from_message_id(item.message_id) is None
    assert not RecordLink.objects.filter(outbox_item=item).exists()
    [sent] = mailroom.deliver()
    assert sent.message["Reply-To"] is None


def test_mail_from_a_record_goes_to_its_contact_and_the_answer_comes_back_to_it(
    mailroom: Mailroom, issue: Record, alice: User
) -> None:
    item = do_send_from_record(
        issue, account=mailroom.account, actor=alice, text="Your printer is fixed."
    )
    [sent] = mailroom.deliver()
    assert sent.rcpt_tos == ("jane@customer.test",)
    assert sent.message["Subject"] == f"[{issue.reference}] AW: Printer on fire"
    assert record_from_message_id(sent.message["Message-ID"].strip("<>")) == issue.pk
    assert RecordLink.objects.filter(record=issue, outbox_item=item, via=LinkVia.SENT).exists()

    # Jane's client keeps only In-Reply-To; routing finds the record by our token.
    answer = EmailMessage()
    answer["From"] = "jane@customer.test"
    answer["To"] = mailroom.account.email
    answer["Subject"] = "Re: fixed?"
    answer["Message-ID"] = "<answer@customer.test>"
    answer["In-Reply-To"] = sent.message["Message-ID"]
    answer.set_content("Thanks!\n")
    message = mailroom.receive(answer.as_bytes(policy=SMTP))
    assert RecordLink.objects.filter(record=issue, message=message).exists()
    assert parse_headers(sent.data).message_id == item.message_id


def test_default_account_prefers_the_message_account_then_the_first_sendable(
    mailroom: Mailroom, make_user: object
) -> None:
    carol = User.objects.create_user("carol")
    with pytest.raises(NoSendingAccount):
        default_account(carol, mailroom.account)
    share(mailroom.account, carol, can_read=True)
    with pytest.raises(NoSendingAccount):
        default_account(carol, mailroom.account)
    other: EmailAccount = make_smtp_account(None, name="Other")
    share(other, carol, can_read=True, can_send=True)
    assert default_account(carol, mailroom.account) == other
    share(mailroom.account, carol, can_read=True, can_send=True)
    assert default_account(carol, mailroom.account) == mailroom.account


def test_reply_all_leaves_out_the_senders_own_address(mailroom: Mailroom, alice: User) -> None:
    raw = (
        "From: jane@customer.test\r\n"
        f"To: {mailroom.account.email}\r\n"
        "Cc: Alice <ALICE@example.test>, dan@customer.test\r\n"
        "Subject: cc\r\nMessage-ID: <cc@customer.test>\r\n\r\nHi\r\n"
    ).encode()
    message = mailroom.receive(raw)
    do_reply(message, account=mailroom.account, actor=alice, mode="reply_all", text="x")
    [sent] = mailroom.deliver()
    assert sorted(sent.rcpt_tos) == ["dan@customer.test", "jane@customer.test"]


def test_the_quote_and_the_forwarded_block_speak_the_senders_language(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    with translation.override("de"):
        do_reply(received, account=mailroom.account, actor=alice, text="Hallo")
        do_reply(
            received, account=mailroom.account, actor=alice, mode="forward", to=["t@partner.test"]
        )
    sent = {m.rcpt_tos[0]: m for m in mailroom.deliver()}
    reply, forward = sent["jane@customer.test"], sent["t@partner.test"]
    assert "Am " in body_text(reply.message)
    assert " schrieb Jane Doe:\n> The printer is on fire.\n" in body_text(reply.message)
    block = body_text(forward.message)
    assert "---------- Weitergeleitete Nachricht ----------\nVon: Jane Doe" in block
    assert "\nBetreff: AW: Printer on fire\n" in block


def test_an_html_only_message_is_quoted_by_its_text(mailroom: Mailroom, alice: User) -> None:
    raw = (
        "From: jane@customer.test\r\n"
        f"To: {mailroom.account.email}\r\n"
        "Subject: html\r\nMessage-ID: <html@customer.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><body><p>Only <b>HTML</b> here.</p></body></html>\r\n"
    ).encode()
    message = mailroom.receive(raw)
    do_reply(message, account=mailroom.account, actor=alice, text="ok", html="<p>ok</p>")
    [sent] = mailroom.deliver()
    assert "> Only HTML here." in body_text(sent.message)
    html = sent.message.get_body(("html",))
    assert html is not None
    assert "<b>HTML</b>" in str(html.get_content())


def test_answering_an_open_issue_marks_it_replied_but_forwarding_does_not(
    mailroom: Mailroom, received: Message, issue: Record, alice: User
) -> None:
    do_reply(
        received, account=mailroom.account, actor=alice, mode="forward", text="FYI", to=["x@y.test"]
    )
    issue.refresh_from_db()
    assert issue.status == "Open"
    do_reply(received, account=mailroom.account, actor=alice, mode="reply", text="On it.")
    issue.refresh_from_db()
    assert issue.status == "Replied"
    # A closed record stays closed when we write to it.
    issue.status = "Closed"
    issue.save()
    do_send_from_record(issue, account=mailroom.account, actor=alice, text="Closing note.")
    issue.refresh_from_db()
    assert issue.status == "Closed"


def test_a_reply_marks_the_original_answered_on_the_server(
    mailroom: Mailroom,
    received: Message,
    alice: User,
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        do_reply(received, account=mailroom.account, actor=alice, mode="reply", text="Thanks.")
    received.refresh_from_db()
    assert received.answered
    [flags] = mailroom.dovecot.flags(mailroom.user.name, "INBOX").values()
    assert "\\Answered" in flags
