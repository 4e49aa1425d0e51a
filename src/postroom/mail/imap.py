"""IMAP connect and login on top of IMAPClient.

``connect`` opens a session in the configured security mode (never falling
back to plaintext), ``ImapConnection.login`` authenticates, and
``check_folders`` confirms that folders exist. Sync code uses
``ImapConnection.client`` (an ``IMAPClient``) for everything else.
"""

from __future__ import annotations

import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

# IMAPClient ships no type hints. pyproject.toml ignores that for mypy; the
# ignore below keeps ``mypy --strict`` without that config quiet too.
from imapclient import IMAPClient  # type: ignore[import-untyped,unused-ignore]
from imapclient.exceptions import LoginError  # type: ignore[import-untyped,unused-ignore]

from postroom.mail import net
from postroom.mail.auth import check_password_encoding, check_plaintext_allowed
from postroom.mail.errors import (
    AuthError,
    AuthHint,
    ConnectionLost,
    FolderMissing,
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

# "[CODE ...] text" at the start of a tagged NO (RFC 5530 response codes).
_RESP_CODE = re.compile(r"^\[(?P<code>[A-Z0-9-]+)(?: [^\]]*)?\]\s*(?P<text>.*)$", re.DOTALL)


class _IMAP4(imaplib.IMAP4):
    """imaplib with our socket: source address, TCP_NODELAY, implicit TLS."""

    def __init__(self, endpoint: Endpoint, context: ssl.SSLContext | None) -> None:
        self._endpoint = endpoint
        self._context = context
        super().__init__(endpoint.host, endpoint.port, timeout=endpoint.timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        # Called by imaplib.IMAP4.open(); errors raised here escape the
        # constructor unchanged, so the phase is named here.
        with net.translated(self._endpoint, Phase.CONNECT):
            sock = net.open_socket(self._endpoint)
        if self._context is None:
            return sock
        with net.translated(self._endpoint, Phase.TLS):
            return net.wrap_tls(sock, self._context, self._endpoint.host)

    def readline(self) -> bytes:
        line = super().readline()
        if not line:
            # imaplib would raise a generic abort; a closed connection is a
            # different fault from a garbled reply.
            # imaplib sets ``welcome`` once the greeting has been read.
            phase = Phase.COMMAND if hasattr(self, "welcome") else Phase.GREETING
            raise ConnectionLost(
                f"{self._endpoint.host}:{self._endpoint.port} closed the connection ({phase})",
                phase=phase,
            )
        return line


class _Client(IMAPClient):  # type: ignore[misc]  # IMAPClient ships no type hints
    """IMAPClient whose imaplib object is ours (see ``_IMAP4``)."""

    def __init__(self, endpoint: Endpoint, context: ssl.SSLContext | None) -> None:
        self._endpoint = endpoint
        self._tls_context = context
        super().__init__(
            endpoint.host,
            endpoint.port,
            ssl=endpoint.security is Security.SSL,
            ssl_context=context,
            timeout=endpoint.timeout,
        )

    def _create_IMAP4(self) -> imaplib.IMAP4:
        # IMAPClient's documented constructor has no source address and no
        # TCP_NODELAY; this hook is where IMAPClient itself builds imaplib.
        implicit = self._tls_context if self._endpoint.security is Security.SSL else None
        return _IMAP4(self._endpoint, implicit)


class ImapConnection:
    """A connected IMAP session; authenticated once :meth:`login` returned."""

    def __init__(self, client: Any, endpoint: Endpoint) -> None:
        self.client: Any = client  # an IMAPClient
        self.endpoint = endpoint

    def capabilities(self) -> frozenset[str]:
        with _imap_errors(self.endpoint, Phase.COMMAND):
            caps: tuple[bytes, ...] = self.client.capabilities()
        return frozenset(c.decode("ascii", "replace").upper() for c in caps)

    def login(self, credentials: Credentials) -> None:
        check_password_encoding(credentials)
        check_plaintext_allowed(self.endpoint)
        caps = self.capabilities()
        if "LOGINDISABLED" in caps:
            raise PlaintextRefused(
                "the server disables LOGIN on this connection (LOGINDISABLED)", by_server=True
            )
        utf8_needed = not (credentials.username.isascii() and credentials.password.isascii())
        if utf8_needed and "AUTH=PLAIN" not in caps:
            # LOGIN strings are ASCII-only in IMAP4rev1; PLAIN is UTF-8.
            raise AuthError(
                "the password is not ASCII and the server offers no AUTH=PLAIN",
                hint=AuthHint.PASSWORD_NOT_ASCII,
            )
        try:
            with net.translated(self.endpoint, Phase.LOGIN):
                if utf8_needed:
                    self.client.plain_login(credentials.username, credentials.password)
                else:
                    self.client.login(credentials.username, credentials.password)
        except LoginError as exc:
            raise _login_error(exc) from exc

    def check_folders(self, folders: Iterable[str]) -> None:
        """Raise :class:`FolderMissing` for the first folder that does not exist."""
        for folder in folders:
            if not self.folder_exists(folder):
                raise FolderMissing(f"folder {folder!r} does not exist", folder=folder)

    def folder_exists(self, folder: str) -> bool:
        with _imap_errors(self.endpoint, Phase.COMMAND):
            # IMAPClient encodes the name to modified UTF-7 and decodes replies.
            listed: list[tuple[Any, Any, str]] = self.client.list_folders("", folder)
        # LIST takes a pattern: a name containing * or % could match others,
        # so compare names; INBOX is case-insensitive (RFC 3501 5.1).
        names = {name for _flags, _delimiter, name in listed}
        if folder.upper() == "INBOX":
            return any(name.upper() == "INBOX" for name in names)
        return folder in names

    def close(self) -> None:
        try:
            with _imap_errors(self.endpoint, Phase.COMMAND):
                self.client.logout()
        except MailError as exc:
            # Logging out of a broken connection fails; the socket must
            # still be closed and the original error (if any) wins.
            log.debug("IMAP logout failed, shutting down: %s", exc)
            try:
                self.client.shutdown()
            except OSError as shutdown_exc:
                log.debug("IMAP shutdown failed: %s", shutdown_exc)


def connect(endpoint: Endpoint) -> ImapConnection:
    """Connect, read the greeting and, for STARTTLS, upgrade. No login."""
    context = None if endpoint.security is Security.NONE else make_context(endpoint.tls)
    with _imap_errors(endpoint, Phase.GREETING):
        client = _Client(endpoint, context)
    connection = ImapConnection(client, endpoint)
    if endpoint.security is Security.STARTTLS:
        assert context is not None
        try:
            _starttls(connection, context)
        except BaseException:
            connection.close()
            raise
    return connection


def _starttls(connection: ImapConnection, context: ssl.SSLContext) -> None:
    if "STARTTLS" not in connection.capabilities():
        raise StartTLSUnavailable(
            f"{connection.endpoint.host}:{connection.endpoint.port} does not offer STARTTLS"
        )
    with _imap_errors(connection.endpoint, Phase.TLS):
        connection.client.starttls(context)


@contextmanager
def session(
    endpoint: Endpoint, credentials: Credentials, folders: Iterable[str] = ()
) -> Iterator[ImapConnection]:
    """Connected, logged-in session; folders checked; logged out on exit."""
    connection = connect(endpoint)
    try:
        connection.login(credentials)
        connection.check_folders(folders)
        yield connection
    finally:
        connection.close()


@contextmanager
def _imap_errors(endpoint: Endpoint, phase: Phase) -> Iterator[None]:
    """imaplib/IMAPClient and socket errors -> mail errors."""
    try:
        with net.translated(endpoint, phase):
            yield
    except imaplib.IMAP4.abort as exc:
        raise ProtocolError(f"unexpected IMAP reply ({phase}): {exc}", phase=phase) from exc
    except imaplib.IMAP4.error as exc:
        reply = _text(exc)
        if phase is Phase.GREETING and reply.startswith("* BYE"):
            # The server refuses the session (RFC 3501 7.1.5): overloaded or
            # shutting down.
            raise TemporaryFailure(
                f"server refused the session: {reply}", server_reply=reply
            ) from exc
        raise ProtocolError(
            f"IMAP command failed ({phase}): {reply}", phase=phase, server_reply=reply
        ) from exc


def _login_error(exc: LoginError) -> MailError:
    # IMAPClient re-raises imaplib's error as LoginError(str(e)); the original,
    # holding the server's own text, is the context.
    original = exc.__context__
    if isinstance(original, imaplib.IMAP4.abort):
        return ProtocolError(f"unexpected IMAP reply to LOGIN: {original}", phase=Phase.LOGIN)
    reply = _text(original) if original is not None else str(exc)
    match = _RESP_CODE.match(reply)
    code = match.group("code") if match else None
    if code == "PRIVACYREQUIRED":
        return PlaintextRefused(
            "the server refuses login without TLS (PRIVACYREQUIRED)",
            by_server=True,
            server_reply=reply,
        )
    if code in {"UNAVAILABLE", "INUSE", "LIMIT"}:
        return TemporaryFailure(f"login temporarily impossible: {reply}", server_reply=reply)
    return AuthError(f"login refused: {reply}", server_reply=reply, hint=_auth_hint(code, reply))


def _auth_hint(code: str | None, reply: str) -> AuthHint | None:
    if code == "EXPIRED":
        return AuthHint.PASSWORD_EXPIRED
    if code == "WEBALERT":
        return AuthHint.WEB_LOGIN_REQUIRED
    # Gmail has no response code for these, only [ALERT] with a fixed text.
    if code == "ALERT" and "application-specific password" in reply.lower():
        return AuthHint.APP_PASSWORD_REQUIRED
    if code == "ALERT" and "web browser" in reply.lower():
        return AuthHint.WEB_LOGIN_REQUIRED
    return None


def _text(exc: BaseException) -> str:
    """The server's words inside an imaplib error (args[0] is bytes or str)."""
    first = exc.args[0] if exc.args else ""
    if first is None:  # imaplib's error(welcome) when the greeting was "+ ..."
        return ""
    if isinstance(first, bytes):
        return first.decode("utf-8", "replace")
    return str(first)
