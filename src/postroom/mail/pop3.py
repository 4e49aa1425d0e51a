"""POP3 connect and login on top of poplib.

poplib refuses lines over 2,048 bytes (``poplib._MAXLINE``); that is fine for
connecting and logging in, which is all this module does today. Retrieving
real mail needs a reader without that limit.
"""

from __future__ import annotations

import logging
import poplib
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from postroom.mail import net
from postroom.mail.auth import check_password_encoding, check_plaintext_allowed
from postroom.mail.errors import (
    AuthError,
    ConnectionLost,
    MailError,
    Phase,
    PlaintextRefused,
    ProtocolError,
    StartTLSUnavailable,
    TemporaryFailure,
)
from postroom.mail.tls import make_context
from postroom.mail.types import Credentials, Endpoint, Security

log = logging.getLogger(__name__)

# "-ERR [CODE] text" (RFC 2449 and RFC 3206 response codes).
_RESP_CODE = re.compile(r"^-ERR \[(?P<code>[A-Z0-9/-]+)\]\s*(?P<text>.*)$", re.DOTALL)
_TEMPORARY_CODES = frozenset({"SYS/TEMP", "IN-USE", "LOGIN-DELAY"})
# poplib's own limit (poplib._MAXLINE, not public): keep it for login replies.
_MAXLINE = 2048


class _POP3(poplib.POP3):
    """poplib with our socket: source address, TCP_NODELAY, implicit TLS."""

    def __init__(self, endpoint: Endpoint, context: ssl.SSLContext | None) -> None:
        self._endpoint = endpoint
        self._context = context
        try:
            super().__init__(endpoint.host, endpoint.port, timeout=endpoint.timeout)
        except BaseException:
            # poplib leaves the socket open when the greeting fails.
            sock: socket.socket | None = getattr(self, "sock", None)
            if sock is not None:
                sock.close()
            raise

    def _create_socket(self, timeout: float | None) -> socket.socket:
        with net.translated(self._endpoint, Phase.CONNECT):
            sock = net.open_socket(self._endpoint)
        if self._context is None:
            return sock
        with net.translated(self._endpoint, Phase.TLS):
            return net.wrap_tls(sock, self._context, self._endpoint.host)

    def _getline(self) -> tuple[bytes, int]:
        # As poplib's, except that end of stream is ConnectionLost rather
        # than an error_proto indistinguishable from a server's -ERR.
        line = self.file.readline(_MAXLINE + 1)
        if len(line) > _MAXLINE:
            raise poplib.error_proto("line too long")
        if not line:
            # poplib sets ``welcome`` once the greeting has been read.
            phase = Phase.COMMAND if hasattr(self, "welcome") else Phase.GREETING
            raise ConnectionLost(
                f"{self._endpoint.host}:{self._endpoint.port} closed the connection ({phase})",
                phase=phase,
            )
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class Pop3Connection:
    """A connected POP3 session; authenticated once :meth:`login` returned."""

    def __init__(self, pop: poplib.POP3, endpoint: Endpoint, tls: bool) -> None:
        self.pop = pop
        self.endpoint = endpoint
        self.tls = tls

    def capabilities(self) -> dict[str, list[str]]:
        """CAPA (RFC 2449); empty for servers that predate it."""
        try:
            with net.translated(self.endpoint, Phase.COMMAND):
                return self.pop.capa()
        except poplib.error_proto as exc:
            log.debug("POP3 CAPA not supported: %s", exc)
            return {}

    def login(self, credentials: Credentials) -> None:
        check_password_encoding(credentials)
        check_plaintext_allowed(self.endpoint)
        try:
            with net.translated(self.endpoint, Phase.LOGIN):
                self.pop.user(credentials.username)
                self.pop.pass_(credentials.password)
        except poplib.error_proto as exc:
            raise self._login_error(_text(exc)) from exc

    def _login_error(self, reply: str) -> MailError:
        match = _RESP_CODE.match(reply)
        code = match.group("code") if match else None
        # RFC 3206 has no "TLS required" code: Dovecot sends [AUTH] with a
        # text about SSL/TLS, and only before TLS is it that refusal.
        if code == "AUTH" and not self.tls and "SSL/TLS" in reply:
            return PlaintextRefused(
                "the server refuses login without TLS", by_server=True, server_reply=reply
            )
        if code in _TEMPORARY_CODES:
            return TemporaryFailure(f"login temporarily impossible: {reply}", server_reply=reply)
        return AuthError(f"login refused: {reply}", server_reply=reply)

    def close(self) -> None:
        try:
            with _pop_errors(self.endpoint, Phase.COMMAND):
                self.pop.quit()
        except MailError as exc:
            # QUIT on a broken connection fails; the socket must still be
            # closed and the original error (if any) wins.
            log.debug("POP3 QUIT failed, closing: %s", exc)
            try:
                self.pop.close()
            except OSError as close_exc:
                # A failed STLS handshake leaves a detached socket (EBADF).
                log.debug("POP3 close failed: %s", close_exc)


def connect(endpoint: Endpoint) -> Pop3Connection:
    """Connect, read the greeting and, for STARTTLS, send STLS. No login."""
    context = None if endpoint.security is Security.NONE else make_context(endpoint.tls)
    implicit = context if endpoint.security is Security.SSL else None
    with _pop_errors(endpoint, Phase.GREETING):
        pop = _POP3(endpoint, implicit)
    connection = Pop3Connection(pop, endpoint, tls=implicit is not None)
    if endpoint.security is Security.STARTTLS:
        assert context is not None
        try:
            _stls(connection, context)
        except BaseException:
            connection.close()
            raise
    return connection


def _stls(connection: Pop3Connection, context: ssl.SSLContext) -> None:
    if "STLS" not in connection.capabilities():
        raise StartTLSUnavailable(
            f"{connection.endpoint.host}:{connection.endpoint.port} does not offer STLS"
        )
    with _pop_errors(connection.endpoint, Phase.TLS):
        connection.pop.stls(context)
    connection.tls = True


@contextmanager
def session(endpoint: Endpoint, credentials: Credentials) -> Iterator[Pop3Connection]:
    """Connected, logged-in session; QUIT on exit."""
    connection = connect(endpoint)
    try:
        connection.login(credentials)
        yield connection
    finally:
        connection.close()


@contextmanager
def _pop_errors(endpoint: Endpoint, phase: Phase) -> Iterator[None]:
    try:
        with net.translated(endpoint, phase):
            yield
    except poplib.error_proto as exc:
        reply = _text(exc)
        if phase is Phase.GREETING and reply.startswith("-ERR"):
            raise TemporaryFailure(
                f"server refused the session: {reply}", server_reply=reply
            ) from exc
        raise ProtocolError(
            f"unexpected POP3 reply ({phase}): {reply}", phase=phase, server_reply=reply
        ) from exc


def _text(exc: poplib.error_proto) -> str:
    first = exc.args[0] if exc.args else ""
    if isinstance(first, bytes):
        return first.decode("utf-8", "replace")
    return str(first)
