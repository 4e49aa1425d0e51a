"""Domains, API tokens, site settings, the event log and the language switcher."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from postroom.accounts.models import EmailDomain
from postroom.core.actions import authenticate_token
from postroom.core.models import ApiToken, SiteSettings
from tests.web.conftest import client_for, make_account

pytestmark = pytest.mark.django_db


def test_domain_crud(admin: User) -> None:
    client = client_for(admin)
    data = {
        "name": "Example.ORG",
        "incoming_protocol": "imap",
        "incoming_host": "imap.example.org",
        "incoming_port": "993",
        "incoming_security": "ssl",
        "smtp_host": "smtp.example.org",
        "smtp_port": "587",
        "smtp_security": "starttls",
        "smtp_auth": "on",
        "verify_cert": "on",
    }
    assert client.post(reverse("web:domain_create"), data).status_code == 302
    domain = EmailDomain.objects.get(name="example.org")
    assert b"imap.example.org" in client.get(reverse("web:domain_list")).content

    bad = client.post(reverse("web:domain_edit", args=[domain.pk]), data | {"name": "not a domain"})
    assert b"Enter a domain name such as example.com" in bad.content
    bad = client.post(reverse("web:domain_create"), data | {"name": "x.test", "smtp_port": ""})
    assert b"Give the SMTP port as well as the SMTP server." in bad.content

    make_account("in-use@example.org", owner=admin, domain=domain)
    response = client.post(reverse("web:domain_delete", args=[domain.pk]), follow=True)
    assert b"is used by 1 account" in response.content
    assert EmailDomain.objects.filter(pk=domain.pk).exists()


def test_api_token_is_shown_once_and_can_be_revoked(alice: User, bob: User) -> None:
    client = client_for(alice)
    response = client.post(reverse("web:tokens"), {"name": "erp"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = re.search(r'id="new-token"[^>]*>([^<]+)<', response.content.decode())
    assert raw is not None
    token = authenticate_token(raw.group(1))
    assert token is not None and token.user == alice

    listing = client.get(reverse("web:tokens")).content.decode()
    assert raw.group(1) not in listing  # never again
    assert token.prefix in listing

    # Someone else's token cannot be revoked (or even found).
    assert client_for(bob).post(reverse("web:token_revoke", args=[token.pk])).status_code == 404
    assert client.post(reverse("web:token_revoke", args=[token.pk])).status_code == 302
    assert authenticate_token(raw.group(1)) is None
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_empty_token_name_is_refused(alice: User) -> None:
    response = client_for(alice).post(reverse("web:tokens"), {"name": ""})
    assert b"This field is required." in response.content
    assert not ApiToken.objects.exists()


def test_pop3_switch(admin: User) -> None:
    client = client_for(admin)
    assert SiteSettings.load().allow_pop3_for_new_accounts
    client.post(reverse("web:site_settings"), {})
    assert not SiteSettings.load().allow_pop3_for_new_accounts
    client.post(reverse("web:site_settings"), {"allow_pop3_for_new_accounts": "on"})
    assert SiteSettings.load().allow_pop3_for_new_accounts


def test_event_log_shows_visible_accounts_only(
    alice: User, bob: User, admin: User, domain: EmailDomain
) -> None:
    make_account("alice-log@example.test", owner=alice)
    make_account("bob-log@example.test", owner=bob)
    html = client_for(alice).get(reverse("web:events")).content.decode()
    assert "alice-log@example.test" in html
    assert "bob-log" not in html
    assert "example.test saved" not in html  # domain events have no account: admins only
    html = client_for(admin).get(reverse("web:events")).content.decode()
    assert "bob-log@example.test" in html and "example.test saved" in html


@pytest.mark.parametrize(
    ("code", "direction", "sign_in"),
    [
        ("ar", "rtl", "تسجيل الدخول"),
        ("de", "ltr", "Anmelden"),
        ("pl", "ltr", "Zaloguj się"),
        ("ja", "ltr", "サインイン"),
    ],
)
def test_language_switcher(code: str, direction: str, sign_in: str) -> None:
    client = Client()
    page = client.get(reverse("web:login")).content.decode()
    for label in ("English", "Deutsch", "Polski", "العربية", "日本語"):
        assert label in page
    response = client.post(reverse("set_language"), {"language": code, "next": "/login/"})
    assert response.status_code == 302 and response["Location"] == "/login/"
    html = client.get("/login/").content.decode()
    assert f'<html lang="{code}" dir="{direction}">' in html
    assert sign_in in html


def test_arabic_navigation_is_translated(admin: User) -> None:
    client = client_for(admin)
    client.post(reverse("set_language"), {"language": "ar", "next": "/"})
    html = client.get(reverse("web:account_list")).content.decode()
    assert 'dir="rtl"' in html
    assert "الحسابات" in html  # Accounts
    assert "تسجيل الخروج" in html  # Sign out
    # Every language keeps its own name in the switcher, whatever the page language.
    for label in ('lang="en"', ">English<", ">Deutsch<", ">Polski<", ">日本語<"):
        assert label in html
