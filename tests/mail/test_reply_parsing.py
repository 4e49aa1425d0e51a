"""How server replies are classified (pure functions, no network)."""

from __future__ import annotations

import smtplib

import pytest

from postroom.mail import errors
from postroom.mail.imap import _auth_hint
from postroom.mail.smtp import SmtpConnection, _envelope_error, _greeting_error
from postroom.mail.types import Endpoint, Protocol, Security


@pytest.mark.parametrize(
    ("command", "code", "reply", "expected"),
    [
        ("RCPT TO", 554, "5.7.1 <x@remote.test>: Relay access denied", errors.RelayDenied),
        ("RCPT TO", 550, "5.7.1 Unable to relay", errors.RelayDenied),
        ("RCPT TO", 550, "Relaying not permitted", errors.RelayDenied),
        ("RCPT TO", 554, "Relay access denied", errors.RelayDenied),
        ("RCPT TO", 530, "5.7.0 Authentication required", errors.RelayDenied),
        ("RCPT TO", 550, "5.1.1 <nobody@here.test>: user unknown", errors.RecipientRejected),
        ("RCPT TO", 553, "mailbox name not allowed", errors.RecipientRejected),
        ("RCPT TO", 450, "4.2.0 Greylisted, try again", errors.TemporaryFailure),
        ("RCPT TO", 451, "4.7.1 Try later", errors.TemporaryFailure),
        (
            "MAIL FROM",
            553,
            "5.7.1 Sender address rejected: not owned by user",
            errors.SenderRejected,
        ),
        ("MAIL FROM", 530, "5.7.0 Authentication required", errors.RelayDenied),
        ("MAIL FROM", 421, "4.3.2 Service shutting down", errors.TemporaryFailure),
    ],
)
def test_envelope_replies(
    command: str, code: int, reply: str, expected: type[errors.MailError]
) -> None:
    error = _envelope_error(command, code, reply, "x@remote.test")
    assert type(error) is expected
    assert error.server_reply == f"{code} {reply}"
    assert error.temporary == (code < 500)


def test_greeting_replies() -> None:
    assert isinstance(_greeting_error(421, "too busy"), errors.TemporaryFailure)
    garbage = _greeting_error(-1, "\x16\x03\x01")
    assert isinstance(garbage, errors.ProtocolError)
    assert garbage.phase is errors.Phase.GREETING


def _smtp_connection(tls: bool) -> SmtpConnection:
    endpoint = Endpoint(Protocol.SMTP, "smtp.example.test", 587, Security.STARTTLS)
    # No host: smtplib does not connect; a local_hostname avoids its DNS lookup.
    return SmtpConnection(smtplib.SMTP(local_hostname="client.test"), endpoint, tls=tls)


@pytest.mark.parametrize(
    ("tls", "code", "reply", "expected", "hint"),
    [
        (True, 535, "5.7.8 Authentication credentials invalid", errors.AuthError, None),
        (
            True,
            534,
            "5.7.9 Application-specific password required.",
            errors.AuthError,
            errors.AuthHint.APP_PASSWORD_REQUIRED,
        ),
        (
            True,
            534,
            "5.7.14 Please log in via your web browser",
            errors.AuthError,
            errors.AuthHint.WEB_LOGIN_REQUIRED,
        ),
        (
            True,
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled",
            errors.AuthError,
            errors.AuthHint.AUTH_DISABLED,
        ),
        (False, 538, "5.7.11 Encryption required", errors.PlaintextRefused, None),
        (False, 530, "5.7.0 Must issue a STARTTLS command first", errors.PlaintextRefused, None),
        (True, 454, "4.7.0 Temporary authentication failure", errors.TemporaryFailure, None),
        (True, 504, "5.5.4 Unrecognized authentication type", errors.AuthUnsupported, None),
    ],
)
def test_smtp_auth_replies(
    tls: bool,
    code: int,
    reply: str,
    expected: type[errors.MailError],
    hint: errors.AuthHint | None,
) -> None:
    error = _smtp_connection(tls)._auth_error(code, reply)
    assert type(error) is expected
    assert error.server_reply == f"{code} {reply}"
    if isinstance(error, errors.AuthError):
        assert error.hint is hint


@pytest.mark.parametrize(
    ("code", "reply", "hint"),
    [
        ("EXPIRED", "[EXPIRED] Password expired", errors.AuthHint.PASSWORD_EXPIRED),
        (
            "ALERT",
            "[ALERT] Application-specific password required: https://support.google.com/accounts/answer/185833 (Failure)",
            errors.AuthHint.APP_PASSWORD_REQUIRED,
        ),
        (
            "ALERT",
            "[ALERT] Please log in via your web browser: https://support.google.com/mail/accounts/answer/78754 (Failure)",
            errors.AuthHint.WEB_LOGIN_REQUIRED,
        ),
        (
            "WEBALERT",
            "[WEBALERT https://accounts.google.com/x] Web login required.",
            errors.AuthHint.WEB_LOGIN_REQUIRED,
        ),
        ("AUTHENTICATIONFAILED", "[AUTHENTICATIONFAILED] Invalid credentials (Failure)", None),
    ],
)
def test_imap_auth_hints(code: str, reply: str, hint: errors.AuthHint | None) -> None:
    assert _auth_hint(code, reply) is hint
