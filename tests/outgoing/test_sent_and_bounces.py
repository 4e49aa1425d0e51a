"""C11 Sent copy and C15 bounces against the real Dovecot, C3 sendmail with a real program."""

from __future__ import annotations

import json
import stat
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from postroom.incoming.actions import do_sync_account
from postroom.incoming.models import Message, MessageBlob
from postroom.outgoing.actions import RecipientsSuppressed, do_queue_message
from postroom.outgoing.bounces import match_bounces
from postroom.outgoing.models import (
    ItemState,
    OutboxItem,
    RecipientStatus,
    SentCopyState,
    Suppression,
    SuppressionSource,
)
from tests.outgoing.conftest import deliver, make_due, make_smtp_account, queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailbox_account(dovecot, dovecot_user, smtp_server_factory):
    """An account that reads dovecot_user's mailbox and sends through an aiosmtpd server."""

    def make(**extra):
        server = smtp_server_factory()
        fields = {
            "name": dovecot_user.name,
            "email": dovecot_user.name,
            "incoming_enabled": True,
            "incoming_protocol": "imap",
            "incoming_host": "localhost",
            "incoming_port": dovecot.imaps_port,
            "incoming_security": "ssl",
            "ca_cert": dovecot.ca_pem,
            "password": dovecot_user.password,
        }
        fields.update(extra)
        return make_smtp_account(server, **fields), server

    return make


def test_sent_copy_by_special_use_with_seen_and_no_duplicate_on_sync(
    dovecot, dovecot_user, mailbox_account
):
    dovecot.create_folder(dovecot_user.name, "Sent")
    account, server = mailbox_account(copy_to_sent=True, folders=["INBOX", "Sent"])
    item = queue(account, to=["friend@example.test"], subject="Filed")
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.SENT
    assert item.sent_copy == SentCopyState.DONE, item.sent_copy_error
    assert item.next_attempt_at is None and item.lease_holder == ""
    [copy] = dovecot.messages(dovecot_user.name, "Sent").values()
    assert copy == server.messages[0].data  # the very bytes that were sent
    [flags] = dovecot.flags(dovecot_user.name, "Sent").values()
    assert "\\Seen" in flags

    # Incoming sync recognises it: the same bytes, the same blob, one message.
    do_sync_account(account)
    [stored] = Message.objects.filter(account=account)
    assert stored.blob_id == item.blob_id
    assert stored.message_id == item.message_id
    assert MessageBlob.objects.filter(sha256=item.blob_id).count() == 1
    do_sync_account(account)
    assert Message.objects.filter(account=account).count() == 1


def test_sent_copy_to_a_configured_folder(dovecot, dovecot_user, mailbox_account):
    dovecot.create_folder(dovecot_user.name, "Outbox Copies")
    account, _server = mailbox_account(copy_to_sent=True, sent_folder="Outbox Copies")
    item = queue(account)
    deliver()
    item.refresh_from_db()
    assert item.sent_copy == SentCopyState.DONE
    assert len(dovecot.messages(dovecot_user.name, "Outbox Copies")) == 1


def test_sent_copy_failure_is_recorded_and_delivery_stands(dovecot, dovecot_user, mailbox_account):
    account, _server = mailbox_account(copy_to_sent=True, sent_folder="Missing")
    item = queue(account)
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.SENT
    assert item.sent_copy == SentCopyState.FAILED
    assert "Missing" in item.sent_copy_error
    assert item.next_attempt_at is None


def _dsn(original_id: str, recipient: str, *, to: str, status: str = "5.1.1") -> bytes:
    """An RFC 3464 report as Postfix writes one."""
    returned = f"Message-ID: <{original_id}>\r\n" if original_id else ""
    text = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain='mx.example.net')}\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "This is the mail system at host mx.example.net. Your message bounced.\r\n"
        "--B\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected\r\n"
        "--B\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{returned}Subject: Hello\r\n"
        "--B--\r\n"
    )
    return text.encode()


def test_a_bounce_arriving_through_sync_marks_the_recipient_and_suppresses(
    dovecot, dovecot_user, mailbox_account
):
    account, _server = mailbox_account()
    item = queue(account, to=["gone@example.net", "fine@example.net"])
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.SENT

    dovecot.append(
        dovecot_user.name, "INBOX", _dsn(item.message_id, "gone@example.net", to=account.email)
    )
    do_sync_account(account)
    item.refresh_from_db()
    gone = item.recipients.get(address="gone@example.net")
    assert gone.status == RecipientStatus.BOUNCED
    assert "Recipient address rejected" in gone.reply and gone.bounce_status == "5.1.1"
    assert item.recipients.get(address="fine@example.net").status == RecipientStatus.SENT
    assert item.state == ItemState.PARTIAL
    entry = Suppression.objects.get(address="gone@example.net")
    assert entry.source == SuppressionSource.BOUNCE and entry.item_id == item.pk

    with pytest.raises(RecipientsSuppressed):
        queue(account, to=["gone@example.net"])
    # Seen again (another sync, another copy): nothing changes twice.
    stored = list(Message.objects.filter(account=account).values_list("pk", flat=True))
    assert match_bounces(stored) == 0


def test_a_bounce_matched_by_verp_only(dovecot, dovecot_user, mailbox_account):
    account, server = mailbox_account(verp_return_path=True)
    item = queue(account, to=["nobody@example.net"])
    deliver()
    assert server.messages[0].mail_from == item.mail_from
    assert item.mail_from.startswith(dovecot_user.name.split("@")[0] + "+")
    # The bounce quotes nothing of the original; only its address says which message.
    dovecot.append(dovecot_user.name, "INBOX", _dsn("", "nobody@example.net", to=item.mail_from))
    do_sync_account(account)
    item.refresh_from_db()
    assert item.recipients.get().status == RecipientStatus.BOUNCED
    assert item.state == ItemState.FAILED


def test_a_soft_bounce_does_not_suppress(dovecot, dovecot_user, mailbox_account):
    account, _server = mailbox_account()
    item = queue(account, to=["full@example.net"])
    deliver()
    dovecot.append(
        dovecot_user.name,
        "INBOX",
        _dsn(item.message_id, "full@example.net", to=account.email, status="4.2.2"),
    )
    do_sync_account(account)
    item.refresh_from_db()
    assert item.recipients.get().status == RecipientStatus.BOUNCED
    assert not Suppression.objects.exists()


def test_ordinary_mail_is_not_taken_for_a_bounce(dovecot, dovecot_user, mailbox_account):
    account, _server = mailbox_account()
    item = queue(account, to=["someone@example.net"])
    deliver()
    reply = EmailMessage()
    reply["From"] = "someone@example.net"
    reply["To"] = account.email
    reply["Subject"] = "Re: Hello"
    reply["In-Reply-To"] = f"<{item.message_id}>"
    reply.set_content("Thanks! (quoting: Message-ID: <x@y>)\n")
    dovecot.append(dovecot_user.name, "INBOX", reply.as_bytes())
    do_sync_account(account)
    item.refresh_from_db()
    assert item.recipients.get().status == RecipientStatus.SENT


# -- C3: the local sendmail program -------------------------------------------------


@pytest.fixture
def fake_sendmail(tmp_path, settings):
    """A sendmail-compatible script that records its arguments and input, exit code on demand."""
    log = tmp_path / "sendmail.jsonl"
    script = tmp_path / "sendmail"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        "data = sys.stdin.buffer.read()\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'data': data.decode('utf-8', 'replace')}) + '\\n')\n"
        f"code = int(open({str(tmp_path / 'exit')!r}).read()) if os.path.exists({str(tmp_path / 'exit')!r}) else 0\n"
        "if code:\n"
        "    sys.stderr.write('sendmail: deferred by test\\n')\n"
        "sys.exit(code)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    settings.POSTROOM_SENDMAIL_PATH = str(script)

    def calls() -> list[dict[str, object]]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def exit_with(code: int) -> None:
        (tmp_path / "exit").write_text(str(code))

    calls.exit_with = exit_with  # type: ignore[attr-defined]
    return calls


def test_sendmail_transport(fake_sendmail):
    account = make_smtp_account(None, outgoing_transport="sendmail", smtp_host="", smtp_port=None)
    item = queue(account, to=["a@example.test", "b@example.test"], subject="Via sendmail")
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.SENT
    [call] = fake_sendmail()
    assert call["argv"][:2] == ["-i", "-f"] or "-f" in call["argv"]
    assert account.email in call["argv"]
    assert call["argv"][-2:] == ["a@example.test", "b@example.test"]
    assert "Subject: Via sendmail" in call["data"]
    assert "\r\n" not in call["data"]

    fake_sendmail.exit_with(75)
    later = queue(account, subject="Deferred")
    deliver()
    later.refresh_from_db()
    assert later.state == ItemState.DEFERRED
    assert "deferred by test" in later.recipients.get().reply
    fake_sendmail.exit_with(0)
    make_due(later)
    deliver()
    later.refresh_from_db()
    assert later.state == ItemState.SENT


def test_sendmail_account_needs_no_smtp_server_in_the_form():
    from postroom.accounts.forms import AccountForm

    form = AccountForm(
        data={
            "email": "notify@example.test",
            "incoming_enabled": False,
            "outgoing_enabled": True,
            "outgoing_transport": "sendmail",
            "verify_cert": "on",
            "bcc_addresses": "archive@example.test\nAudit@Example.test",
            "rate_limit_per_day": "500",
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["bcc_addresses"] == ["archive@example.test", "Audit@Example.test"]
    assert form.cleaned_data["charset"] == "utf-8" and form.cleaned_data["max_queue_age"] == 72
    bad = AccountForm(
        data={
            "email": "n2@example.test",
            "incoming_enabled": False,
            "outgoing_enabled": True,
            "outgoing_transport": "sendmail",
            "verify_cert": "on",
            "bcc_addresses": "not an address",
        }
    )
    assert not bad.is_valid() and "bcc_addresses" in bad.errors
    assert OutboxItem.objects.count() == 0
    assert do_queue_message  # the action the API and CLI call
