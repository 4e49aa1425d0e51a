"""``/api/v1/outbox`` against real aiosmtpd servers: queue, deliver, follow, cancel, retry."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from postroom.accounts.actions import do_save_account, do_share_account
from postroom.accounts.models import EmailAccount
from postroom.outgoing.actions import deliver_due, do_suppress
from postroom.outgoing.models import OutboxItem
from tests.api.conftest import ApiClient
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
SECURITY = {"plain": "none", "starttls": "starttls", "implicit": "ssl"}


def smtp_account(server: SmtpServer, owner: User | None, **extra: Any) -> EmailAccount:
    """An account sending through ``server`` (its TLS mode, trusting the run's CA)."""
    number = next(_numbers)
    fields: dict[str, Any] = {
        "name": f"out{number}",
        "email": f"out{number}@example.test",
        "owner": owner,
        "incoming_enabled": False,
        "outgoing_enabled": True,
        "smtp_host": "localhost",
        "smtp_port": server.port,
        "smtp_security": SECURITY[server.mode],
        "smtp_auth": False,
        "ca_cert": server.ca_pem if server.mode != "plain" else "",
    }
    fields.update(extra)
    return do_save_account(EmailAccount(**fields), actor=None, check=False)


def deliver() -> int:
    return deliver_due("api-test", 10)


def body(account: EmailAccount, **extra: Any) -> dict[str, Any]:
    return {
        "account": account.pk,
        "to": ["rcpt@example.test"],
        "subject": "Hello",
        "text": "Body\n",
        **extra,
    }


def post_with_key(client: ApiClient, data: dict[str, Any], key: str) -> Any:
    return client.client.post(
        "/api/v1/outbox", data, content_type="application/json", headers={"Idempotency-Key": key}
    )


@pytest.fixture
def server(smtp_server_factory: Callable[..., SmtpServer]) -> SmtpServer:
    return smtp_server_factory(mode="starttls")


def test_queued_message_reaches_the_server_and_detail_shows_the_reply(
    alice: User, api_for: Callable[[User], ApiClient], server: SmtpServer
) -> None:
    account = smtp_account(server, alice)
    client = api_for(alice)
    attachment = {
        "filename": "note.txt",
        "content_type": "text/plain",
        "data": base64.b64encode(b"attached bytes").decode(),
    }
    created = client.post(
        "/outbox",
        body(
            account,
            cc=["Carol <carol@example.test>"],
            html="<p>Body</p>",
            attachments=[attachment],
            headers={"X-Test": "yes"},
        ),
    )
    assert created.status_code == 201, created.json()
    item = created.json()
    assert item["state"] == "queued"
    assert item["account"] == account.name
    assert set(item["recipients"]) == {"rcpt@example.test", "carol@example.test"}

    assert deliver() == 1
    (received,) = server.wait_for_messages(1)
    assert set(received.rcpt_tos) == {"rcpt@example.test", "carol@example.test"}
    assert received.tls
    message = received.message
    assert message["Message-ID"] == f"<{item['message_id']}>"
    assert message["X-Test"] == "yes"
    assert [p.get_filename() for p in message.iter_attachments()] == ["note.txt"]

    detail = client.get(f"/outbox/{item['id']}")
    assert detail.status_code == 200
    data = detail.json()
    assert data["state"] == "sent"
    for recipient in data["recipients"].values():
        assert recipient["status"] == "sent"
        assert recipient["reply"].startswith("250")
    (attempt,) = data["attempts"]
    assert attempt["outcome"] == "sent"
    assert {r["address"] for r in attempt["recipients"]} == set(data["recipients"])

    listed = client.get("/outbox", account=account.pk, state="sent").json()
    assert [i["id"] for i in listed["items"]] == [item["id"]]
    assert client.get("/outbox", state="queued").json()["items"] == []


def test_a_refused_recipient_fails_with_the_server_reply_and_others_are_sent(
    alice: User, api_for: Callable[[User], ApiClient], server: SmtpServer
) -> None:
    account = smtp_account(server, alice)
    client = api_for(alice)
    item = client.post("/outbox", body(account, to=["bad@example.test", "good@example.test"]))
    server.fail_next("RCPT", "550 5.1.1 No such user here")
    deliver()
    data = client.get(f"/outbox/{item.json()['id']}").json()
    assert data["recipients"]["bad@example.test"]["status"] == "failed"
    assert "No such user here" in data["recipients"]["bad@example.test"]["reply"]
    assert data["recipients"]["good@example.test"]["status"] == "sent"
    assert data["state"] == "partial"

    # Retry queues the failed recipient again, and it goes through this time.
    retried = client.post(f"/outbox/{data['id']}/retry")
    assert retried.status_code == 200, retried.json()
    assert retried.json()["recipients"]["bad@example.test"]["status"] == "queued"
    deliver()
    data = client.get(f"/outbox/{data['id']}").json()
    assert data["recipients"]["bad@example.test"]["status"] == "sent"
    assert len(data["attempts"]) == 2
    # Nothing left to retry.
    assert client.post(f"/outbox/{data['id']}/retry").status_code == 409


def test_idempotency_key_never_queues_twice(
    alice: User, api_for: Callable[[User], ApiClient], server: SmtpServer
) -> None:
    account = smtp_account(server, alice)
    client = api_for(alice)
    first = post_with_key(client, body(account), "order-42")
    assert first.status_code == 201
    again = post_with_key(client, body(account, subject="Changed"), "order-42")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["subject"] == "Hello"
    assert OutboxItem.objects.count() == 1
    other = post_with_key(client, body(account), "order-43")
    assert other.status_code == 201
    assert OutboxItem.objects.count() == 2
    deliver()
    assert len(server.wait_for_messages(2)) == 2


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"to": ["not an address"]}, "to"),
        ({"subject": "Hi\r\nBcc: evil@example.test"}, "subject"),
        ({"headers": {"X-Bad": "a\nb"}}, "headers"),
        (
            {"attachments": [{"filename": "a.bin", "content_type": "x", "data": "AAAA"}]},
            "attachments[0].content_type",
        ),
        (
            {"attachments": [{"filename": "a.bin", "data": "not base64!"}]},
            "attachments[0].data",
        ),
        ({"priority": "high"}, "priority"),
    ],
)
def test_invalid_input_is_422_with_field_errors(
    alice: User,
    api_for: Callable[[User], ApiClient],
    server: SmtpServer,
    extra: dict[str, Any],
    field: str,
) -> None:
    account = smtp_account(server, alice)
    response = api_for(alice).post("/outbox", body(account, **extra))
    assert response.status_code == 422, response.json()
    data = response.json()
    assert data["code"] == "invalid"
    assert data["detail"]
    assert any(key.startswith(field) for key in data["errors"]), data["errors"]
    assert not OutboxItem.objects.exists()


def test_suppressed_recipient_is_422_naming_the_field(
    alice: User, api_for: Callable[[User], ApiClient], server: SmtpServer
) -> None:
    account = smtp_account(server, alice)
    do_suppress("Gone@Example.test", reason="550 5.1.1 user unknown")
    response = api_for(alice).post("/outbox", body(account, cc=["Gone <gone@example.test>"]))
    assert response.status_code == 422
    data = response.json()
    assert data["code"] == "suppressed"
    assert list(data["errors"]) == ["cc"]
    assert data["addresses"] == ["gone@example.test"]
    assert not OutboxItem.objects.exists()


def test_account_that_cannot_send_is_409(
    alice: User, api_for: Callable[[User], ApiClient], server: SmtpServer
) -> None:
    account = smtp_account(server, alice, outgoing_enabled=False)
    response = api_for(alice).post("/outbox", body(account))
    assert response.status_code == 409
    assert "switched off" in response.json()["detail"]


def test_cancel_before_sending(
    alice: User, api_for: Callable[[User], ApiClient], server: SmtpServer
) -> None:
    account = smtp_account(server, alice)
    client = api_for(alice)
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    item = client.post("/outbox", body(account, send_at=later)).json()
    assert item["wait_reason"] == "scheduled"
    cancelled = client.post(f"/outbox/{item['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["recipients"]["rcpt@example.test"]["status"] == "cancelled"
    assert client.post(f"/outbox/{item['id']}/cancel").status_code == 409
    deliver()
    assert server.messages == []


def test_send_right_is_needed_and_others_see_nothing(
    alice: User,
    bob: User,
    make_user: Callable[..., User],
    api_for: Callable[[User], ApiClient],
    server: SmtpServer,
) -> None:
    account = smtp_account(server, alice)
    item = api_for(alice).post("/outbox", body(account)).json()

    # Bob can read the account but not send from it: he sees the item, may not act.
    do_share_account(account, actor=None, user=bob, can_read=True, can_send=False)
    as_bob = api_for(bob)
    assert as_bob.get(f"/outbox/{item['id']}").status_code == 200
    assert [i["id"] for i in as_bob.get("/outbox").json()["items"]] == [item["id"]]
    assert as_bob.post("/outbox", body(account)).status_code == 403
    assert as_bob.post(f"/outbox/{item['id']}/cancel").status_code == 403
    assert as_bob.post(f"/outbox/{item['id']}/retry").status_code == 403

    # Carol has no right at all: the account and the item do not exist for her.
    as_carol = api_for(make_user("carol"))
    assert as_carol.post("/outbox", body(account)).status_code == 404
    assert as_carol.get(f"/outbox/{item['id']}").status_code == 404
    assert as_carol.post(f"/outbox/{item['id']}/cancel").status_code == 404
    assert as_carol.get("/outbox").json()["items"] == []
    assert as_carol.get("/outbox", account=account.pk).status_code == 404
    assert OutboxItem.objects.count() == 1

    # Given the send right, Bob may queue.
    do_share_account(account, actor=None, user=bob, can_read=True, can_send=True)
    assert api_for(User.objects.get(pk=bob.pk)).post("/outbox", body(account)).status_code == 201


def test_list_pages_with_a_cursor(
    alice: User, api_for: Callable[[User], ApiClient], server: SmtpServer
) -> None:
    account = smtp_account(server, alice)
    client = api_for(alice)
    ids = [client.post("/outbox", body(account)).json()["id"] for _ in range(3)]
    first = client.get("/outbox", limit=2).json()
    assert [i["id"] for i in first["items"]] == ids[::-1][:2]
    second = client.get("/outbox", limit=2, cursor=first["next_cursor"]).json()
    assert [i["id"] for i in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    bad = client.get("/outbox", cursor="garbage")
    assert bad.status_code == 422
    assert "cursor" in bad.json()["errors"]
    assert client.get("/outbox", state="nonsense").status_code == 422
