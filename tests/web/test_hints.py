"""The live helpers of the account and domain forms (htmx endpoints)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from postroom.accounts.models import EmailDomain
from tests.web.conftest import client_for

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def test_choosing_a_preset_fills_the_server_fields(admin: User) -> None:
    response = client_for(admin).get(
        reverse("web:account_form_servers"),
        {"email": "someone@gmail.com", "preset": "gmail", "domain": ""},
        headers=HTMX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Gmail" in html
    assert "app password" in html  # the preset's note
    # The server rows come back out of band, the inherited values as placeholders.
    assert 'id="row-incoming_host" hx-swap-oob="true"' in html
    assert 'placeholder="imap.gmail.com"' in html
    assert 'placeholder="993"' in html
    assert 'placeholder="smtp.gmail.com"' in html
    assert "Inherited: SSL/TLS" in html


def test_the_address_alone_finds_its_domain(admin: User, domain: EmailDomain) -> None:
    html = (
        client_for(admin)
        .get(reverse("web:account_form_servers"), {"email": "x@example.test"}, headers=HTMX)
        .content.decode()
    )
    assert "example.test" in html
    assert 'placeholder="imap.example.test"' in html
    assert 'placeholder="587"' in html


def test_typed_server_values_survive_the_refresh(admin: User) -> None:
    html = (
        client_for(admin)
        .get(
            reverse("web:account_form_servers"),
            {"email": "x@gmail.com", "preset": "gmail", "incoming_host": "imap.mine.test"},
            headers=HTMX,
        )
        .content.decode()
    )
    assert 'value="imap.mine.test"' in html


def test_an_unknown_address_says_what_to_do(admin: User) -> None:
    html = (
        client_for(admin)
        .get(reverse("web:account_form_servers"), {"email": "x@nowhere.test"}, headers=HTMX)
        .content.decode()
    )
    assert "No domain or preset is known for this address" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"smtp_port": "587", "smtp_security": "ssl"}, "Port 587 normally uses STARTTLS"),
        ({"smtp_port": "465", "smtp_security": "starttls"}, "Port 465 normally uses SSL/TLS"),
        (
            {"incoming_protocol": "imap", "incoming_port": "993", "incoming_security": "none"},
            "Port 993 expects an encrypted connection",
        ),
    ],
)
def test_account_warnings_endpoint(admin: User, query: dict[str, str], expected: str) -> None:
    query = {"email": "x@nowhere.test", "incoming_enabled": "on", "outgoing_enabled": "on", **query}
    response = client_for(admin).get(reverse("web:account_form_warnings"), query, headers=HTMX)
    assert response.status_code == 200
    assert expected in response.content.decode()


def test_no_warning_for_sane_or_disabled_settings(admin: User) -> None:
    client = client_for(admin)
    sane = {"outgoing_enabled": "on", "smtp_port": "587", "smtp_security": "starttls"}
    assert b"<li>" not in client.get(reverse("web:account_form_warnings"), sane).content
    # Outgoing switched off (the box is simply absent): its odd port does not matter.
    off = {"smtp_port": "587", "smtp_security": "ssl"}
    assert b"<li>" not in client.get(reverse("web:account_form_warnings"), off).content


def test_warnings_use_inherited_values(admin: User, domain: EmailDomain) -> None:
    # The domain says STARTTLS on 587; the account overrides only the security.
    query = {"email": "x@example.test", "outgoing_enabled": "on", "smtp_security": "ssl"}
    html = client_for(admin).get(reverse("web:account_form_warnings"), query).content.decode()
    assert "Port 587 normally uses STARTTLS" in html


def test_domain_warnings_endpoint_and_form(admin: User) -> None:
    client = client_for(admin)
    html = client.get(
        reverse("web:domain_warnings"), {"smtp_port": "587", "smtp_security": "ssl"}
    ).content.decode()
    assert "Port 587 normally uses STARTTLS" in html

    # Warnings never block saving; they come back as messages.
    response = client.post(
        reverse("web:domain_create"),
        {
            "name": "odd.test",
            "incoming_protocol": "imap",
            "incoming_host": "imap.odd.test",
            "incoming_port": "993",
            "incoming_security": "ssl",
            "smtp_host": "smtp.odd.test",
            "smtp_port": "587",
            "smtp_security": "ssl",
            "smtp_auth": "on",
            "verify_cert": "on",
        },
        follow=True,
    )
    assert EmailDomain.objects.filter(name="odd.test").exists()
    assert "Port 587 normally uses STARTTLS" in response.content.decode()


def test_forms_wire_the_live_hints(admin: User) -> None:
    html = client_for(admin).get(reverse("web:account_create")).content.decode()
    assert 'hx-get="/accounts/form/warnings/"' in html
    assert 'hx-get="/accounts/form/servers/"' in html
    # Password inputs are never part of what the hints send.
    assert 'name="password" autocomplete="new-password" data-hint' not in html
    assert 'data-hint="password"' not in html and 'data-hint="smtp_password"' not in html
    # A12: the risk explanation is in the page, next to the confirmation.
    assert 'class="confirm-no-verify"' in html
    assert "anyone on the network path" in html
