"""check_incoming against a real Dovecot: every outcome an IMAP or POP3 user can meet."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from postroom.mail import imap
from postroom.mail.diagnostics import DiagnosisCode, check_incoming
from postroom.mail.types import Credentials, IncomingCheck, Protocol, Security, TLSPolicy
from tests.mail.conftest import SHORT_TIMEOUT, EndpointFactory
from tests.servers import CertKind, CertSet, Dovecot, DovecotUser

IMAP, POP3 = Protocol.IMAP, Protocol.POP3
SSL, STARTTLS, NONE = Security.SSL, Security.STARTTLS, Security.NONE


def creds(user: DovecotUser) -> Credentials:
    return Credentials(user.name, user.password)


# ---------------------------------------------------------------- success


@pytest.mark.parametrize(
    ("protocol", "port_name", "security"),
    [
        (IMAP, "imap", NONE),
        (IMAP, "imap", STARTTLS),
        (IMAP, "imaps", SSL),
        (POP3, "pop3", STARTTLS),
        (POP3, "pop3s", SSL),
        (POP3, "pop3", NONE),
    ],
)
def test_ok(
    dovecot: Dovecot,
    dovecot_user: DovecotUser,
    endpoint: EndpointFactory,
    protocol: Protocol,
    port_name: str,
    security: Security,
) -> None:
    ep = endpoint(protocol, dovecot.ports[port_name], security, allow_plaintext_login=True)
    diagnosis = check_incoming(IncomingCheck(ep, creds(dovecot_user)))
    assert diagnosis.ok, diagnosis
    assert diagnosis.code is None


def test_ok_with_hostname_verification(
    dovecot: Dovecot, dovecot_user: DovecotUser, endpoint: EndpointFactory
) -> None:
    ep = endpoint(IMAP, dovecot.imaps_port, SSL, host="localhost")
    assert check_incoming(IncomingCheck(ep, creds(dovecot_user))).ok


def test_non_ascii_folder_found(
    dovecot: Dovecot, dovecot_user: DovecotUser, endpoint: EndpointFactory
) -> None:
    # IMAPClient sends it as modified UTF-7 (&BCEERwQ1BEIEMA-) and decodes the LIST reply.
    dovecot.create_folder(dovecot_user.name, "Счета")
    dovecot.create_folder(dovecot_user.name, "Archiv/Bestätigt")
    ep = endpoint(IMAP, dovecot.imaps_port, SSL)
    check = IncomingCheck(ep, creds(dovecot_user), folders=("INBOX", "Счета", "Archiv/Bestätigt"))
    diagnosis = check_incoming(check)
    assert diagnosis.ok, diagnosis


@pytest.mark.parametrize(("protocol", "port_name"), [(IMAP, "imaps"), (POP3, "pop3s")])
def test_non_ascii_password(
    dovecot: Dovecot, endpoint: EndpointFactory, protocol: Protocol, port_name: str
) -> None:
    # IMAP LOGIN is ASCII-only: this goes through AUTHENTICATE PLAIN (UTF-8).
    user = dovecot.add_user("umlaut@example.test", "Pässwörd-ключ")
    ep = endpoint(protocol, dovecot.ports[port_name], SSL)
    assert check_incoming(IncomingCheck(ep, creds(user))).ok


# ---------------------------------------------------------------- login problems


@pytest.mark.parametrize(("protocol", "port_name"), [(IMAP, "imaps"), (POP3, "pop3s")])
def test_auth_failed(
    dovecot: Dovecot,
    dovecot_user: DovecotUser,
    endpoint: EndpointFactory,
    protocol: Protocol,
    port_name: str,
) -> None:
    ep = endpoint(protocol, dovecot.ports[port_name], SSL)
    wrong = Credentials(dovecot_user.name, "not-the-password-XYZ")
    diagnosis = check_incoming(IncomingCheck(ep, wrong))
    assert diagnosis.code is DiagnosisCode.AUTH_FAILED
    assert "Authentication failed" in diagnosis.params["server_reply"]
    # What the server said, never what we sent.
    assert "not-the-password-XYZ" not in repr(diagnosis)


def test_ascii_only_password_refused_before_sending(
    dovecot: Dovecot, dovecot_user: DovecotUser, endpoint: EndpointFactory
) -> None:
    ep = endpoint(IMAP, dovecot.imaps_port, SSL)
    check = IncomingCheck(ep, Credentials(dovecot_user.name, "pässword", ascii_only=True))
    diagnosis = check_incoming(check)
    assert diagnosis.code is DiagnosisCode.AUTH_FAILED
    assert diagnosis.params["hint"] == "password_not_ascii"


def test_imap_logindisabled_is_plaintext_refused(
    dovecot: Dovecot, dovecot_user: DovecotUser, endpoint: EndpointFactory
) -> None:
    # 127.0.0.2 is not trusted by Dovecot: CAPABILITY shows LOGINDISABLED before TLS.
    ep = endpoint(
        IMAP, dovecot.imap_port, NONE, host=dovecot.untrusted_host, allow_plaintext_login=True
    )
    diagnosis = check_incoming(IncomingCheck(ep, creds(dovecot_user)))
    assert diagnosis.code is DiagnosisCode.PLAINTEXT_REFUSED
    assert diagnosis.params["refused_by"] == "server"


def test_imap_privacyrequired_is_plaintext_refused(
    dovecot: Dovecot,
    dovecot_user: DovecotUser,
    endpoint: EndpointFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A server that forgets to announce LOGINDISABLED still answers LOGIN with
    # NO [PRIVACYREQUIRED]; hide the capability so LOGIN really reaches Dovecot.
    real = imap.ImapConnection.capabilities

    def without_logindisabled(self: imap.ImapConnection) -> frozenset[str]:
        return real(self) - {"LOGINDISABLED"}

    monkeypatch.setattr(imap.ImapConnection, "capabilities", without_logindisabled)
    ep = endpoint(
        IMAP, dovecot.imap_port, NONE, host=dovecot.untrusted_host, allow_plaintext_login=True
    )
    diagnosis = check_incoming(IncomingCheck(ep, creds(dovecot_user)))
    assert diagnosis.code is DiagnosisCode.PLAINTEXT_REFUSED
    assert "[PRIVACYREQUIRED]" in diagnosis.params["server_reply"]


def test_pop3_auth_before_tls_is_plaintext_refused(
    dovecot: Dovecot, dovecot_user: DovecotUser, endpoint: EndpointFactory
) -> None:
    ep = endpoint(
        POP3, dovecot.pop3_port, NONE, host=dovecot.untrusted_host, allow_plaintext_login=True
    )
    diagnosis = check_incoming(IncomingCheck(ep, creds(dovecot_user)))
    assert diagnosis.code is DiagnosisCode.PLAINTEXT_REFUSED
    assert diagnosis.params["server_reply"].startswith("-ERR [AUTH]")


@pytest.mark.parametrize(("protocol", "port_name"), [(IMAP, "imap"), (POP3, "pop3")])
def test_plaintext_login_needs_explicit_consent(
    dovecot: Dovecot,
    dovecot_user: DovecotUser,
    endpoint: EndpointFactory,
    protocol: Protocol,
    port_name: str,
) -> None:
    ep = endpoint(protocol, dovecot.ports[port_name], NONE)
    diagnosis = check_incoming(IncomingCheck(ep, creds(dovecot_user)))
    assert diagnosis.code is DiagnosisCode.PLAINTEXT_REFUSED
    assert diagnosis.params["refused_by"] == "client"


def test_starttls_on_untrusted_address_logs_in(
    dovecot: Dovecot, dovecot_user: DovecotUser, endpoint: EndpointFactory
) -> None:
    ep = endpoint(IMAP, dovecot.imap_port, STARTTLS, host=dovecot.untrusted_host)
    assert check_incoming(IncomingCheck(ep, creds(dovecot_user))).ok


# ---------------------------------------------------------------- folders


def test_folder_missing_names_the_folder(
    dovecot: Dovecot, dovecot_user: DovecotUser, endpoint: EndpointFactory
) -> None:
    ep = endpoint(IMAP, dovecot.imaps_port, SSL)
    check = IncomingCheck(ep, creds(dovecot_user), folders=("INBOX", "Rechnungen/Eingänge"))
    diagnosis = check_incoming(check)
    assert diagnosis.code is DiagnosisCode.FOLDER_MISSING
    assert diagnosis.params["folder"] == "Rechnungen/Eingänge"


def test_folder_pattern_characters_match_exactly(
    dovecot: Dovecot, dovecot_user: DovecotUser, endpoint: EndpointFactory
) -> None:
    # LIST takes wildcards: "IN%" would list INBOX, but no folder is called that.
    ep = endpoint(IMAP, dovecot.imaps_port, SSL)
    diagnosis = check_incoming(IncomingCheck(ep, creds(dovecot_user), folders=("IN%",)))
    assert diagnosis.code is DiagnosisCode.FOLDER_MISSING


def test_inbox_is_case_insensitive(
    dovecot: Dovecot, dovecot_user: DovecotUser, endpoint: EndpointFactory
) -> None:
    ep = endpoint(IMAP, dovecot.imaps_port, SSL)
    assert check_incoming(IncomingCheck(ep, creds(dovecot_user), folders=("Inbox",))).ok


# ---------------------------------------------------------------- TLS


@pytest.mark.parametrize(
    ("protocol", "port_name", "security"),
    [(IMAP, "imap", STARTTLS), (POP3, "pop3", STARTTLS)],
)
def test_starttls_unavailable(
    dovecot_without_tls: Dovecot,
    endpoint: EndpointFactory,
    protocol: Protocol,
    port_name: str,
    security: Security,
) -> None:
    server = dovecot_without_tls
    ep = endpoint(protocol, server.ports[port_name], security)
    diagnosis = check_incoming(IncomingCheck(ep, Credentials("alice@example.test", "x")))
    assert diagnosis.code is DiagnosisCode.STARTTLS_UNAVAILABLE
    # Nothing was sent in clear: no login attempt reached the server.
    assert "alice@example.test" not in server.log_text()


@pytest.fixture(scope="module")
def dovecot_without_tls(certs: CertSet) -> Iterator[Dovecot]:
    """``ssl = no``: no STARTTLS/STLS capability, no implicit-TLS listeners."""
    with Dovecot(certs, ssl=False) as server:
        yield server


@pytest.fixture(scope="module")
def dovecot_by_cert(certs: CertSet) -> Iterator[dict[CertKind, Dovecot]]:
    """One Dovecot per bad certificate, shared by this module's certificate tests."""
    servers = {kind: Dovecot(certs, cert=kind) for kind in BAD_CERTS}
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


BAD_CERTS: dict[CertKind, str] = {
    "expired": "expired",
    "wrong_host": "hostname_mismatch",
    "self_signed": "self_signed",
    "untrusted_ca": "untrusted",
}


@pytest.mark.parametrize(("kind", "problem"), BAD_CERTS.items())
@pytest.mark.parametrize(
    ("protocol", "port_name", "security"),
    [
        (IMAP, "imaps", SSL),
        (IMAP, "imap", STARTTLS),
        (POP3, "pop3s", SSL),
        (POP3, "pop3", STARTTLS),
    ],
)
def test_certificate_invalid(
    dovecot_by_cert: dict[CertKind, Dovecot],
    endpoint: EndpointFactory,
    kind: CertKind,
    problem: str,
    protocol: Protocol,
    port_name: str,
    security: Security,
) -> None:
    server = dovecot_by_cert[kind]
    ep = endpoint(protocol, server.ports[port_name], security, host="localhost")
    diagnosis = check_incoming(IncomingCheck(ep, Credentials("alice@example.test", "x")))
    assert diagnosis.code is DiagnosisCode.CERTIFICATE_INVALID
    assert diagnosis.params["problem"] == problem


def test_self_signed_accepted_when_verification_off(
    dovecot_by_cert: dict[CertKind, Dovecot], endpoint: EndpointFactory
) -> None:
    server = dovecot_by_cert["self_signed"]
    user = server.new_user()
    ep = endpoint(IMAP, server.imaps_port, SSL, tls=TLSPolicy(verify=False))
    assert check_incoming(IncomingCheck(ep, creds(user))).ok


def test_self_signed_accepted_when_pinned(
    dovecot_by_cert: dict[CertKind, Dovecot], endpoint: EndpointFactory
) -> None:
    server = dovecot_by_cert["self_signed"]
    user = server.new_user()
    # The certificate is its own CA (CA:TRUE), so trusting it as ca_pem pins it.
    ep = endpoint(IMAP, server.imaps_port, SSL, tls=TLSPolicy(ca_pem=server.cert.cert_pem))
    assert check_incoming(IncomingCheck(ep, creds(user))).ok


@pytest.mark.parametrize(
    ("protocol", "plain", "implicit"), [(IMAP, "imap", "imaps"), (POP3, "pop3", "pop3s")]
)
def test_ssl_spoken_to_starttls_port(
    dovecot: Dovecot,
    dovecot_user: DovecotUser,
    endpoint: EndpointFactory,
    protocol: Protocol,
    plain: str,
    implicit: str,
) -> None:
    ep = endpoint(protocol, dovecot.ports[plain], SSL)
    diagnosis = check_incoming(IncomingCheck(ep, creds(dovecot_user)))
    assert diagnosis.code is DiagnosisCode.TLS_MISMATCH
    assert diagnosis.params["configured_security"] == "ssl"
    assert diagnosis.params["suggested_security"] == "starttls"
    assert "suggested_port" not in diagnosis.params  # the port is right, the mode is not


@pytest.mark.parametrize("security", [STARTTLS, NONE])
@pytest.mark.parametrize(("protocol", "implicit"), [(IMAP, "imaps"), (POP3, "pop3s")])
def test_plaintext_spoken_to_implicit_tls_port(
    dovecot: Dovecot,
    dovecot_user: DovecotUser,
    endpoint: EndpointFactory,
    protocol: Protocol,
    implicit: str,
    security: Security,
) -> None:
    # The server waits for a ClientHello, we wait for a greeting: the greeting
    # read times out, then a TLS probe shows what the port speaks.
    ep = endpoint(
        protocol,
        dovecot.ports[implicit],
        security,
        timeout=SHORT_TIMEOUT,
        allow_plaintext_login=True,
    )
    diagnosis = check_incoming(IncomingCheck(ep, creds(dovecot_user)))
    assert diagnosis.code is DiagnosisCode.TLS_MISMATCH
    assert diagnosis.params["suggested_security"] == "ssl"


def test_ssl_spoken_to_port_without_any_tls(
    dovecot_without_tls: Dovecot, endpoint: EndpointFactory
) -> None:
    server = dovecot_without_tls
    ep = endpoint(IMAP, server.imap_port, SSL)
    diagnosis = check_incoming(IncomingCheck(ep, Credentials("alice@example.test", "x")))
    assert diagnosis.code is DiagnosisCode.TLS_MISMATCH
    assert diagnosis.params["suggested_security"] == "none"


# ---------------------------------------------------------------- socket options


def test_tcp_nodelay_and_source_address(dovecot: Dovecot, endpoint: EndpointFactory) -> None:
    ep = endpoint(IMAP, dovecot.imaps_port, SSL, source_address="127.0.0.7")
    connection = imap.connect(ep)
    try:
        sock = connection.client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert sock.getsockname()[0] == "127.0.0.7"
    finally:
        connection.close()
