"""The API against the real Dovecot and SMTP servers of tests/servers (A5, A14)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from postroom.accounts.models import EmailAccount
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpServer
from tests.servers.users import ALICE, ALICE_PASSWORD

pytestmark = pytest.mark.django_db


def dovecot_account(dovecot: Dovecot, smtp_server: SmtpServer, password: str) -> dict[str, object]:
    return {
        "email": ALICE,
        "name": "Alice",
        "incoming_protocol": "imap",
        "incoming_host": dovecot.host,
        "incoming_port": dovecot.imaps_port,
        "incoming_security": "ssl",
        "folders": ["INBOX", "Archive"],
        "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port,
        "smtp_security": "starttls",
        "password": password,
        # The servers' certificates come from this run's private CA: trust it
        # instead of switching verification off.
        "ca_cert": dovecot.ca_pem,
    }


def test_create_checks_the_real_servers_and_test_passes(
    admin: User, api_for: Callable, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    client = api_for(admin)
    created = client.post("/accounts", dovecot_account(dovecot, smtp_server, ALICE_PASSWORD))
    assert created.status_code == 201, created.json()
    assert created.json()["verify_cert"] is True

    report = client.post(f"/accounts/{created.json()['id']}/test")
    assert report.status_code == 200
    body = report.json()
    assert body["ok"] is True
    assert body["incoming"]["ok"] is True
    assert body["incoming"]["code"] is None
    assert body["outgoing"]["ok"] is True


def test_a_wrong_password_is_refused_with_auth_failed(
    admin: User, api_for: Callable, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    client = api_for(admin)
    refused = client.post("/accounts", dovecot_account(dovecot, smtp_server, "wrong-password"))
    assert refused.status_code == 422, refused.json()
    body = refused.json()
    assert body["code"] == "check_failed"
    assert body["report"]["incoming"]["code"] == "auth_failed"
    assert body["report"]["outgoing"]["code"] == "auth_failed"
    assert "wrong-password" not in refused.content.decode()
    assert not EmailAccount.objects.filter(email=ALICE).exists()

    # Saved without the check, the test endpoint gives the same diagnosis.
    saved = client.post(
        "/accounts", {**dovecot_account(dovecot, smtp_server, "wrong-password"), "skip_check": True}
    )
    assert saved.status_code == 201
    report = client.post(f"/accounts/{saved.json()['id']}/test").json()
    assert report["ok"] is False
    assert report["incoming"]["code"] == "auth_failed"
    assert report["incoming"]["message"]
    assert report["incoming"]["fix"]

    # Fixing the password through PATCH is checked again, and then passes.
    fixed = client.patch(f"/accounts/{saved.json()['id']}", {"password": ALICE_PASSWORD})
    assert fixed.status_code == 200, fixed.json()
    assert client.post(f"/accounts/{saved.json()['id']}/test").json()["ok"] is True
