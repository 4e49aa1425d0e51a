"""check_outgoing against real aiosmtpd servers: EHLO, STARTTLS, AUTH, MAIL, RCPT, no DATA."""

from __future__ import annotations

import pytest

from postroom.mail.diagnostics import DiagnosisCode, check_outgoing, checks
from postroom.mail.types import Credentials, OutgoingCheck, Protocol, Security, TLSPolicy
from tests.mail.conftest import SHORT_TIMEOUT, EndpointFactory
from tests.servers import SmtpServer
from tests.servers.fixtures import SmtpServerFactory
from tests.servers.users import ALICE, ALICE_PASSWORD

SMTP = Protocol.SMTP
SSL, STARTTLS, NONE = Security.SSL, Security.STARTTLS, Security.NONE
ALICE_CREDS = Credentials(ALICE, ALICE_PASSWORD)
REMOTE = "bob@remote.test"


def check(
    ep: object, credentials: Credentials | None = ALICE_CREDS, rcpt_to: str = REMOTE
) -> OutgoingCheck:
    assert not isinstance(ep, str)
    return OutgoingCheck(ep, credentials, ALICE, rcpt_to)  # type: ignore[arg-type]


# ---------------------------------------------------------------- success


def test_ok_starttls_with_auth(smtp_server: SmtpServer, endpoint: EndpointFactory) -> None:
    smtp_server.reset()
    diagnosis = check_outgoing(check(endpoint(SMTP, smtp_server.port, STARTTLS)))
    assert diagnosis.ok, diagnosis
    assert [a.success for a in smtp_server.auth_attempts] == [True]
    assert smtp_server.auth_attempts[0].tls
    assert smtp_server.messages == []  # no DATA was sent


def test_ok_smtps_with_auth(smtps_server: SmtpServer, endpoint: EndpointFactory) -> None:
    diagnosis = check_outgoing(check(endpoint(SMTP, smtps_server.port, SSL, host="localhost")))
    assert diagnosis.ok, diagnosis


def test_ok_without_auth(smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory) -> None:
    server = smtp_server_factory(mode="plain")
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, NONE), credentials=None))
    assert diagnosis.ok, diagnosis


def test_ok_starttls_without_auth(smtp_server: SmtpServer, endpoint: EndpointFactory) -> None:
    diagnosis = check_outgoing(check(endpoint(SMTP, smtp_server.port, STARTTLS), credentials=None))
    assert diagnosis.ok, diagnosis


def test_ok_non_ascii_password(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    # smtplib can only send ASCII SASL responses; AUTH PLAIN in UTF-8 is ours.
    server = smtp_server_factory(mode="implicit", users={"umlaut@example.test": "Pässwörd-ключ"})
    creds = Credentials("umlaut@example.test", "Pässwörd-ключ")
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, SSL), credentials=creds))
    assert diagnosis.ok, diagnosis
    assert server.auth_attempts[-1].success


# ---------------------------------------------------------------- refusals


def test_relay_denied(smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory) -> None:
    server = smtp_server_factory(mode="plain", deny_relay=True)
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, NONE), credentials=None))
    assert diagnosis.code is DiagnosisCode.SMTP_RELAY_DENIED
    assert "5.7.1" in diagnosis.params["server_reply"]
    assert diagnosis.params["address"] == REMOTE


def test_relay_allowed_after_auth(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="starttls", deny_relay=True, users={ALICE: ALICE_PASSWORD})
    assert check_outgoing(check(endpoint(SMTP, server.port, STARTTLS))).ok


def test_sender_rejected(smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory) -> None:
    server = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD})
    server.fail_next("MAIL", "553 5.7.1 <alice@example.test>: Sender address rejected: not owned")
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, SSL)))
    assert diagnosis.code is DiagnosisCode.SMTP_SENDER_REJECTED
    assert diagnosis.params["address"] == ALICE


def test_recipient_rejected(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD})
    server.fail_next("RCPT", "550 5.1.1 <bob@remote.test>: Recipient address rejected: unknown")
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, SSL)))
    assert diagnosis.code is DiagnosisCode.SMTP_RECIPIENT_REJECTED


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("RCPT", "451 4.7.1 Greylisted, try again later"),
        ("MAIL", "452 4.3.1 Insufficient system storage"),
        ("CONNECT", "421 4.3.2 Too many connections, try later"),
    ],
)
def test_4xx_is_temporary(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory, command: str, reply: str
) -> None:
    server = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD})
    server.fail_next(command, reply)
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, SSL)))
    assert diagnosis.code is DiagnosisCode.TEMPORARY_FAILURE
    assert diagnosis.params["server_reply"] == reply


def test_auth_failed(smtp_server: SmtpServer, endpoint: EndpointFactory) -> None:
    smtp_server.reset()
    wrong = Credentials(ALICE, "not-the-password-XYZ")
    diagnosis = check_outgoing(check(endpoint(SMTP, smtp_server.port, STARTTLS), credentials=wrong))
    assert diagnosis.code is DiagnosisCode.AUTH_FAILED
    assert diagnosis.params["server_reply"].startswith("535")
    assert "not-the-password-XYZ" not in repr(diagnosis)
    # One attempt with one mechanism: every failure counts against us at the server.
    assert len(smtp_server.auth_attempts) == 1


def test_auth_unsupported(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="plain", users=None)
    ep = endpoint(SMTP, server.port, NONE, allow_plaintext_login=True)
    diagnosis = check_outgoing(check(ep))
    assert diagnosis.code is DiagnosisCode.AUTH_UNSUPPORTED


def test_auth_only_after_starttls_is_plaintext_refused(
    smtp_server: SmtpServer, endpoint: EndpointFactory
) -> None:
    ep = endpoint(SMTP, smtp_server.port, NONE, allow_plaintext_login=True)
    diagnosis = check_outgoing(check(ep))
    assert diagnosis.code is DiagnosisCode.PLAINTEXT_REFUSED
    assert diagnosis.params["refused_by"] == "server"


def test_plaintext_login_needs_explicit_consent(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="plain", users={ALICE: ALICE_PASSWORD})
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, NONE)))
    assert diagnosis.code is DiagnosisCode.PLAINTEXT_REFUSED
    assert diagnosis.params["refused_by"] == "client"
    assert server.auth_attempts == []


# ---------------------------------------------------------------- connection faults


def test_dropped_before_greeting_is_connection_lost(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="plain")
    server.drop_next("CONNECT")
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, NONE), credentials=None))
    assert diagnosis.code is DiagnosisCode.CONNECTION_LOST


def test_dropped_during_rcpt_is_connection_lost(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD})
    server.drop_next("RCPT")
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, SSL)))
    assert diagnosis.code is DiagnosisCode.CONNECTION_LOST
    assert diagnosis.params["phase"] == "command"


def test_refusing_greeting_is_protocol_error(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="plain")
    server.fail_next("CONNECT", "554 5.3.2 No SMTP service here")
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, NONE), credentials=None))
    assert diagnosis.code is DiagnosisCode.PROTOCOL_ERROR
    assert diagnosis.params["server_reply"].startswith("554")


# ---------------------------------------------------------------- TLS


def test_starttls_unavailable(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="plain", users={ALICE: ALICE_PASSWORD})
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, STARTTLS)))
    assert diagnosis.code is DiagnosisCode.STARTTLS_UNAVAILABLE
    assert server.auth_attempts == []  # never continued in plaintext


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("expired", "expired"),
        ("wrong_host", "hostname_mismatch"),
        ("self_signed", "self_signed"),
        ("untrusted_ca", "untrusted"),
    ],
)
@pytest.mark.parametrize(("mode", "security"), [("implicit", SSL), ("starttls", STARTTLS)])
def test_certificate_invalid(
    smtp_server_factory: SmtpServerFactory,
    endpoint: EndpointFactory,
    kind: str,
    problem: str,
    mode: str,
    security: Security,
) -> None:
    server = smtp_server_factory(mode=mode, cert=kind, users={ALICE: ALICE_PASSWORD})
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, security, host="localhost")))
    assert diagnosis.code is DiagnosisCode.CERTIFICATE_INVALID
    assert diagnosis.params["problem"] == problem
    assert server.auth_attempts == []


def test_self_signed_accepted_when_verification_off(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="implicit", cert="self_signed", users={ALICE: ALICE_PASSWORD})
    ep = endpoint(SMTP, server.port, SSL, tls=TLSPolicy(verify=False))
    assert check_outgoing(check(ep)).ok


def test_ssl_spoken_to_starttls_port(smtp_server: SmtpServer, endpoint: EndpointFactory) -> None:
    diagnosis = check_outgoing(check(endpoint(SMTP, smtp_server.port, SSL)))
    assert diagnosis.code is DiagnosisCode.TLS_MISMATCH
    assert diagnosis.params["configured_security"] == "ssl"
    assert diagnosis.params["suggested_security"] == "starttls"


@pytest.mark.parametrize("security", [STARTTLS, NONE])
def test_plaintext_spoken_to_smtps_port(
    smtps_server: SmtpServer, endpoint: EndpointFactory, security: Security
) -> None:
    ep = endpoint(
        SMTP, smtps_server.port, security, timeout=SHORT_TIMEOUT, allow_plaintext_login=True
    )
    diagnosis = check_outgoing(check(ep))
    assert diagnosis.code is DiagnosisCode.TLS_MISMATCH
    assert diagnosis.params["configured_security"] == str(security)
    assert diagnosis.params["suggested_security"] == "ssl"


def test_ssl_spoken_to_plain_port_suggests_the_smtps_port(
    smtp_server_factory: SmtpServerFactory,
    smtps_server: SmtpServer,
    endpoint: EndpointFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A plaintext-only port: the diagnosis probes the usual SMTPS port (465), here
    # played by the test SMTPS server's port.
    plain = smtp_server_factory(mode="plain", users={ALICE: ALICE_PASSWORD})
    monkeypatch.setitem(checks._SSL_PORT, SMTP, smtps_server.port)
    diagnosis = check_outgoing(check(endpoint(SMTP, plain.port, SSL)))
    assert diagnosis.code is DiagnosisCode.TLS_MISMATCH
    assert diagnosis.params["suggested_security"] == "ssl"
    assert diagnosis.params["suggested_port"] == str(smtps_server.port)


def test_ssl_spoken_to_plain_port_without_tls_anywhere(
    smtp_server_factory: SmtpServerFactory,
    endpoint: EndpointFactory,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = smtp_server_factory(mode="plain", users={ALICE: ALICE_PASSWORD})
    monkeypatch.setitem(checks._SSL_PORT, SMTP, closed_port)
    diagnosis = check_outgoing(check(endpoint(SMTP, plain.port, SSL)))
    assert diagnosis.code is DiagnosisCode.TLS_MISMATCH
    assert diagnosis.params["suggested_security"] == "none"
    assert "suggested_port" not in diagnosis.params


def test_password_echoed_by_the_server_is_not_shown(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    server = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD})
    server.fail_next("AUTH", f"535 5.7.8 Password {ALICE_PASSWORD} is wrong")
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, SSL)))
    assert diagnosis.code is DiagnosisCode.AUTH_FAILED
    assert ALICE_PASSWORD not in repr(diagnosis)
    assert "***" in diagnosis.params["server_reply"]


# ---------------------------------------------------------------- international addresses


def test_idna_domain_without_smtputf8(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    # The domain goes out as punycode, which any server takes.
    server = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD}, smtputf8=False)
    diagnosis = check_outgoing(check(endpoint(SMTP, server.port, SSL), rcpt_to="bob@bücher.test"))
    assert diagnosis.ok, diagnosis


def test_utf8_local_part_needs_smtputf8(
    smtp_server_factory: SmtpServerFactory, endpoint: EndpointFactory
) -> None:
    without = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD}, smtputf8=False)
    diagnosis = check_outgoing(check(endpoint(SMTP, without.port, SSL), rcpt_to="jörg@remote.test"))
    assert diagnosis.code is DiagnosisCode.SMTP_RECIPIENT_REJECTED
    assert diagnosis.params["address"] == "jörg@remote.test"

    with_utf8 = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD})
    ep = endpoint(SMTP, with_utf8.port, SSL)
    assert check_outgoing(check(ep, rcpt_to="jörg@remote.test")).ok
