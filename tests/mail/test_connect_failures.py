"""Reaching the server: DNS, refused, silent, unusable source address, old TLS, bugs."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from postroom.mail import imap
from postroom.mail.diagnostics import DiagnosisCode, check_incoming, check_outgoing
from postroom.mail.types import (
    Credentials,
    Endpoint,
    IncomingCheck,
    OutgoingCheck,
    Protocol,
    Security,
)
from tests.mail.conftest import SHORT_TIMEOUT, EndpointFactory
from tests.mail.oldtls import OldTLSServer
from tests.servers import CertSet, Dovecot, SmtpServer

IMAP, POP3, SMTP = Protocol.IMAP, Protocol.POP3, Protocol.SMTP
SSL, STARTTLS, NONE = Security.SSL, Security.STARTTLS, Security.NONE
ANYONE = Credentials("alice@example.test", "secret-alice")


def incoming(ep: Endpoint) -> IncomingCheck:
    return IncomingCheck(ep, ANYONE)


def outgoing(ep: Endpoint) -> OutgoingCheck:
    return OutgoingCheck(ep, ANYONE, "alice@example.test", "bob@example.test")


@pytest.mark.parametrize("protocol", [IMAP, POP3, SMTP])
def test_dns_failure(endpoint: EndpointFactory, protocol: Protocol) -> None:
    # .invalid is reserved (RFC 2606): it never resolves.
    ep = endpoint(protocol, 993, SSL, host="nonexistent.invalid")
    check = check_outgoing(outgoing(ep)) if protocol is SMTP else check_incoming(incoming(ep))
    assert check.code is DiagnosisCode.DNS_FAILURE
    assert check.params["host"] == "nonexistent.invalid"


@pytest.mark.parametrize("protocol", [IMAP, POP3, SMTP])
def test_connection_refused(
    endpoint: EndpointFactory, closed_port: int, protocol: Protocol
) -> None:
    ep = endpoint(protocol, closed_port, SSL)
    check = check_outgoing(outgoing(ep)) if protocol is SMTP else check_incoming(incoming(ep))
    assert check.code is DiagnosisCode.CONNECTION_REFUSED
    assert check.params["port"] == str(closed_port)


@pytest.mark.parametrize(
    ("protocol", "security", "phase"),
    [(IMAP, SSL, "tls"), (IMAP, STARTTLS, "greeting"), (SMTP, STARTTLS, "greeting")],
)
def test_silent_server_times_out(
    endpoint: EndpointFactory, silent_port: int, protocol: Protocol, security: Security, phase: str
) -> None:
    ep = endpoint(protocol, silent_port, security, timeout=SHORT_TIMEOUT)
    started = time.monotonic()
    check = check_outgoing(outgoing(ep)) if protocol is SMTP else check_incoming(incoming(ep))
    elapsed = time.monotonic() - started
    assert check.code is DiagnosisCode.TIMEOUT
    assert check.params["phase"] == phase
    # The greeting timeout, plus one TLS probe when the configured mode was plaintext.
    assert elapsed < 2 * SHORT_TIMEOUT + 1


def test_unusable_source_address_is_connection_failed(
    dovecot: Dovecot, endpoint: EndpointFactory
) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: bind() fails with EADDRNOTAVAIL.
    ep = endpoint(IMAP, dovecot.imaps_port, SSL, source_address="192.0.2.1")
    check = check_incoming(incoming(ep))
    assert check.code is DiagnosisCode.CONNECTION_FAILED


def test_outdated_tls_is_tls_failed(certs: CertSet, endpoint: EndpointFactory) -> None:
    with OldTLSServer(certs) as server:
        ep = endpoint(IMAP, server.port, SSL, timeout=SHORT_TIMEOUT)
        check = check_incoming(incoming(ep))
    assert check.code is DiagnosisCode.TLS_FAILED


def test_a_bug_is_reported_as_unexpected_and_logged(
    dovecot: Dovecot,
    endpoint: EndpointFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A real session against a real server, with a programming error in the middle.
    def broken_login(self: imap.ImapConnection, credentials: Credentials) -> None:
        raise RuntimeError("bug in login")

    monkeypatch.setattr(imap.ImapConnection, "login", broken_login)
    check = check_incoming(incoming(endpoint(IMAP, dovecot.imaps_port, SSL)))
    assert check.code is DiagnosisCode.UNEXPECTED
    assert "RuntimeError" in check.detail
    assert "bug in login" in caplog.text


def test_wrong_protocol_for_the_check_is_a_programming_error(endpoint: EndpointFactory) -> None:
    with pytest.raises(ValueError, match="incoming"):
        check_incoming(incoming(endpoint(SMTP, 25, NONE)))
    with pytest.raises(ValueError, match="outgoing"):
        check_outgoing(outgoing(endpoint(IMAP, 143, NONE)))


def test_slow_dns_is_bounded_by_the_timeout(
    endpoint: EndpointFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # getaddrinfo() has no timeout; a resolver that hangs must not hang the test.
    real_getaddrinfo = socket.getaddrinfo

    def hanging_resolver(*args: Any, **kwargs: Any) -> Any:
        time.sleep(3)
        return real_getaddrinfo(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging_resolver)
    ep = endpoint(IMAP, 993, SSL, host="mail.example.test", timeout=0.3)
    started = time.monotonic()
    diagnosis = check_incoming(incoming(ep))
    assert time.monotonic() - started < 1.5
    assert diagnosis.code is DiagnosisCode.DNS_FAILURE


def test_invalid_host_name_is_dns_failure(endpoint: EndpointFactory) -> None:
    ep = endpoint(IMAP, 993, SSL, host="mail..example.test")
    assert check_incoming(incoming(ep)).code is DiagnosisCode.DNS_FAILURE


@pytest.mark.parametrize(
    ("protocol", "server"),
    [(IMAP, "smtp"), (POP3, "imap"), (SMTP, "imap"), (IMAP, "pop3")],
)
def test_wrong_protocol_on_the_port_is_protocol_error(
    dovecot: Dovecot,
    smtp_server: SmtpServer,
    endpoint: EndpointFactory,
    protocol: Protocol,
    server: str,
) -> None:
    port = smtp_server.port if server == "smtp" else dovecot.ports[server]
    ep = endpoint(protocol, port, NONE, allow_plaintext_login=True)
    check = check_outgoing(outgoing(ep)) if protocol is SMTP else check_incoming(incoming(ep))
    assert check.code is DiagnosisCode.PROTOCOL_ERROR
    assert check.params["phase"] == "greeting"
