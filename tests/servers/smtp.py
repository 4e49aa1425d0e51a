"""An aiosmtpd SMTP server in a background thread, with the knobs outgoing-mail tests need.

* ``mode``: ``"plain"`` (no TLS at all), ``"starttls"`` (STARTTLS offered on a plain port,
  optionally required before MAIL) or ``"implicit"`` (SMTPS: TLS from the first byte).
* AUTH PLAIN and LOGIN, checked against a dict of users. By default AUTH is only offered
  after STARTTLS in ``starttls`` mode (as real submission servers do) and always in the
  other modes; ``users=None`` or ``advertise_auth=False`` leaves AUTH out of EHLO and answers
  the AUTH command with 503.
* ``deny_relay=True``: RCPT TO outside ``local_domains`` answers ``554 5.7.1 Relay access
  denied`` unless the session authenticated (or always, with
  ``allow_authenticated_relay=False``).
* Fault injection: :meth:`SmtpServer.fail_next` makes the next EHLO/HELO/MAIL/RCPT/DATA/
  AUTH/STARTTLS/RSET/NOOP/QUIT (or ``CONNECT``: the greeting) answer with a given reply;
  :meth:`SmtpServer.drop_next` closes the connection at that point instead. ``DATA`` means
  the reply after the message body (what ``handle_DATA`` returns in aiosmtpd terms), so the
  client has sent the whole message when it gets the error.
* Every accepted message is recorded in :attr:`SmtpServer.messages`; every AUTH attempt in
  :attr:`SmtpServer.auth_attempts`.

The listening socket is bound by us (port 0, kernel-chosen) and handed to asyncio, so there
is no window in which another process could take the port.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .certs import CertKind, CertSet

# aiosmtpd logs every connection at INFO from its own thread, often after
# pytest has closed the stream a test captured ("--- Logging error ---" in CI
# logs); its warnings and errors still show.
logging.getLogger("mail.log").setLevel(logging.WARNING)

SmtpMode = Literal["plain", "starttls", "implicit"]
ADDRESS = "127.0.0.1"
RELAY_DENIED = "554 5.7.1 Relay access denied"
AUTH_NOT_ENABLED = "503 5.5.1 Error: authentication not enabled"
INJECTABLE = frozenset(
    {"CONNECT", "EHLO", "HELO", "MAIL", "RCPT", "DATA", "AUTH", "STARTTLS", "RSET", "NOOP", "QUIT"}
)
# A reply of None in the injection queue means "drop the connection".
_Injection = str | None


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted (after the final 250 to DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes = field(repr=False)
    mail_options: tuple[str, ...]
    rcpt_options: tuple[str, ...]
    authenticated_as: str | None
    tls: bool
    helo: str | None
    peer: Any

    @property
    def message(self) -> email.message.EmailMessage:
        """The data parsed with ``policy.default``."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


@dataclass(frozen=True)
class AuthAttempt:
    mechanism: str
    login: str
    success: bool
    tls: bool


class SmtpServer:
    """A test SMTP server; see the module docstring. Use :meth:`start`/:meth:`stop` or ``with``.

    Args:
        certs: the session's CertSet (needed for ``starttls`` and ``implicit``).
        mode: ``"plain"``, ``"starttls"`` or ``"implicit"``.
        cert: which server certificate to present.
        users: ``{login: password}`` for AUTH PLAIN/LOGIN; None offers no AUTH at all.
        advertise_auth: False leaves AUTH out of EHLO and refuses the AUTH command.
        auth_require_tls: AUTH only over TLS; default True in ``starttls`` mode, else False.
        auth_required: MAIL FROM before AUTH is answered ``530 5.7.0 Authentication required``.
        require_starttls: commands other than EHLO/STARTTLS/QUIT answered 530 before STARTTLS.
        deny_relay: refuse recipients outside ``local_domains`` (see module docstring).
        allow_authenticated_relay: with ``deny_relay``, authenticated sessions may relay.
        local_domains: domains that are "ours" for ``deny_relay``.
        smtputf8: advertise SMTPUTF8 and accept UTF-8 addresses.
        data_size_limit: advertised SIZE; bigger messages get 552.
        hostname: the name in the greeting and EHLO reply.
    """

    def __init__(
        self,
        certs: CertSet | None = None,
        *,
        mode: SmtpMode = "plain",
        cert: CertKind = "valid",
        users: Mapping[str, str] | None = None,
        advertise_auth: bool = True,
        auth_require_tls: bool | None = None,
        auth_required: bool = False,
        require_starttls: bool = False,
        deny_relay: bool = False,
        allow_authenticated_relay: bool = True,
        local_domains: Iterable[str] = ("example.test",),
        smtputf8: bool = True,
        data_size_limit: int | None = 32 * 1024 * 1024,
        hostname: str = "localhost",
    ) -> None:
        if mode not in ("plain", "starttls", "implicit"):
            raise ValueError(f"unknown SMTP mode {mode!r}")
        if mode != "plain" and certs is None:
            raise ValueError(f"mode {mode!r} needs a CertSet")
        self.certs = certs
        self.mode: SmtpMode = mode
        self.cert_kind: CertKind = cert
        self.users: dict[str, str] = dict(users) if users is not None else {}
        self.auth_enabled = users is not None and advertise_auth
        self.auth_require_tls = mode == "starttls" if auth_require_tls is None else auth_require_tls
        self.auth_required = auth_required
        self.require_starttls = require_starttls
        self.deny_relay = deny_relay
        self.allow_authenticated_relay = allow_authenticated_relay
        self.local_domains = frozenset(d.lower() for d in local_domains)
        self.smtputf8 = smtputf8
        self.data_size_limit = data_size_limit
        self.hostname = hostname

        self.host = "localhost"
        self.address = ADDRESS
        self.port = 0
        self.messages: list[ReceivedMessage] = []
        self.auth_attempts: list[AuthAttempt] = []
        self._lock = threading.Condition()
        self._injections: dict[str, deque[_Injection]] = {}
        self._controller: _Controller | None = None

    # ----------------------------------------------------------------- properties

    @property
    def ca_file(self) -> Path:
        return self._need_certs().ca_file

    @property
    def ca_pem(self) -> str:
        return self._need_certs().ca_pem

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _need_certs(self) -> CertSet:
        if self.certs is None:
            raise RuntimeError("this SMTP server was made without a CertSet")
        return self.certs

    def __repr__(self) -> str:
        return f"<SmtpServer {self.mode} {self.host}:{self.port} auth={self.auth_enabled}>"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> SmtpServer:
        if self._controller is not None:
            return self
        tls_ctx = (
            self._need_certs().server_context(self.cert_kind) if self.mode != "plain" else None
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ADDRESS, 0))
        self.port = sock.getsockname()[1]
        controller = _Controller(
            self,
            sock,
            _Handler(self),
            ssl_context=tls_ctx if self.mode == "implicit" else None,
            server_hostname=self.hostname,
            tls_context=tls_ctx if self.mode == "starttls" else None,
            require_starttls=self.require_starttls,
            auth_required=self.auth_required,
            # Checked by _SMTP itself; passing False here would make aiosmtpd warn.
            auth_require_tls=True,
            authenticator=self._authenticate,
            enable_SMTPUTF8=self.smtputf8,
            data_size_limit=self.data_size_limit,
        )
        try:
            controller.start()
        except BaseException:
            sock.close()
            raise
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- test controls

    def fail_next(self, command: str, reply: str, *, times: int = 1) -> None:
        """Answer the next ``times`` ``command``\\s with ``reply`` (e.g. ``"451 4.3.0 Later"``)."""
        if not reply[:3].isdigit():
            raise ValueError(f"reply must start with a 3-digit code: {reply!r}")
        self._inject(command, reply, times)

    def drop_next(self, command: str, *, times: int = 1) -> None:
        """Close the connection instead of answering the next ``times`` ``command``\\s."""
        self._inject(command, None, times)

    def _inject(self, command: str, reply: _Injection, times: int) -> None:
        verb = command.upper()
        if verb not in INJECTABLE:
            raise ValueError(f"cannot inject into {command!r}; choose from {sorted(INJECTABLE)}")
        with self._lock:
            self._injections.setdefault(verb, deque()).extend([reply] * times)

    def _take_injection(self, verb: str) -> tuple[bool, _Injection]:
        with self._lock:
            queue = self._injections.get(verb)
            if not queue:
                return False, None
            return True, queue.popleft()

    def add_user(self, login: str, password: str) -> None:
        self.users[login] = password

    set_password = add_user

    def reset(self) -> None:
        """Forget received messages, AUTH attempts and pending injected failures."""
        with self._lock:
            self.messages.clear()
            self.auth_attempts.clear()
            self._injections.clear()

    def wait_for_messages(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self.messages)} of {count} messages after {timeout}s")
                self._lock.wait(remaining)
            return list(self.messages)

    # ----------------------------------------------------------------- called by aiosmtpd

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = login in self.users and self.users[login] == password
        with self._lock:
            self.auth_attempts.append(AuthAttempt(mechanism, login, ok, _is_tls(server)))
        if ok:
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    def _record(self, message: ReceivedMessage) -> None:
        with self._lock:
            self.messages.append(message)
            self._lock.notify_all()


def _is_tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _Handler:
    """aiosmtpd handler hooks: EHLO filtering, relay policy, DATA failures, recording."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # With a 5-argument hook aiosmtpd leaves recording the EHLO name to us.
        session.host_name = hostname
        if self.owner.auth_enabled:
            return responses
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        owner = self.owner
        domain = address.rpartition("@")[2].lower()
        relay_ok = owner.allow_authenticated_relay and bool(session.authenticated)
        if owner.deny_relay and domain not in owner.local_domains and not relay_ok:
            return RELAY_DENIED
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        injected, reply = self.owner._take_injection("DATA")
        if injected:
            if reply is None:
                _drop(server)
                return "421 4.4.2 Connection dropped"  # never reaches the closed connection
            return reply
        assert envelope.mail_from is not None
        self.owner._record(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=envelope.original_content or b"",
                mail_options=tuple(envelope.mail_options),
                rcpt_options=tuple(envelope.rcpt_options),
                authenticated_as=session.auth_data if session.authenticated else None,
                tls=_is_tls(server),
                helo=session.host_name,
                peer=session.peer,
            )
        )
        return "250 2.0.0 OK: queued"


def _drop(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


class _SMTP(SMTP):
    """aiosmtpd's SMTP with injected failures and our AUTH policy."""

    def __init__(self, handler: _Handler, *, owner: SmtpServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner
        # Set after __init__: passing auth_require_tls=False with auth_required=True makes
        # aiosmtpd emit a security warning on every connection.
        self._auth_require_tls = owner.auth_require_tls
        # Wrap every command handler so an injected reply (or drop) can pre-empt it. DATA is
        # injected after the body instead, in _Handler.handle_DATA.
        for verb, method in list(self._smtp_methods.items()):
            if verb in INJECTABLE and verb != "DATA":
                self._smtp_methods[verb] = self._injectable(verb, method)

    def _injectable(self, verb: str, method: Any) -> Any:
        async def wrapper(arg: str | None) -> None:
            injected, reply = self._owner._take_injection(verb)
            if not injected:
                await method(arg)
            elif reply is None:
                _drop(self)
            else:
                await self.push(reply)

        return wrapper

    async def _handle_client(self) -> None:
        injected, reply = self._owner._take_injection("CONNECT")
        if injected:
            # A server that refuses the session says so instead of its greeting, then hangs up.
            if reply is not None:
                await self.push(reply)
            _drop(self)
            return
        await super()._handle_client()

    async def smtp_AUTH(self, arg: str) -> None:
        if not self._owner.auth_enabled:
            await self.push(AUTH_NOT_ENABLED)
            return
        await super().smtp_AUTH(arg)


class _Controller(Controller):
    """A Controller that serves on a socket we bound ourselves and builds our _SMTP."""

    def __init__(
        self,
        owner: SmtpServer,
        sock: socket.socket,
        handler: _Handler,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, hostname=ADDRESS, port=sock.getsockname()[1], **kwargs)
        self._owner = owner
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def factory(self) -> SMTP:
        return _SMTP(self.handler, owner=self._owner, **self.SMTP_kwargs)
