"""``postroom send`` and ``postroom outbox list`` against real aiosmtpd servers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from postroom.accounts.actions import do_save_account, do_share_account
from postroom.accounts.models import EmailAccount
from postroom.cli import send as send_module
from postroom.outgoing.actions import deliver_due, do_suppress
from postroom.outgoing.models import OutboxItem
from tests.cli.conftest import Result
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
SECURITY = {"plain": "none", "starttls": "starttls", "implicit": "ssl"}


def smtp_account(server: SmtpServer, **extra: Any) -> EmailAccount:
    number = next(_numbers)
    fields: dict[str, Any] = {
        "name": f"cli-out{number}",
        "email": f"cli-out{number}@example.test",
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


@pytest.fixture
def server(smtp_server_factory: Callable[..., SmtpServer]) -> SmtpServer:
    return smtp_server_factory(mode="starttls")


@pytest.fixture
def account(server: SmtpServer) -> EmailAccount:
    return smtp_account(server)


def send(run: Callable[..., Result], account: EmailAccount, *args: str) -> Result:
    return run("send", "--account", account.name, "--subject", "Hello", *args)


def test_send_wait_json_delivers_in_the_foreground(
    run: Callable[..., Result], account: EmailAccount, server: SmtpServer, tmp_path: Path
) -> None:
    (tmp_path / "body.txt").write_text("Grüße aus der Konsole\n")
    (tmp_path / "body.html").write_text("<p>Grüße</p>")
    (tmp_path / "report.csv").write_text("a,b\n1,2\n")
    result = send(
        run,
        account,
        "--to",
        "one@example.test",
        "--to",
        "Two <two@example.test>",
        "--cc",
        "cc@example.test",
        "--bcc",
        "hidden@example.test",
        "--body-file",
        str(tmp_path / "body.txt"),
        "--html-file",
        str(tmp_path / "body.html"),
        "--attach",
        str(tmp_path / "report.csv"),
        "--wait",
        "--json",
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    item = OutboxItem.objects.get()
    assert data["id"] == item.pk
    assert data["message_id"] == item.message_id
    assert set(data["recipients"]) == {
        "one@example.test",
        "two@example.test",
        "cc@example.test",
        "hidden@example.test",
    }
    for recipient in data["recipients"].values():
        assert recipient["status"] == "sent"
        assert recipient["reply"].startswith("250")

    (received,) = server.messages
    assert received.tls
    message = received.message
    assert message["Message-ID"] == f"<{item.message_id}>"
    assert "Bcc" not in message
    assert [p.get_filename() for p in message.iter_attachments()] == ["report.csv"]
    plain = message.get_body(("plain",))
    assert plain is not None
    assert "Grüße aus der Konsole" in plain.get_content()


def test_a_refused_recipient_fails_with_the_server_reply_and_exit_1(
    run: Callable[..., Result], account: EmailAccount, server: SmtpServer
) -> None:
    server.fail_next("RCPT", "550 5.1.1 <bad@example.test>: Recipient address rejected")
    result = send(
        run,
        account,
        "--to",
        "bad@example.test",
        "--to",
        "good@example.test",
        "--body",
        "Hi",
        "--wait",
        "--json",
    )
    assert result.code == 1, result.err
    recipients = json.loads(result.out)["recipients"]
    assert recipients["bad@example.test"]["status"] == "failed"
    assert "Recipient address rejected" in recipients["bad@example.test"]["reply"]
    assert recipients["good@example.test"]["status"] == "sent"
    assert server.messages[0].rcpt_tos == ("good@example.test",)


def test_a_deferred_recipient_keeps_wait_waiting_for_the_retry(
    run: Callable[..., Result],
    account: EmailAccount,
    server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.fail_next("RCPT", "451 4.3.0 Try again later")
    slept: list[float] = []

    def fake_sleep(seconds: float) -> None:
        # Time travel instead of waiting out the back-off (about a minute).
        slept.append(seconds)
        OutboxItem.objects.update(next_attempt_at=timezone.now())

    monkeypatch.setattr(send_module, "_sleep", fake_sleep)
    result = send(run, account, "--to", "slow@example.test", "--body", "Hi", "--wait", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["recipients"]["slow@example.test"]["status"] == "sent"
    assert slept and slept[0] > 1  # it meant to sleep until the retry was due
    assert "Try again later" in result.err
    item = OutboxItem.objects.get()
    assert item.attempts.count() == 2


def test_wait_leaves_delivery_to_a_running_worker(
    run: Callable[..., Result],
    account: EmailAccount,
    server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(send_module, "worker_running", lambda: True)
    calls: list[float] = []

    def worker_sends(seconds: float) -> None:
        calls.append(seconds)
        deliver_due("the-worker", 10)

    monkeypatch.setattr(send_module, "_sleep", worker_sends)
    result = send(run, account, "--to", "a@example.test", "--body", "Hi", "--wait", "--json")
    assert result.code == 0, result.err
    assert calls == [send_module.POLL_SECONDS]
    assert OutboxItem.objects.get().attempts.get().worker == "the-worker"


def test_without_wait_it_only_queues(
    run: Callable[..., Result], account: EmailAccount, server: SmtpServer
) -> None:
    result = send(run, account, "--to", "a@example.test", "--body", "Hi", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["recipients"] == {"a@example.test": {"status": "queued", "reply": "", "kind": "to"}}
    assert server.messages == []

    plain = send(run, account, "--to", "b@example.test", "--body", "Hi")
    assert plain.code == 0
    assert "b@example.test" in plain.out


def test_outbox_list_json(
    run: Callable[..., Result], account: EmailAccount, server: SmtpServer
) -> None:
    assert send(run, account, "--to", "a@example.test", "--body", "1", "--wait").code == 0
    run("send", "--account", account.name, "--subject", "Later", "--to", "b@ex.test", "--body", "2")
    result = run("outbox", "list", "--json")
    assert result.code == 0, result.err
    items = json.loads(result.out)
    assert [(i["subject"], i["account"]) for i in items] == [
        ("Later", account.name),
        ("Hello", account.name),
    ]
    assert items[1]["recipients"]["a@example.test"]["status"] == "sent"
    assert {"id", "message_id", "recipients"} <= set(items[0])

    queued = json.loads(run("outbox", "list", "--state", "queued", "--json").out)
    assert [i["subject"] for i in queued] == ["Later"]
    assert run("outbox", "list", "--state", "bogus").code == 2
    text = run("outbox", "list")
    assert "Later" in text.out and "a@example.test" in text.out


def test_bad_input_exits_2(
    run: Callable[..., Result],
    account: EmailAccount,
) -> None:
    missing_body = send(run, account, "--to", "a@example.test")
    assert missing_body.code == 2
    both = send(run, account, "--to", "a@example.test", "--body", "x", "--body-file", "f")
    assert both.code == 2

    bad_address = send(run, account, "--to", "not an address", "--body", "x")
    assert bad_address.code == 2
    assert "--to:" in bad_address.err

    no_file = send(run, account, "--to", "a@example.test", "--body", "x", "--attach", "/nope")
    assert no_file.code == 2
    assert "--attach" in no_file.err

    unknown = run(
        "send", "--account", "nobody", "--subject", "s", "--to", "a@b.test", "--body", "x"
    )
    assert unknown.code == 2

    do_suppress("gone@example.test")
    suppressed = send(run, account, "--to", "gone@example.test", "--body", "x")
    assert suppressed.code == 2
    assert "gone@example.test" in suppressed.err

    reader = User.objects.create_user("reader")
    do_share_account(account, actor=None, user=reader, can_read=True, can_send=False)
    refused = send(run, account, "--to", "a@example.test", "--body", "x", "--as-user", "reader")
    assert refused.code == 2
    assert "right to send" in refused.err
    assert not OutboxItem.objects.exists()
