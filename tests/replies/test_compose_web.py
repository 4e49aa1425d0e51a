"""The compose pages: reply, reply all and forward from a message, mail from a record."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from postroom.incoming.models import Message
from postroom.outgoing.models import OutboxItem
from postroom.records.models import Record, RecordLink
from postroom.records.tokens import record_from_message_id
from tests.outgoing.conftest import make_smtp_account
from tests.replies.conftest import PDF, Mailroom, share, web_client

pytestmark = pytest.mark.django_db


def reply_url(message: Message, mode: str = "reply") -> str:
    return reverse("web:mail_reply", args=[message.pk]) + f"?mode={mode}"


def form_data(page: object) -> dict[str, object]:
    return dict(page.context["form"].initial)  # type: ignore[attr-defined]


def test_reply_page_is_prefilled_and_sending_threads_the_reply(
    mailroom: Mailroom, received: Message, issue: Record, alice: User
) -> None:
    client = web_client(alice)
    page = client.get(reply_url(received))
    assert page.status_code == 200
    initial = form_data(page)
    assert initial["to"] == "Jane Doe <jane@customer.test>"
    assert initial["cc"] == ""
    assert initial["subject"] == "Re: Printer on fire"
    assert initial["account"] == mailroom.account.pk
    assert "Jane Doe wrote:\n> The printer is on fire.\n> Please help.\n" in str(initial["text"])
    assert issue.reference in page.content.decode()

    edited = "Thanks, Jane.\n\n> The printer is on fire.\n"
    response = client.post(
        reverse("web:mail_reply", args=[received.pk]),
        {
            "mode": "reply",
            "account": mailroom.account.pk,
            "to": initial["to"],
            "cc": "",
            "subject": initial["subject"],
            "text": edited,
        },
    )
    item = OutboxItem.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("web:record_detail", args=[issue.pk])
    [note] = list(get_messages(response.wsgi_request))
    assert "queued" in str(note)
    assert RecordLink.objects.filter(record=issue, outbox_item=item).exists()
    [sent] = mailroom.deliver()
    mail = sent.message
    assert mail["In-Reply-To"] == "<m2@customer.test>"
    assert mail["References"].split()[-1] == "<m2@customer.test>"
    assert mail["Subject"] == "Re: Printer on fire"
    # The text goes out as edited: no second quote added.
    body = mail.get_body(("plain",))
    assert body is not None
    assert str(body.get_content()).replace("\r\n", "\n") == edited
    assert record_from_message_id(item.message_id) == issue.pk


def test_reply_all_page_copies_the_others(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    initial = form_data(web_client(alice).get(reply_url(received, "reply_all")))
    assert initial["to"] == "Jane Doe <jane@customer.test>"
    assert initial["cc"] == "carol@customer.test"


def test_forward_lists_and_sends_the_attachments(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    client = web_client(alice)
    page = client.get(reply_url(received, "forward"))
    initial = form_data(page)
    assert initial["to"] == ""
    assert initial["subject"] == "Fwd: AW: Printer on fire"
    assert "---------- Forwarded message ----------" in str(initial["text"])
    assert 'id="compose-attachments"' in page.content.decode()
    assert "invoice.pdf" in page.content.decode()

    response = client.post(
        reverse("web:mail_reply", args=[received.pk]),
        {
            "mode": "forward",
            "account": mailroom.account.pk,
            "to": "tech@partner.test",
            "subject": initial["subject"],
            "text": initial["text"],
            "include_attachments": "on",
        },
    )
    assert response.status_code == 302
    [sent] = mailroom.deliver()
    assert sent.rcpt_tos == ("tech@partner.test",)
    [attachment] = list(sent.message.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content() == PDF


def test_bad_addresses_and_no_recipient_are_shown_on_the_form(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    client = web_client(alice)
    url = reverse("web:mail_reply", args=[received.pk])
    base = {"mode": "reply", "account": mailroom.account.pk, "subject": "Re: x", "text": "x"}
    page = client.post(url, {**base, "to": ""})
    assert page.status_code == 200
    assert "Give at least one recipient." in page.content.decode()
    page = client.post(url, {**base, "to": "jane@customer.test, bad@@x"})
    assert page.status_code == 200
    assert page.context["form"].errors["to"]
    assert not OutboxItem.objects.exists()


def test_who_may_see_the_form_and_who_may_send(
    mailroom: Mailroom, received: Message, make_user: object
) -> None:
    stranger = User.objects.create_user("stranger")
    assert web_client(stranger).get(reply_url(received)).status_code == 404

    # Send right only: the account is visible, its mail is not readable.
    sender_only = User.objects.create_user("sender")
    share(mailroom.account, sender_only, can_read=False, can_send=True)
    assert web_client(sender_only).get(reply_url(received)).status_code == 403

    # Read right only, no account to send from: the form says so and nothing is sent.
    reader = User.objects.create_user("reader")
    share(mailroom.account, reader, can_read=True)
    client = web_client(reader)
    page = client.get(reply_url(received))
    assert page.status_code == 200
    assert 'id="compose-refused"' in page.content.decode()
    data = {"mode": "reply", "to": "jane@customer.test", "subject": "Re", "text": "x"}
    url = reverse("web:mail_reply", args=[received.pk])
    # Choosing the readable account without the send right: 403.
    assert client.post(url, {**data, "account": mailroom.account.pk}).status_code == 403
    # An account the user cannot see at all: 404.
    hidden = make_smtp_account(None, name="Hidden")
    assert client.post(url, {**data, "account": hidden.pk}).status_code == 404
    assert not OutboxItem.objects.exists()


def test_a_reply_on_a_record_the_user_may_not_change_is_refused(
    mailroom: Mailroom, received: Message, issue: Record
) -> None:
    reader = User.objects.create_user("reader")
    share(mailroom.account, reader, can_read=True)
    other = make_smtp_account(None, name="Other")
    share(other, reader, can_read=True, can_send=True)
    client = web_client(reader)
    page = client.get(reply_url(received))
    assert 'id="compose-refused"' in page.content.decode()
    response = client.post(
        reverse("web:mail_reply", args=[received.pk]),
        {"mode": "reply", "account": other.pk, "to": "jane@customer.test", "text": "x"},
    )
    assert response.status_code == 403
    assert not OutboxItem.objects.exists()


def test_the_form_needs_a_csrf_token(mailroom: Mailroom, received: Message, alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        reverse("web:mail_reply", args=[received.pk]),
        {"mode": "reply", "account": mailroom.account.pk, "to": "jane@customer.test"},
    )
    assert response.status_code == 403
    assert not OutboxItem.objects.exists()


def test_mail_from_a_record(mailroom: Mailroom, issue: Record, alice: User) -> None:
    client = web_client(alice)
    url = reverse("web:record_compose", args=[issue.pk])
    initial = form_data(client.get(url))
    assert initial["to"] == "Jane Doe <jane@customer.test>"
    assert initial["subject"] == f"[{issue.reference}] AW: Printer on fire"
    assert initial["account"] == mailroom.account.pk
    response = client.post(
        url,
        {
            "account": mailroom.account.pk,
            "to": initial["to"],
            "subject": initial["subject"],
            "text": "Fixed.",
        },
    )
    assert response.status_code == 302
    assert response.url == reverse("web:record_detail", args=[issue.pk])
    item = OutboxItem.objects.get()
    assert RecordLink.objects.filter(record=issue, outbox_item=item).exists()
    [sent] = mailroom.deliver()
    assert sent.rcpt_tos == ("jane@customer.test",)
    assert record_from_message_id(sent.message["Message-ID"].strip("<>")) == issue.pk


def test_mail_from_a_record_needs_the_write_right(mailroom: Mailroom, issue: Record) -> None:
    url = reverse("web:record_compose", args=[issue.pk])
    stranger = User.objects.create_user("stranger")
    assert web_client(stranger).get(url).status_code == 404
    reader = User.objects.create_user("reader")
    share(mailroom.account, reader, can_read=True)
    client = web_client(reader)
    assert client.get(url).status_code == 403
    data = {"account": mailroom.account.pk, "to": "jane@customer.test", "text": "x"}
    assert client.post(url, data).status_code == 403
    assert not OutboxItem.objects.exists()


def test_the_message_and_record_pages_lead_to_the_compose_pages(
    mailroom: Mailroom, received: Message, issue: Record, alice: User
) -> None:
    client = web_client(alice)
    page = client.get(reverse("web:mail_message", args=[received.pk])).content.decode()
    for mode in ("reply", "reply_all", "forward"):
        assert f'href="{reply_url(received, mode)}"' in page
    record_page = client.get(reverse("web:record_detail", args=[issue.pk])).content.decode()
    assert f'href="{reverse("web:record_compose", args=[issue.pk])}"' in record_page
    assert f'href="{reply_url(received)}&amp;record={issue.pk}"' in record_page

    reader = User.objects.create_user("reader")
    share(mailroom.account, reader, can_read=True)
    record_page = web_client(reader).get(reverse("web:record_detail", args=[issue.pk]))
    assert record_page.status_code == 200
    assert "record-send-mail" not in record_page.content.decode()
    assert "mode=reply" not in record_page.content.decode()


def test_replying_from_the_record_timeline_names_the_record(
    mailroom: Mailroom, received: Message, issue: Record, alice: User
) -> None:
    client = web_client(alice)
    page = client.get(f"{reply_url(received)}&record={issue.pk}")
    assert f'name="record" value="{issue.pk}"' in page.content.decode()
    other = Record.objects.create(
        type=issue.type,
        number=999,
        reference="ISSUE-999",
        title="x",
        status="new",
        account=mailroom.account,
    )
    assert client.get(f"{reply_url(received)}&record={other.pk}").status_code == 404


def test_sending_the_same_form_twice_queues_one_message(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    client = web_client(alice)
    initial = form_data(client.get(reply_url(received)))
    assert len(str(initial["once"])) == 32
    data = {**initial, "mode": "reply", "account": mailroom.account.pk}
    url = reverse("web:mail_reply", args=[received.pk])
    first, second = client.post(url, data), client.post(url, data)
    assert first.status_code == second.status_code == 302
    assert first.url == second.url
    assert OutboxItem.objects.count() == 1
    # A form shown anew is a new message.
    again = form_data(client.get(reply_url(received)))
    third = client.post(url, {**again, "mode": "reply", "account": mailroom.account.pk})
    assert third.status_code == 302
    assert OutboxItem.objects.count() == 2


def test_the_account_choice_lists_only_accounts_the_user_may_send_from(
    mailroom: Mailroom, received: Message
) -> None:
    reader = User.objects.create_user("reader")
    share(mailroom.account, reader, can_read=True)
    other = make_smtp_account(mailroom.smtp, name="Other")
    share(other, reader, can_read=True, can_send=True)
    make_smtp_account(None, name="Unshared")
    page = web_client(reader).get(reply_url(received))
    choices = [value for value, _label in page.context["form"].fields["account"].choices]
    assert choices == [other.pk]
    assert page.context["form"].initial["account"] == other.pk
