"""Signing in and out, CSRF, and A7: owners are asked for awaiting passwords."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from postroom.accounts.models import EmailAccount, EmailDomain
from tests.web.conftest import PASSWORD, client_for, make_account

pytestmark = pytest.mark.django_db


def test_sign_in_and_out(alice: User) -> None:
    client = Client()
    page = client.get(reverse("web:login"))
    assert page.status_code == 200
    assert b'name="password"' in page.content

    response = client.post(reverse("web:login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("web:home")
    assert client.get(reverse("web:account_list")).status_code == 200

    # Signing out is a POST; a GET (a link, an image) must not sign anyone out.
    assert client.get(reverse("web:logout")).status_code == 405
    response = client.post(reverse("web:logout"))
    assert response.status_code == 302
    assert client.get(reverse("web:account_list")).status_code == 302


def test_wrong_password_is_refused_with_a_message(alice: User) -> None:
    response = Client().post(reverse("web:login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"correct username and password" in response.content


def test_sign_in_keeps_a_safe_next_and_drops_a_foreign_one(alice: User) -> None:
    response = Client().post(
        reverse("web:login") + "?next=/domains/",
        {"username": "alice", "password": PASSWORD, "next": "/domains/"},
    )
    assert response["Location"] == "/domains/"
    response = Client().post(
        reverse("web:login"),
        {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("web:home")


def test_posts_without_the_csrf_token_are_refused(alice: User, domain: EmailDomain) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    account = make_account("a@example.test", owner=alice)
    for url in (
        reverse("web:account_create"),
        reverse("web:account_test", args=[account.pk]),
        reverse("web:account_delete", args=[account.pk]),
        reverse("web:tokens"),
        reverse("web:logout"),
        reverse("set_language"),
    ):
        assert client.post(url, {"name": "x", "language": "de"}).status_code == 403, url
    assert EmailAccount.objects.filter(pk=account.pk).exists()
    # The sign-in form itself is protected too.
    assert (
        Client(enforce_csrf_checks=True)
        .post(reverse("web:login"), {"username": "alice", "password": PASSWORD})
        .status_code
        == 403
    )


def test_owner_of_awaiting_accounts_is_asked_for_their_passwords(
    admin: User, alice: User, domain: EmailDomain
) -> None:
    waiting = make_account("alice@example.test", owner=alice, password="", awaiting_password=True)
    client = Client()
    response = client.post(reverse("web:login"), {"username": "alice", "password": PASSWORD})
    assert response["Location"].startswith(reverse("web:passwords"))
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b"alice@example.test" in page.content

    # Saving checks the servers (A5); skip_check is forced off, and example.test has none.
    # Without a password the shared form refuses.
    page = client.post(reverse("web:passwords"), {"account": waiting.pk, "password": ""})
    assert b"This field is required" in page.content
    waiting.refresh_from_db()
    assert waiting.awaiting_password

    # An admin signing in owns nothing awaiting: straight home.
    response = Client().post(reverse("web:login"), {"username": "admin", "password": PASSWORD})
    assert response["Location"] == reverse("web:home")


def test_awaiting_password_page_only_offers_own_accounts(
    alice: User, bob: User, domain: EmailDomain
) -> None:
    bobs = make_account("bob@example.test", owner=bob, password="", awaiting_password=True)
    client = client_for(alice)
    # Nothing of alice's waits: the page sends her on.
    assert client.get(reverse("web:passwords")).status_code == 302
    # Posting bob's account id changes nothing.
    client.post(reverse("web:passwords"), {"account": bobs.pk, "password": "taken-over"})
    bobs.refresh_from_db()
    assert bobs.awaiting_password and not bobs.has_password
