"""A5/A14 through the web UI against the real test Dovecot and SMTP server."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from postroom.accounts.models import EmailAccount, EmailDomain
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpServer
from tests.servers.users import ALICE, ALICE_PASSWORD, LOCAL_DOMAIN
from tests.web.conftest import PASSWORD, account_post, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def real_domain(admin: User, dovecot: Dovecot, smtp_server: SmtpServer) -> EmailDomain:
    """example.test pointing at the test servers, trusting this run's CA (no verify-off)."""
    response = client_for(admin).post(
        reverse("web:domain_create"),
        {
            "name": LOCAL_DOMAIN,
            "incoming_protocol": "imap",
            "incoming_host": dovecot.host,
            "incoming_port": dovecot.imaps_port,
            "incoming_security": "ssl",
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_security": "starttls",
            "smtp_auth": "on",
            "verify_cert": "on",
            "ca_cert": dovecot.ca_pem,
        },
    )
    assert response.status_code == 302, response.content.decode()
    return EmailDomain.objects.get(name=LOCAL_DOMAIN)


def test_save_checks_the_servers_and_test_connection_is_green(
    admin: User, real_domain: EmailDomain
) -> None:
    client = client_for(admin)
    response = client.post(
        reverse("web:account_create"),
        account_post(email=ALICE, password=ALICE_PASSWORD, owner=admin.pk, skip_check=None),
    )
    assert response.status_code == 302, response.content.decode()
    account = EmailAccount.objects.get(email=ALICE)
    assert account.domain == real_domain

    url = reverse("web:account_test", args=[account.pk])
    partial = client.post(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in partial  # htmx gets just the result
    assert 'id="test-incoming" class="side ok" data-ok="true"' in partial
    assert 'id="test-outgoing" class="side ok" data-ok="true"' in partial

    # Without JavaScript the same button posts and gets the whole page back.
    page = client.post(url).content.decode()
    assert "<html" in page and 'data-ok="true"' in page


def test_wrong_password_is_refused_on_save_and_nothing_changes(
    admin: User, real_domain: EmailDomain
) -> None:
    client = client_for(admin)
    client.post(
        reverse("web:account_create"),
        account_post(email=ALICE, password=ALICE_PASSWORD, owner=admin.pk, skip_check=None),
    )
    account = EmailAccount.objects.get(email=ALICE)
    html = client.post(
        reverse("web:account_edit", args=[account.pk]),
        account_post(
            email=ALICE, name="Renamed", password="wrong-password", owner=admin.pk, skip_check=None
        ),
    ).content.decode()
    assert 'id="check-report"' in html
    assert 'data-code="auth_failed"' in html
    assert "wrong-password" not in html
    account.refresh_from_db()
    assert account.name != "Renamed"
    assert account.get_password() == ALICE_PASSWORD

    # Saved without the check, the test button then names the failure.
    response = client.post(
        reverse("web:account_edit", args=[account.pk]),
        account_post(email=ALICE, password="wrong-password", owner=admin.pk, skip_check="on"),
    )
    assert response.status_code == 302
    partial = client.post(
        reverse("web:account_test", args=[account.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert 'id="test-incoming" class="side bad" data-ok="false" data-code="auth_failed"' in partial


def test_owner_enters_an_awaiting_password_checked_against_the_servers(
    admin: User, alice: User, real_domain: EmailDomain
) -> None:
    # An admin creates the account for alice without a password (A7): nothing is tried.
    response = client_for(admin).post(
        reverse("web:account_create"),
        account_post(
            email=ALICE, password="", awaiting_password="on", owner=alice.pk, skip_check=None
        ),
    )
    assert response.status_code == 302, response.content.decode()
    account = EmailAccount.objects.get(email=ALICE)
    assert account.awaiting_password and not account.has_password

    client = Client()
    response = client.post(reverse("web:login"), {"username": "alice", "password": PASSWORD})
    passwords_url = response["Location"]
    assert passwords_url.startswith(reverse("web:passwords"))

    # A wrong password is refused with the diagnosis; the account keeps waiting.
    html = client.post(
        passwords_url, {"account": account.pk, "password": "wrong-password"}
    ).content.decode()
    assert 'data-code="auth_failed"' in html
    assert "wrong-password" not in html
    account.refresh_from_db()
    assert account.awaiting_password and not account.has_password

    # The right one is saved, the account stops waiting and alice goes on to the start page.
    response = client.post(passwords_url, {"account": account.pk, "password": ALICE_PASSWORD})
    assert response.status_code == 302
    account.refresh_from_db()
    assert not account.awaiting_password
    assert account.get_password() == ALICE_PASSWORD
    response = client.get(response["Location"])
    assert response.status_code == 302 and response["Location"] == reverse("web:home")
