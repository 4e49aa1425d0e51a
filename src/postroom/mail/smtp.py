"""SMTP connect, login and envelope check on top of smtplib.

``connect`` greets (EHLO) and upgrades with STARTTLS when configured (never
continuing in plaintext if the server does not offer it);
``SmtpConnection.login`` authenticates; ``check_envelope`` sends MAIL FROM and
RCPT TO without DATA, then RSET, which is how we learn whether the server will
take mail from us for that recipient without sending any.
"""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from postroom.mail import net
from postroom.mail.auth import check_password_encoding, check_plaintext_allowed
from postroom.mail.errors import (
    AuthError,
    AuthHint,
    AuthUnsupported,
    ConnectionLost,
    MailError,
    Phase,
    PlaintextRefused,
    ProtocolError,
    RecipientRejected,
    RelayDenied,
    SenderRejected,
    SMTPRejected,
    StartTLSUnavailable,
    TemporaryFailure,
)
from postroom.mail.tls import make_context
from postroom.mail.types import Credentials, Endpoint, Security

log = logging.getLogger(__name__)

# RFC 3463 enhanced status code at the start of a reply text: "5.7.1 ...".
_ENHANCED = re.compile(r"^(?P<cls>[245])\.(?P<subject>\d{1,3})\.(?P<detail>\d{1,3})\b")

# Enhanced codes that say what a failed AUTH needs (Google, Microsoft).
_AUTH_HINTS: dict[str, AuthHint] = {
    "5.7.9": AuthHint.APP_PASSWORD_REQUIRED,  # Google: application-specific password required
    "5.7.14": AuthHint.WEB_LOGIN_REQUIRED,  # Google: sign in via the web browser first
    "5.7.139": AuthHint.AUTH_DISABLED,  # Microsoft: SMTP AUTH disabled for the tenant
}


# SASL mechanisms smtplib implements, in our order of preference: PLAIN and
# LOGIN need one round trip over TLS; CRAM-MD5 (deprecated, RFC 8314) only for
# servers that offer nothing else.
_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


class _SMTP(smtplib.SMTP):
    """smtplib with our socket: source address, TCP_NODELAY, implicit TLS."""

    def __init__(self, endpoint: Endpoint, context: ssl.SSLContext | None) -> None:
        self._endpoint = endpoint
        self._context = context
        # A local_hostname stops smtplib calling socket.getfqdn() (a reverse
        # DNS lookup that can hang); the real name is set after connecting.
        super().__init__(local_hostname="localhost", timeout=endpoint.timeout)
        # starttls() verifies the certificate against ``_host``, which smtplib
        # only sets when the constructor connects; we connect later ourselves.
        self._host = endpoint.host

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        with net.translated(self._endpoint, Phase.CONNECT):
            sock = net.open_socket(self._endpoint)
        if self._context is None:
            return sock
        with net.translated(self._endpoint, Phase.TLS):
            return net.wrap_tls(sock, self._context, self._endpoint.host)


class SmtpConnection:
    """A greeted (EHLO done, TLS as configured) SMTP session."""

    def __init__(self, smtp: smtplib.SMTP, endpoint: Endpoint, tls: bool) -> None:
        self.smtp = smtp
        self.endpoint = endpoint
        self.tls = tls

    def login(self, credentials: Credentials) -> None:
        check_password_encoding(credentials)
        check_plaintext_allowed(self.endpoint)
        if not self.smtp.has_extn("auth"):
            if not self.tls and self.smtp.has_extn("starttls"):
                # Servers commonly advertise AUTH only after STARTTLS.
                raise PlaintextRefused("the server offers AUTH only after STARTTLS", by_server=True)
            raise AuthUnsupported("the server does not offer SMTP AUTH")
        offered = self.smtp.esmtp_features.get("auth", "").upper().split()
        with _smtp_errors(self.endpoint, Phase.LOGIN):
            try:
                if credentials.username.isascii() and credentials.password.isascii():
                    self._auth(credentials, offered)
                else:
                    self._auth_plain_utf8(credentials, offered)
            except smtplib.SMTPResponseException as exc:
                # SMTPAuthenticationError, or the base class from some mechanisms.
                raise self._auth_error(exc.smtp_code, _text(exc.smtp_error)) from exc

    def _auth(self, credentials: Credentials, offered: list[str]) -> None:
        # One mechanism, one attempt: smtplib.login() would try every offered
        # mechanism in turn, and each failure counts against us on servers that
        # lock accounts or throttle addresses after failed logins.
        mechanism = next((m for m in _MECHANISMS if m in offered), None)
        if mechanism is None:
            raise AuthUnsupported(
                f"the server offers no login mechanism we support ({' '.join(offered)})"
            )
        self.smtp.user, self.smtp.password = credentials.username, credentials.password
        if mechanism == "PLAIN":
            self.smtp.auth(mechanism, self.smtp.auth_plain)
        elif mechanism == "LOGIN":
            self.smtp.auth(mechanism, self.smtp.auth_login)
        else:
            self.smtp.auth(mechanism, self.smtp.auth_cram_md5)

    def _auth_plain_utf8(self, credentials: Credentials, offered: list[str]) -> None:
        # smtplib encodes SASL responses as ASCII; RFC 4616 PLAIN is UTF-8.
        if "PLAIN" not in offered:
            raise AuthError(
                "the password is not ASCII and the server offers no AUTH PLAIN",
                hint=AuthHint.PASSWORD_NOT_ASCII,
            )
        token = f"\0{credentials.username}\0{credentials.password}".encode()
        code, reply = self.smtp.docmd("AUTH", "PLAIN " + base64.b64encode(token).decode("ascii"))
        if code != 235:
            raise self._auth_error(code, _text(reply))

    def _auth_error(self, code: int, reply: str) -> MailError:
        full = f"{code} {reply}"
        enhanced = _enhanced(reply)
        if code == 538 or (code == 530 and not self.tls):
            # 538: encryption required for the mechanism (RFC 4954);
            # 530 at AUTH: "Must issue a STARTTLS command first" (RFC 3207).
            return PlaintextRefused(
                "the server requires TLS before login", by_server=True, server_reply=full
            )
        if 400 <= code < 500:
            return TemporaryFailure(f"login temporarily impossible: {full}", server_reply=full)
        if code == 504:
            return AuthUnsupported(f"authentication mechanism refused: {full}", server_reply=full)
        hint = _AUTH_HINTS.get(enhanced) if enhanced else None
        return AuthError(f"login refused: {full}", server_reply=full, hint=hint)

    def check_envelope(self, mail_from: str, rcpt_to: str) -> None:
        """MAIL FROM + RCPT TO, then RSET: would the server take this mail?"""
        smtputf8 = self.smtp.has_extn("smtputf8")
        sender = _envelope_address(mail_from, smtputf8, SenderRejected)
        recipient = _envelope_address(rcpt_to, smtputf8, RecipientRejected)
        options = [] if (sender + recipient).isascii() else ["SMTPUTF8"]
        with _smtp_errors(self.endpoint, Phase.COMMAND):
            code, reply = self.smtp.mail(sender, options)
            if code != 250:
                raise _envelope_error("MAIL FROM", code, _text(reply), mail_from)
            code, reply = self.smtp.rcpt(recipient)
            if code not in (250, 251):
                raise _envelope_error("RCPT TO", code, _text(reply), rcpt_to)
            self.smtp.rset()

    def close(self) -> None:
        try:
            with _smtp_errors(self.endpoint, Phase.COMMAND):
                self.smtp.quit()
        except MailError as exc:
            # QUIT on a broken connection fails; the socket must still be
            # closed and the original error (if any) wins.
            log.debug("SMTP QUIT failed, closing: %s", exc)
            try:
                self.smtp.close()
            except OSError as close_exc:
                log.debug("SMTP close failed: %s", close_exc)


def connect(endpoint: Endpoint, local_hostname: str | None = None) -> SmtpConnection:
    """Connect, read the 220 greeting, EHLO, and STARTTLS when configured."""
    context = None if endpoint.security is Security.NONE else make_context(endpoint.tls)
    implicit = context if endpoint.security is Security.SSL else None
    smtp = _SMTP(endpoint, implicit)
    try:
        with _smtp_errors(endpoint, Phase.GREETING):
            code, reply = smtp.connect(endpoint.host, endpoint.port)
            if code != 220:
                raise _greeting_error(code, _text(reply))
            assert smtp.sock is not None
            smtp.local_hostname = local_hostname or net.ehlo_name(smtp.sock)
            _hello(smtp)
        connection = SmtpConnection(smtp, endpoint, tls=implicit is not None)
        if endpoint.security is Security.STARTTLS:
            assert context is not None
            _starttls(connection, context)
    except BaseException:
        smtp.close()
        raise
    return connection


def _hello(smtp: smtplib.SMTP) -> None:
    code, reply = smtp.ehlo()
    if code != 250:
        # A pre-ESMTP server: HELO still lets us relay, without extensions.
        code, reply = smtp.helo()
    if code != 250:
        raise ProtocolError(
            f"EHLO/HELO refused: {code} {_text(reply)}",
            phase=Phase.GREETING,
            server_reply=f"{code} {_text(reply)}",
        )


def _starttls(connection: SmtpConnection, context: ssl.SSLContext) -> None:
    smtp = connection.smtp
    if not smtp.has_extn("starttls"):
        raise StartTLSUnavailable(
            f"{connection.endpoint.host}:{connection.endpoint.port} does not offer STARTTLS"
        )
    with _smtp_errors(connection.endpoint, Phase.TLS):
        smtp.starttls(context=context)
        connection.tls = True
        # RFC 3207: forget what was learnt before TLS and ask again.
        _hello(smtp)


@contextmanager
def session(
    endpoint: Endpoint, credentials: Credentials | None, local_hostname: str | None = None
) -> Iterator[SmtpConnection]:
    """Greeted session, logged in when credentials are given; QUIT on exit."""
    connection = connect(endpoint, local_hostname)
    try:
        if credentials is not None:
            connection.login(credentials)
        yield connection
    finally:
        connection.close()


def _greeting_error(code: int, reply: str) -> MailError:
    full = f"{code} {reply}"
    if 400 <= code < 500:
        return TemporaryFailure(f"server refused the session: {full}", server_reply=full)
    # -1 is smtplib's "reply did not start with a number": not SMTP at all.
    return ProtocolError(
        f"unexpected SMTP greeting: {full}", phase=Phase.GREETING, server_reply=full
    )


def _envelope_address(address: str, smtputf8: bool, rejected: type[SMTPRejected]) -> str:
    """The address as it can go on the wire (C4).

    A non-ASCII domain becomes its IDNA (punycode) form, which every server
    takes; a non-ASCII local part needs the server's SMTPUTF8.
    """
    if address.isascii() or smtputf8:
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        raise rejected(
            f"<{address}> needs SMTPUTF8, which the server does not offer",
            server_reply="",
            address=address,
        )
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise rejected(
            f"<{address}> has an invalid domain", server_reply="", address=address
        ) from exc


def _envelope_error(command: str, code: int, reply: str, address: str) -> MailError:
    full = f"{code} {reply}"
    detail = f"{command} <{address}> refused: {full}"
    if 400 <= code < 500:
        return TemporaryFailure(detail, server_reply=full)
    enhanced = _enhanced(reply)
    if code == 530:
        # "Authentication required" (RFC 4954): the server will not relay for
        # an unauthenticated client.
        return RelayDenied(detail, server_reply=full, address=address)
    if command == "MAIL FROM":
        return SenderRejected(detail, server_reply=full, address=address)
    if enhanced is not None:
        # X.7.Y is security/policy (relaying denied, 5.7.1); others (5.1.1
        # no such user) are about the recipient.
        if enhanced.split(".")[1] == "7":
            return RelayDenied(detail, server_reply=full, address=address)
        return RecipientRejected(detail, server_reply=full, address=address)
    if code in (550, 551, 554):
        return RelayDenied(detail, server_reply=full, address=address)
    return RecipientRejected(detail, server_reply=full, address=address)


@contextmanager
def _smtp_errors(endpoint: Endpoint, phase: Phase) -> Iterator[None]:
    """smtplib and socket errors -> mail errors.

    smtplib's exceptions are OSError subclasses, so they are handled before
    the generic socket translation would swallow them.
    """
    try:
        yield
    except MailError:
        raise
    except smtplib.SMTPServerDisconnected as exc:
        # smtplib turns read errors (timeouts included) into this; the socket
        # error it came from says which fault it was.
        cause = exc.__context__
        if isinstance(cause, OSError) and not isinstance(cause, smtplib.SMTPException):
            raise net.translate_os_error(cause, endpoint, phase) from exc
        raise ConnectionLost(
            f"{endpoint.host}:{endpoint.port} closed the connection ({phase})", phase=phase
        ) from exc
    except smtplib.SMTPResponseException as exc:
        full = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        if 400 <= exc.smtp_code < 500:
            raise TemporaryFailure(
                f"temporary failure ({phase}): {full}", server_reply=full
            ) from exc
        raise ProtocolError(
            f"SMTP error ({phase}): {full}", phase=phase, server_reply=full
        ) from exc
    except smtplib.SMTPException as exc:
        raise ProtocolError(f"SMTP error ({phase}): {exc}", phase=phase) from exc
    except OSError as exc:
        raise net.translate_os_error(exc, endpoint, phase) from exc


def _enhanced(reply: str) -> str | None:
    match = _ENHANCED.match(reply)
    if match is None:
        return None
    return f"{match['cls']}.{match['subject']}.{match['detail']}"


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return reply
