"""``postroom account add/test`` against the real Dovecot and SMTP servers of tests/servers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from postroom.accounts.models import EmailAccount
from tests.cli.conftest import Result
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpServer
from tests.servers.users import ALICE, ALICE_PASSWORD

pytestmark = pytest.mark.django_db

Run = Callable[..., Result]


def add_alice(
    run: Run, dovecot: Dovecot, smtp_server: SmtpServer, ca_file: Path, *extra: str
) -> Result:
    return run(
        "account", "add", "--email", ALICE,
        "--imap-host", dovecot.host, "--imap-port", str(dovecot.imap_port),
        "--imap-security", "starttls", "--folder", "INBOX", "--folder", "Archive",
        "--smtp-host", smtp_server.host, "--smtp-port", str(smtp_server.port),
        "--smtp-security", "starttls",
        "--password-env", "PR_ALICE_PASSWORD", "--ca-file", str(ca_file), *extra,
    )  # fmt: skip


@pytest.fixture
def ca_file(dovecot: Dovecot, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text(dovecot.ca_pem)
    return path


def test_account_test_json_ok_then_auth_failed(
    run: Run,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
    ca_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PR_ALICE_PASSWORD", ALICE_PASSWORD)
    added = add_alice(run, dovecot, smtp_server, ca_file)
    assert added.code == 0, added.err

    tested = run("account", "test", ALICE, "--json")
    assert tested.code == 0, tested.out + tested.err
    report = json.loads(tested.out)
    assert report["incoming"]["ok"] is True
    assert report["incoming"]["code"] is None
    assert isinstance(report["incoming"]["message"], str)
    assert report["outgoing"]["ok"] is True

    readable = run("account", "test", ALICE)
    assert readable.code == 0
    assert [line.split(":")[:2] for line in readable.out.splitlines()] == [
        ["incoming", " ok"],
        ["outgoing", " ok"],
    ]

    # The password changes on the server: the test now says auth_failed and exits 1.
    dovecot.set_password(ALICE, "changed-elsewhere")
    try:
        failed = run("account", "test", ALICE, "--json")
    finally:
        dovecot.set_password(ALICE, ALICE_PASSWORD)
    assert failed.code == 1
    report = json.loads(failed.out)
    assert report["incoming"]["ok"] is False
    assert report["incoming"]["code"] == "auth_failed"
    assert report["outgoing"]["ok"] is True  # SMTP still has the old password


def test_add_with_a_wrong_password_prints_the_diagnosis_and_saves_nothing(
    run: Run,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
    ca_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PR_ALICE_PASSWORD", "wrong-password")
    result = add_alice(run, dovecot, smtp_server, ca_file)
    assert result.code == 1
    assert "auth_failed" in result.err
    assert "wrong-password" not in result.err + result.out
    assert not EmailAccount.objects.filter(email=ALICE).exists()

    # Saved anyway with --skip-check, `account test --json` reports the same code.
    assert add_alice(run, dovecot, smtp_server, ca_file, "--skip-check").code == 0
    tested = run("account", "test", ALICE, "--json")
    assert tested.code == 1
    report = json.loads(tested.out)
    assert report["incoming"]["code"] == "auth_failed"
    assert report["outgoing"]["code"] == "auth_failed"
