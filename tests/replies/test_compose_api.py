"""POST /api/v1/messages/{id}/reply and POST /api/v1/records/{id}/messages."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from postroom.incoming.models import Message
from postroom.outgoing.models import OutboxItem
from postroom.records.models import LinkVia, Record, RecordLink
from postroom.records.tokens import record_from_message_id
from tests.outgoing.conftest import make_smtp_account
from tests.replies.conftest import PDF, Mailroom, api_client, share

pytestmark = pytest.mark.django_db


def post(client: Client, path: str, data: dict[str, Any], **headers: str) -> Any:
    return client.post("/api/v1" + path, data, content_type="application/json", headers=headers)


def test_reply_through_the_api_threads_and_quotes(
    mailroom: Mailroom, received: Message, issue: Record, alice: User
) -> None:
    response = post(api_client(alice), f"/messages/{received.pk}/reply", {"text": "On it."})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["account_id"] == mailroom.account.pk
    assert body["subject"] == "Re: Printer on fire"
    assert list(body["recipients"]) == ["jane@customer.test"]
    assert record_from_message_id(body["message_id"]) == issue.pk
    assert RecordLink.objects.filter(
        record=issue, outbox_item_id=body["id"], via=LinkVia.SENT
    ).exists()
    [sent] = mailroom.deliver()
    mail = sent.message
    assert mail["In-Reply-To"] == "<m2@customer.test>"
    assert mail["References"].split() == [
        "<m0@customer.test>",
        "<m1@customer.test>",
        "<m2@customer.test>",
    ]
    text = mail.get_body(("plain",))
    assert text is not None
    content = str(text.get_content()).replace("\r\n", "\n")
    assert content.startswith("On it.\n\nOn ")
    assert "Jane Doe wrote:\n> The printer is on fire.\n" in content


def test_reply_all_with_overrides_and_html(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    response = post(
        api_client(alice),
        f"/messages/{received.pk}/reply",
        {
            "mode": "reply_all",
            "text": "See below",
            "html": "<p>See below</p>",
            "cc": ["dan@customer.test"],
            "bcc": ["archive@example.net"],
            "subject": "Re: Printer (urgent)",
        },
    )
    assert response.status_code == 201, response.json()
    [sent] = mailroom.deliver()
    assert sorted(sent.rcpt_tos) == [
        "archive@example.net",
        "dan@customer.test",
        "jane@customer.test",
    ]
    mail = sent.message
    assert mail["Cc"] == "dan@customer.test"
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Re: Printer (urgent)"
    html = mail.get_body(("html",))
    assert html is not None
    assert '<blockquote type="cite"' in str(html.get_content())


def test_forward_through_the_api_includes_the_attachments(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    client = api_client(alice)
    refused = post(client, f"/messages/{received.pk}/reply", {"mode": "forward"})
    assert refused.status_code == 422
    assert "to" in refused.json()["errors"]
    extra = {"filename": "note.txt", "content_type": "text/plain", "data": "aGk="}
    response = post(
        client,
        f"/messages/{received.pk}/reply",
        {"mode": "forward", "to": ["tech@partner.test"], "attachments": [extra]},
    )
    assert response.status_code == 201, response.json()
    assert response.json()["subject"] == "Fwd: AW: Printer on fire"
    [sent] = mailroom.deliver()
    files = {a.get_filename(): a.get_content() for a in sent.message.iter_attachments()}
    assert files["invoice.pdf"] == PDF
    assert files["note.txt"].strip() == "hi"


def test_the_idempotency_key_queues_once(
    mailroom: Mailroom, received: Message, alice: User
) -> None:
    client = api_client(alice)
    path = f"/messages/{received.pk}/reply"
    first = post(client, path, {"text": "once"}, **{"Idempotency-Key": "reply-1"})
    second = post(client, path, {"text": "once"}, **{"Idempotency-Key": "reply-1"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert OutboxItem.objects.count() == 1
    assert len(mailroom.deliver()) == 1


def test_reply_permissions(mailroom: Mailroom, received: Message, issue: Record) -> None:
    path = f"/messages/{received.pk}/reply"
    stranger = User.objects.create_user("stranger")
    assert post(api_client(stranger), path, {"text": "x"}).status_code == 404

    reader = User.objects.create_user("reader")
    share(mailroom.account, reader, can_read=True)
    client = api_client(reader)
    # Reading is not changing the record the message is on.
    response = post(client, path, {"text": "x"})
    assert response.status_code == 403
    assert issue.reference in response.json()["detail"]

    RecordLink.objects.filter(record=issue).delete()
    # No account to send from.
    assert post(client, path, {"text": "x"}).status_code == 403
    # An account given without the send right, and one not visible at all.
    assert post(client, path, {"text": "x", "account": mailroom.account.pk}).status_code == 403
    hidden = make_smtp_account(None, name="Hidden")
    assert post(client, path, {"text": "x", "account": hidden.pk}).status_code == 404
    assert not OutboxItem.objects.exists()

    # With the send right on another account, that one is the default.
    other = make_smtp_account(mailroom.smtp, name="Other")
    share(other, reader, can_read=True, can_send=True)
    response = post(client, path, {"text": "x"})
    assert response.status_code == 201
    assert response.json()["account_id"] == other.pk


def test_send_from_a_record_through_the_api(mailroom: Mailroom, issue: Record, alice: User) -> None:
    data = base64.b64encode(b"report").decode()
    response = post(
        api_client(alice),
        f"/records/{issue.pk}/messages",
        {
            "text": "Here is the report.",
            "attachments": [{"filename": "r.txt", "content_type": "text/plain", "data": data}],
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["subject"] == f"[{issue.reference}] AW: Printer on fire"
    assert list(body["recipients"]) == ["jane@customer.test"]
    assert RecordLink.objects.filter(record=issue, outbox_item_id=body["id"]).exists()
    [sent] = mailroom.deliver()
    assert record_from_message_id(sent.message["Message-ID"].strip("<>")) == issue.pk
    assert [a.get_filename() for a in sent.message.iter_attachments()] == ["r.txt"]


def test_send_from_a_record_permissions(mailroom: Mailroom, issue: Record, alice: User) -> None:
    path = f"/records/{issue.pk}/messages"
    stranger = User.objects.create_user("stranger")
    assert post(api_client(stranger), path, {"text": "x"}).status_code == 404
    reader = User.objects.create_user("reader")
    share(mailroom.account, reader, can_read=True)
    assert post(api_client(reader), path, {"text": "x"}).status_code == 403
    bad = post(api_client(alice), path, {"text": "x", "to": ["not an address"]})
    assert bad.status_code == 422
    assert "to[0]" in bad.json()["errors"]
    assert not OutboxItem.objects.exists()


def test_the_draft_shows_what_a_reply_starts_as(
    mailroom: Mailroom, received: Message, issue: Record, alice: User
) -> None:
    client = api_client(alice)
    response = client.get(f"/api/v1/messages/{received.pk}/reply", {"mode": "reply_all"})
    assert response.status_code == 200, response.json()
    draft = response.json()
    assert draft["subject"] == "Re: Printer on fire"
    assert draft["to"] == ["Jane Doe <jane@customer.test>"]
    assert draft["cc"] == ["carol@customer.test"]
    assert draft["in_reply_to"] == "m2@customer.test"
    assert draft["references"][-1] == "m2@customer.test"
    assert draft["account_id"] == mailroom.account.pk
    assert draft["record_id"] == issue.pk
    assert "> The printer is on fire." in draft["quoted"]
    assert draft["attachments"] == []
    forward = client.get(f"/api/v1/messages/{received.pk}/reply", {"mode": "forward"}).json()
    assert forward["attachments"] == ["invoice.pdf"]
    assert forward["to"] == []
    stranger = api_client(User.objects.create_user("stranger"))
    assert stranger.get(f"/api/v1/messages/{received.pk}/reply").status_code == 404
    assert not OutboxItem.objects.exists()
