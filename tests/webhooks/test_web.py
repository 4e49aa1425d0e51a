"""The webhook pages: permissions, the secret shown once, test button, delivery log."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from postroom.webhooks.delivery import deliver_due
from postroom.webhooks.models import DeliveryState, WebhookDelivery, WebhookSubscription
from tests.web.conftest import client_for, make_account, make_user
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.django_db

__all__ = ["make_user"]  # fixture

SECRET = re.compile(r'<code id="webhook-secret" dir="ltr">(whsec_[^<]+)</code>')


def manager_of(user: User) -> User:
    user.user_permissions.add(Permission.objects.get(codename="change_webhooksubscription"))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def manager(make_user: Callable[..., User]) -> User:
    return manager_of(make_user("manny"))


def create(client: Client, receiver: Receiver, account_pk: int | None, **extra: str) -> str:
    data = {
        "name": "CRM",
        "url": receiver.url,
        "event_types": ["record.created", "record.updated"],
        "account": "" if account_pk is None else str(account_pk),
        "active": "on",
        **extra,
    }
    response = client.post("/webhooks/new/", data)
    assert response.status_code == 200, response.content
    found = SECRET.search(response.content.decode())
    assert found, response.content.decode()
    return found.group(1)


def test_pages_need_the_permission(make_user: Callable[..., User], receiver: Receiver) -> None:
    plain = make_user("plain")
    client = client_for(plain)
    assert client.get("/webhooks/").status_code == 403
    assert client.get("/webhooks/new/").status_code == 403
    assert client.post("/webhooks/new/", {"name": "x", "url": receiver.url}).status_code == 403
    assert "/webhooks/" not in client.get("/events/").content.decode()
    anonymous = Client().get("/webhooks/")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_another_accounts_webhook_is_not_found(
    manager: User, make_user: Callable[..., User], receiver: Receiver
) -> None:
    other = make_user("other")
    theirs = make_account("theirs@example.test", owner=other)
    foreign = WebhookSubscription.objects.create(
        name="foreign",
        url=receiver.url,
        secret_encrypted="",
        event_types=["record.created"],
        account=theirs,
    )
    everyone = WebhookSubscription.objects.create(
        name="everyone", url=receiver.url, secret_encrypted="", event_types=["record.created"]
    )
    client = client_for(manager)
    for subscription in (foreign, everyone):
        pk = subscription.pk
        assert client.get(f"/webhooks/{pk}/edit/").status_code == 404
        assert client.get(f"/webhooks/{pk}/deliveries/").status_code == 404
        assert client.post(f"/webhooks/{pk}/test/").status_code == 404
        assert client.post(f"/webhooks/{pk}/secret/").status_code == 404
        assert client.post(f"/webhooks/{pk}/delete/").status_code == 404
        assert client.post(f"/webhooks/{pk}/deliveries/1/redeliver/").status_code == 404
    listing = client.get("/webhooks/").content.decode()
    assert "foreign" not in listing and "everyone" not in listing
    assert WebhookSubscription.objects.count() == 2
    # Nor can one be made for that account, or for every account.
    response = client.post(
        "/webhooks/new/",
        {"name": "x", "url": receiver.url, "event_types": ["record.created"], "account": theirs.pk},
    )
    assert "webhook-secret" not in response.content.decode()
    assert "There is no account with this id that you can read." in response.content.decode()
    response = client.post(
        "/webhooks/new/",
        {"name": "x", "url": receiver.url, "event_types": ["record.created"], "account": ""},
    )
    assert "only administrators" in response.content.decode()
    assert WebhookSubscription.objects.count() == 2


def test_the_secret_is_shown_once_then_never(manager: User, receiver: Receiver) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = client_for(manager)
    page = client.get("/webhooks/")
    assert 'href="/webhooks/"' in page.content.decode()  # in the navigation
    secret = create(client, receiver, account.pk)
    subscription = WebhookSubscription.objects.get()
    assert subscription.account == account
    assert subscription.event_types == ["record.created", "record.updated"]
    assert secret not in subscription.secret_encrypted
    for path in (
        "/webhooks/",
        f"/webhooks/{subscription.pk}/edit/",
        f"/webhooks/{subscription.pk}/deliveries/",
        "/events/",
    ):
        response = client.get(path)
        assert response.status_code == 200
        assert secret not in response.content.decode()

    rotated = client.post(f"/webhooks/{subscription.pk}/secret/")
    found = SECRET.search(rotated.content.decode())
    assert found and found.group(1) != secret
    assert "no-cache" in rotated["Cache-Control"] or "no-store" in rotated["Cache-Control"]


def test_bad_input_is_refused_with_a_reason(manager: User, receiver: Receiver) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = client_for(manager)
    response = client.post(
        "/webhooks/new/",
        {"name": "x", "url": "ftp://example.test/", "event_types": [], "account": account.pk},
    )
    text = response.content.decode()
    assert "Enter an http:// or https:// URL." in text
    assert "Choose at least one event." in text
    assert not WebhookSubscription.objects.exists()


def test_csrf_is_checked(manager: User, receiver: Receiver) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    response = client.post(
        "/webhooks/new/",
        {
            "name": "x",
            "url": receiver.url,
            "event_types": ["record.created"],
            "account": account.pk,
        },
    )
    assert response.status_code == 403
    assert not WebhookSubscription.objects.exists()


def test_send_test_and_the_delivery_log(manager: User, receiver: Receiver) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = client_for(manager)
    create(client, receiver, account.pk)
    subscription = WebhookSubscription.objects.get()
    response = client.post(f"/webhooks/{subscription.pk}/test/")
    assert response.status_code == 302
    assert response["Location"] == f"/webhooks/{subscription.pk}/deliveries/"
    page = client.get(response["Location"]).content.decode()
    assert 'data-state="pending"' in page
    assert 'hx-trigger="every 5s"' in page  # refreshes while something waits
    while deliver_due("t", 10):
        pass
    assert [e["type"] for e in receiver.events()] == ["webhook.test"]
    partial = client.get(
        f"/webhooks/{subscription.pk}/deliveries/",
        headers={"HX-Request": "true", "HX-Target": "deliveries"},
    ).content.decode()
    assert "<html" not in partial
    assert 'data-state="delivered"' in partial
    assert 'data-status="200"' in partial
    assert "every 5s" not in partial

    # A given-up delivery gets a "send again" button that puts it back in the queue.
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED)
    listing = client.get("/webhooks/").content.decode()
    assert 'data-failed="1"' in listing
    page = client.get(f"/webhooks/{subscription.pk}/deliveries/?state=failed").content.decode()
    assert f"/deliveries/{delivery.pk}/redeliver/" in page
    client.post(f"/webhooks/{subscription.pk}/deliveries/{delivery.pk}/redeliver/")
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING


def test_edit_and_delete(manager: User, receiver: Receiver) -> None:
    account = make_account("mine@example.test", owner=manager)
    client = client_for(manager)
    create(client, receiver, account.pk)
    subscription = WebhookSubscription.objects.get()
    form = client.get(f"/webhooks/{subscription.pk}/edit/").content.decode()
    checked = set(re.findall(r'name="event_types" value="([a-z._]+)"[^>]* checked', form))
    assert checked == {"record.created", "record.updated"}
    response = client.post(
        f"/webhooks/{subscription.pk}/edit/",
        {
            "name": "Renamed",
            "url": receiver.url,
            "event_types": ["account.state_changed"],
            "account": account.pk,
        },
    )
    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.name == "Renamed"
    assert subscription.event_types == ["account.state_changed"]
    assert subscription.active is False  # the box was not ticked
    assert client.get(f"/webhooks/{subscription.pk}/delete/").status_code == 200
    assert client.post(f"/webhooks/{subscription.pk}/delete/").status_code == 302
    assert not WebhookSubscription.objects.exists()


def test_superuser_may_choose_all_accounts(
    make_user: Callable[..., User], receiver: Receiver
) -> None:
    root = make_user("root", superuser=True)
    client = client_for(root)
    assert "All accounts" in client.get("/webhooks/new/").content.decode()
    create(client, receiver, None)
    assert WebhookSubscription.objects.get().account is None


def test_pages_are_translated(manager: User) -> None:
    client = client_for(manager)
    client.cookies["django_language"] = "de"
    page = client.get("/webhooks/").content.decode()
    assert "Neuer Webhook" in page
    assert "Postroom sendet jedes Ereignis" in page
