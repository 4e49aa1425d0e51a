"""Self-tests of tests/servers: the fixtures start real servers that behave as documented."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.servers.certs import CertKind, CertSet
from tests.servers.dovecot import Dovecot, DovecotError, DovecotUser, _group_members
from tests.servers.smtp import RELAY_DENIED, SmtpServer
from tests.servers.users import ALICE, ALICE_PASSWORD

# Loaded here too so this file runs on its own; pytest registers a plugin only once, so a
# conftest.py that lists it as well does no harm.
pytest_plugins = ["tests.servers.fixtures"]

# What OpenSSL reports for each bad certificate (SSLCertVerificationError.verify_code).
VERIFY_CODES: dict[CertKind, int] = {
    "expired": 10,  # certificate has expired
    "wrong_host": 62,  # Hostname mismatch
    "self_signed": 18,  # self-signed certificate
    "untrusted_ca": 20,  # unable to get local issuer certificate
}
DovecotFactory = Callable[..., Dovecot]
SmtpServerFactory = Callable[..., SmtpServer]
MESSAGE = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nbody\r\n"


def imap_plain(host: str, port: int) -> IMAPClient:
    """A plain-IMAP client; use it in ``with`` so it is always closed."""
    return IMAPClient(host, port=port, ssl=False, timeout=5)


def imap_capabilities(host: str, port: int) -> tuple[bytes, ...]:
    with imap_plain(host, port) as client:
        return tuple(client.capabilities())


# ------------------------------------------------------------------------- Dovecot


def test_imaps_login_verifies_with_session_ca(dovecot: Dovecot, certs: CertSet) -> None:
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with IMAPClient(dovecot.host, port=dovecot.imaps_port, ssl=True, ssl_context=ctx) as client:
        client.login(ALICE, ALICE_PASSWORD)
        folders = {name: flags for flags, _sep, name in client.list_folders()}
    assert "INBOX" in folders
    # Special-use flags come from the generated namespace config.
    assert rb"\Archive" in folders["Archive"]
    assert dovecot.ca_pem == certs.ca_pem


def test_imap_starttls_then_login(dovecot: Dovecot, certs: CertSet) -> None:
    with imap_plain(dovecot.host, dovecot.imap_port) as client:
        assert b"STARTTLS" in client.capabilities()
        client.starttls(certs.client_context())
        client.login(ALICE, ALICE_PASSWORD)


def test_pop3s_login(dovecot: Dovecot, dovecot_user: DovecotUser) -> None:
    dovecot.append(dovecot_user.name, "INBOX", MESSAGE)
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_file))
    pop = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=ctx, timeout=5)
    pop.user(dovecot_user.name)
    pop.pass_(dovecot_user.password)
    count, _size = pop.stat()
    _resp, lines, _octets = pop.retr(1)
    pop.quit()
    assert count == 1
    assert b"Subject: hi" in lines


def test_pop3_stls(dovecot: Dovecot, certs: CertSet) -> None:
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=5)
    assert "STLS" in pop.capa()
    pop.stls(certs.client_context())
    pop.user(ALICE)
    pop.pass_(ALICE_PASSWORD)
    pop.quit()


def test_append_folders_and_flags_roundtrip(dovecot: Dovecot, dovecot_user: DovecotUser) -> None:
    dovecot.create_folder(dovecot_user.name, "Entwürfe/Alt")
    uid = dovecot.append(dovecot_user.name, "Entwürfe/Alt", MESSAGE, flags=[r"\Seen"])
    assert "Entwürfe/Alt" in dovecot.folders(dovecot_user.name)
    assert dovecot.messages(dovecot_user.name, "Entwürfe/Alt") == {uid: MESSAGE}
    assert r"\Seen" in dovecot.flags(dovecot_user.name, "Entwürfe/Alt")[uid]


def test_password_change_and_failed_logins_stay_fast(
    dovecot: Dovecot, dovecot_user: DovecotUser
) -> None:
    name = dovecot_user.name
    dovecot.set_password(name, "new:secret")  # ':' cannot be stored {PLAIN}; hashed instead
    started = time.monotonic()
    with imap_plain("127.0.0.1", dovecot.imap_port) as client:
        with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
            client.login(name, dovecot_user.password)
        # auth_failure_delay = 0 and no auth penalty: ~0.5 s for the failure, none after.
        client.login(name, "new:secret")
    assert time.monotonic() - started < 2.0


def test_domain_backslash_login(dovecot: Dovecot) -> None:
    dovecot.add_user("CORP\\alice", "pw-corp")
    with imap_plain("127.0.0.1", dovecot.imap_port) as client:
        client.login("CORP\\alice", "pw-corp")


@pytest.mark.parametrize("kind", sorted(VERIFY_CODES))
def test_bad_certificates_fail_verification(
    dovecot_factory: DovecotFactory, certs: CertSet, kind: CertKind
) -> None:
    server = dovecot_factory(cert=kind)
    ctx = certs.client_context()
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        IMAPClient(server.host, port=server.imaps_port, ssl=True, ssl_context=ctx, timeout=5)
    assert info.value.verify_code == VERIFY_CODES[kind]
    # The same failure through STARTTLS on the plain port.
    with imap_plain(server.host, server.imap_port) as client:
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(ctx)
    # Without verification the server is perfectly usable.
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with IMAPClient(server.host, port=server.imaps_port, ssl=True, ssl_context=lax) as ok:
        ok.login(ALICE, ALICE_PASSWORD)


def test_self_signed_certificate_can_be_pinned(
    dovecot_factory: DovecotFactory,
) -> None:
    server = dovecot_factory(cert="self_signed")
    pinned = ssl.create_default_context(cadata=server.cert.cert_pem)
    with IMAPClient(server.host, port=server.imaps_port, ssl=True, ssl_context=pinned) as client:
        client.login(ALICE, ALICE_PASSWORD)


def test_untrusted_address_refuses_plaintext_imap(dovecot: Dovecot, certs: CertSet) -> None:
    with imap_plain(dovecot.untrusted_host, dovecot.imap_port) as client:
        caps = client.capabilities()
        assert b"LOGINDISABLED" in caps
        assert not any(cap.startswith(b"AUTH=") for cap in caps)
        with pytest.raises(LoginError, match="PRIVACYREQUIRED"):
            client.login(ALICE, ALICE_PASSWORD)
    # After STARTTLS (the certificate names 127.0.0.2) login works.
    with imap_plain(dovecot.untrusted_host, dovecot.imap_port) as client:
        client.starttls(certs.client_context())
        assert b"LOGINDISABLED" not in client.capabilities()
        client.login(ALICE, ALICE_PASSWORD)
    # The trusted address still accepts plaintext login (for product tests of "none").
    with imap_plain(dovecot.trusted_host, dovecot.imap_port) as client:
        client.login(ALICE, ALICE_PASSWORD)


def test_untrusted_address_refuses_plaintext_pop3(dovecot: Dovecot) -> None:
    pop = poplib.POP3(dovecot.untrusted_host, dovecot.pop3_port, timeout=5)
    assert "USER" not in pop.capa()
    # Refused at USER already, before any password is sent.
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Plaintext authentication"):
        pop.user(ALICE)
    pop.quit()


def test_plaintext_refused_mode_and_ssl_off(dovecot_factory: DovecotFactory) -> None:
    refused = dovecot_factory(plaintext_refused=True)
    assert refused.host == "127.0.0.2"
    assert b"LOGINDISABLED" in imap_capabilities(refused.host, refused.imap_port)

    no_tls = dovecot_factory(ssl=False, plaintext_refused=True)
    caps = imap_capabilities(no_tls.host, no_tls.imap_port)
    assert b"STARTTLS" not in caps
    assert b"LOGINDISABLED" in caps
    pop = poplib.POP3(no_tls.host, no_tls.pop3_port, timeout=5)
    assert "STLS" not in pop.capa()
    pop.quit()
    with pytest.raises(DovecotError):
        _ = no_tls.imaps_port
    # Plaintext login still works from the trusted address.
    with imap_plain(no_tls.trusted_host, no_tls.imap_port) as client:
        client.login(ALICE, ALICE_PASSWORD)


def test_stop_leaves_no_process_and_no_files(certs: CertSet) -> None:
    server = Dovecot(certs).start()
    pid = server.pid
    assert pid is not None
    assert _group_members(pid)
    directory = server.directory
    server.stop()
    assert _group_members(pid) == []
    assert not Path(directory).exists()


def test_kill_and_restart_keep_mail(dovecot_factory: DovecotFactory) -> None:
    server = dovecot_factory()
    uid = server.append(ALICE, "INBOX", MESSAGE)
    server.kill()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        imap_plain("127.0.0.1", server.imap_port)
    server.restart()
    assert server.messages(ALICE) == {uid: MESSAGE}


def test_mail_owner_is_an_ordinary_account(dovecot: Dovecot) -> None:
    assert dovecot.owner.uid > 0
    home = dovecot.mail_root
    assert home.stat().st_uid == dovecot.owner.uid


# ------------------------------------------------------------------------- SMTP


def test_smtp_auth_over_starttls(smtp_server: SmtpServer, certs: CertSet) -> None:
    smtp_server.reset()
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.ehlo()
        # AUTH is offered only once the connection is encrypted.
        assert not client.has_extn("auth")
        client.starttls(context=certs.client_context())
        client.ehlo()
        assert client.has_extn("auth")
        client.login(ALICE, ALICE_PASSWORD)
        client.sendmail(ALICE, ["bob@elsewhere.test"], MESSAGE)
    [received] = smtp_server.wait_for_messages(1)
    assert received.authenticated_as == ALICE
    assert received.tls
    assert received.rcpt_tos == ("bob@elsewhere.test",)
    assert received.message["Subject"] == "hi"


def test_smtps_implicit_tls(smtps_server: SmtpServer, certs: CertSet) -> None:
    smtps_server.reset()
    ctx = certs.client_context()
    with smtplib.SMTP_SSL(smtps_server.host, smtps_server.port, context=ctx, timeout=5) as client:
        client.login(ALICE, ALICE_PASSWORD)
        client.sendmail(ALICE, [ALICE], MESSAGE)
    assert smtps_server.wait_for_messages(1)[0].data == MESSAGE


def test_smtp_wrong_password(smtp_server: SmtpServer, certs: CertSet) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.starttls(context=certs.client_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login(ALICE, "wrong")
    assert info.value.smtp_code == 535


def test_relay_denied(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory(mode="plain", users={ALICE: ALICE_PASSWORD}, deny_relay=True)
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            client.sendmail("x@elsewhere.test", ["bob@elsewhere.test"], MESSAGE)
        code, text = info.value.recipients["bob@elsewhere.test"]
        assert f"{code} {text.decode()}" == RELAY_DENIED
        # Local recipients are fine, and so is relaying once authenticated.
        client.sendmail("x@elsewhere.test", ["bob@example.test"], MESSAGE)
        client.login(ALICE, ALICE_PASSWORD)
        client.sendmail(ALICE, ["bob@elsewhere.test"], MESSAGE)
    assert [m.rcpt_tos for m in server.messages] == [("bob@example.test",), ("bob@elsewhere.test",)]


def test_injected_failures_and_drops(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory(mode="plain")
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        server.fail_next("RCPT", "451 4.3.0 Try later")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert refused.value.recipients["b@example.test"] == (451, b"4.3.0 Try later")
        # (Not 421 here: smtplib closes the connection on any 421.)
        server.fail_next("MAIL", "451 4.7.0 Too busy")
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        client.rset()
        server.fail_next("DATA", "552 5.3.4 Message too big")
        with pytest.raises(smtplib.SMTPDataError) as data_error:
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert data_error.value.smtp_code == 552
        server.drop_next("DATA")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    server.fail_next("CONNECT", "421 4.3.2 Service not available")
    with pytest.raises(smtplib.SMTPConnectError):
        smtplib.SMTP(server.host, server.port, timeout=5)
    assert server.messages == []


def test_smtp_without_auth(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory(mode="plain", users=None)
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AGEAYg==")[0] == 503
        client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
    assert server.messages[0].authenticated_as is None


@pytest.mark.parametrize("kind", sorted(VERIFY_CODES))
def test_smtps_bad_certificates(
    smtp_server_factory: SmtpServerFactory, certs: CertSet, kind: CertKind
) -> None:
    server = smtp_server_factory(mode="implicit", cert=kind)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        smtplib.SMTP_SSL(server.host, server.port, context=certs.client_context(), timeout=5)
    assert info.value.verify_code == VERIFY_CODES[kind]


# ------------------------------------------------------------------------- sockets


def test_silent_server_times_out(silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        imaplib.IMAP4("127.0.0.1", silent_port, timeout=0.3)
    # smtplib turns a timeout while waiting for the greeting into SMTPServerDisconnected.
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtplib.SMTP("127.0.0.1", silent_port, timeout=0.3)
    assert time.monotonic() - started < 2


def test_closed_port_refuses(closed_port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", closed_port), timeout=2)
    with pytest.raises(ConnectionRefusedError):
        IMAPClient("localhost", port=closed_port, ssl=False, timeout=2)
