"""/api/v1/webhooks: permissions, validation, the secret shown once, test, deliveries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from postroom.core import secrets
from postroom.webhooks.delivery import deliver_due
from postroom.webhooks.models import DeliveryState, WebhookDelivery, WebhookSubscription
from tests.api.conftest import ApiClient, api_for, grant, make_user
from tests.web.conftest import make_account
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.django_db

__all__ = ["api_for", "make_user"]  # fixtures

Api = Callable[[User], ApiClient]


def body(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "CRM",
        "url": receiver.url,
        "event_types": ["record.created", "message.received"],
    }
    data.update(extra)
    return data


@pytest.fixture
def manager(make_user: Callable[..., User]) -> User:
    return grant(make_user("manny"), "change_webhooksubscription")


def test_without_the_permission_everything_is_forbidden(
    make_user: Callable[..., User], api_for: Api, receiver: Receiver
) -> None:
    plain = make_user("plain")
    account = make_account("mine@example.test", owner=plain)
    client = api_for(plain)
    assert client.get("/webhooks").status_code == 403
    response = client.post("/webhooks", body(receiver, account=account.pk))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert not WebhookSubscription.objects.exists()


def test_a_manager_works_only_with_accounts_they_can_read(
    manager: User, make_user: Callable[..., User], api_for: Api, receiver: Receiver
) -> None:
    mine = make_account("mine@example.test", owner=manager)
    theirs = make_account("theirs@example.test", owner=make_user("other"))
    client = api_for(manager)

    refused = client.post("/webhooks", body(receiver, account=theirs.pk))
    assert refused.status_code == 422
    assert "account" in refused.json()["errors"]
    everything = client.post("/webhooks", body(receiver))  # no account: all accounts
    assert everything.status_code == 422
    assert "only administrators" in everything.json()["errors"]["account"][0]

    created = client.post("/webhooks", body(receiver, account=mine.pk))
    assert created.status_code == 201
    assert created.json()["account"] == mine.pk

    # A subscription on an account they cannot read is "not found", in every operation.
    foreign = WebhookSubscription.objects.create(
        name="x",
        url=receiver.url,
        secret_encrypted="",
        event_types=["record.created"],
        account=theirs,
    )
    for response in (
        client.get(f"/webhooks/{foreign.pk}"),
        client.patch(f"/webhooks/{foreign.pk}", {"name": "mine now"}),
        client.delete(f"/webhooks/{foreign.pk}"),
        client.post(f"/webhooks/{foreign.pk}/test"),
        client.post(f"/webhooks/{foreign.pk}/rotate-secret"),
        client.get(f"/webhooks/{foreign.pk}/deliveries"),
    ):
        assert response.status_code == 404
    listed = [s["id"] for s in client.get("/webhooks").json()]
    assert listed == [created.json()["id"]]
    # Moving their own subscription to the foreign account is refused too.
    moved = client.patch(f"/webhooks/{created.json()['id']}", {"account": theirs.pk})
    assert moved.status_code == 422


def test_superuser_may_subscribe_to_every_account(
    make_user: Callable[..., User], api_for: Api, receiver: Receiver
) -> None:
    root = make_user("root", superuser=True)
    created = api_for(root).post("/webhooks", body(receiver))
    assert created.status_code == 201
    assert created.json()["account"] is None


def test_the_secret_is_shown_once_and_stored_encrypted(
    manager: User, api_for: Api, receiver: Receiver
) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = api_for(manager)
    created = client.post("/webhooks", body(receiver, account=account.pk)).json()
    secret = created["secret"]
    assert secret.startswith("whsec_")
    stored = WebhookSubscription.objects.get(pk=created["id"])
    assert secret not in stored.secret_encrypted
    assert secrets.decrypt(stored.secret_encrypted) == secret

    pk = created["id"]
    for response in (
        client.get("/webhooks"),
        client.get(f"/webhooks/{pk}"),
        client.patch(f"/webhooks/{pk}", {"name": "Renamed", "active": False}),
        client.get(f"/webhooks/{pk}/deliveries"),
    ):
        assert response.status_code == 200
        assert secret not in response.content.decode()
        assert "secret" not in response.content.decode()

    rotated = client.post(f"/webhooks/{pk}/rotate-secret").json()
    assert rotated["secret"] != secret
    assert (
        secrets.decrypt(WebhookSubscription.objects.get(pk=pk).secret_encrypted)
        == (rotated["secret"])
    )


def test_bad_input_gets_specific_errors(manager: User, api_for: Api, receiver: Receiver) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = api_for(manager)
    cases = [
        ({"url": "ftp://example.test/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["record.exploded"]}, "event_types"),
        ({"event_types": ["webhook.test"]}, "event_types"),
        ({"name": ""}, "name"),
    ]
    for change, field in cases:
        response = client.post("/webhooks", body(receiver, account=account.pk, **change))
        assert response.status_code == 422, change
        assert field in response.json()["errors"], (change, response.json())
    assert not WebhookSubscription.objects.exists()


def test_patch_changes_only_what_is_given(manager: User, api_for: Api, receiver: Receiver) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = api_for(manager)
    pk = client.post("/webhooks", body(receiver, account=account.pk)).json()["id"]
    changed = client.patch(f"/webhooks/{pk}", {"event_types": ["account.state_changed"]})
    assert changed.status_code == 200
    assert changed.json()["event_types"] == ["account.state_changed"]
    assert changed.json()["name"] == "CRM"
    assert changed.json()["url"] == receiver.url
    assert client.delete(f"/webhooks/{pk}").status_code == 204
    assert client.get(f"/webhooks/{pk}").status_code == 404


def test_send_test_end_to_end_and_the_delivery_log(
    manager: User, api_for: Api, receiver: Receiver
) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = api_for(manager)
    pk = client.post("/webhooks", body(receiver, account=account.pk)).json()["id"]
    for _n in range(3):
        queued = client.post(f"/webhooks/{pk}/test")
        assert queued.status_code == 202
        assert queued.json()["state"] == "pending"
    while deliver_due("t", 10):
        pass
    assert [e["type"] for e in receiver.events()] == ["webhook.test"] * 3

    first = client.get(f"/webhooks/{pk}/deliveries", limit=2).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = client.get(f"/webhooks/{pk}/deliveries", limit=2, cursor=first["next_cursor"]).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    item = first["items"][0]
    assert item["state"] == "delivered"
    assert item["log"][0]["status_code"] == 200
    assert item["log"][0]["response_excerpt"] == "thanks"
    bad = client.get(f"/webhooks/{pk}/deliveries", cursor="garbage!")
    assert bad.status_code == 422

    # Redeliver: only what was given up.
    delivery_id = item["id"]
    again = client.post(f"/webhooks/{pk}/deliveries/{delivery_id}/redeliver")
    assert again.status_code == 409
    WebhookDelivery.objects.filter(pk=delivery_id).update(state=DeliveryState.FAILED)
    assert client.get(f"/webhooks/{pk}").json()["failed_deliveries"] == 1
    again = client.post(f"/webhooks/{pk}/deliveries/{delivery_id}/redeliver")
    assert again.status_code == 200
    assert again.json()["state"] == "pending"


def test_test_on_a_switched_off_webhook_is_refused(
    manager: User, api_for: Api, receiver: Receiver
) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = api_for(manager)
    pk = client.post("/webhooks", body(receiver, account=account.pk, active=False)).json()["id"]
    response = client.post(f"/webhooks/{pk}/test")
    assert response.status_code == 409
    assert "switched off" in response.json()["detail"]


def test_the_openapi_description_documents_events_and_signature(
    manager: User, api_for: Api
) -> None:
    document = api_for(manager).get("/openapi.json").json()
    text = document["info"]["description"]
    for event in (
        "message.received",
        "message.sent",
        "message.failed",
        "message.bounced",
        "record.created",
        "record.updated",
        "account.state_changed",
        "webhook.test",
    ):
        assert f"`{event}`" in text
    assert "X-Postroom-Signature" in text and "HMAC-SHA256" in text
    assert "/api/v1/webhooks/{subscription_id}/test" in document["paths"]
    events = api_for(manager).get("/webhooks/events").json()
    assert {e["type"] for e in events} >= {"record.created", "account.state_changed"}
