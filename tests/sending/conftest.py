"""Helpers for the sending tests; the servers come from tests/servers/fixtures.py."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tests.servers.smtp as smtp_fixture
from postroom.mail.types import Credentials, Endpoint, Protocol, Security, TLSPolicy
from tests.servers import CertSet, SmtpServer

# Short enough to keep the suite fast, long enough for a loaded machine's TLS handshake.
TIMEOUT = 3.0
SENDER = "alice@example.test"

SenderEndpoint = Callable[..., Endpoint]


@pytest.fixture
def endpoint_for(certs: CertSet) -> SenderEndpoint:
    """``endpoint_for(server, security=None, host="127.0.0.1", **fields)``: an Endpoint for a
    test SMTP server, trusting the run's CA; security follows the server's mode by default."""

    def make(
        server: SmtpServer, security: Security | None = None, host: str = "127.0.0.1", **fields: Any
    ) -> Endpoint:
        if security is None:
            security = {"plain": Security.NONE, "starttls": Security.STARTTLS}.get(
                server.mode, Security.SSL
            )
        fields.setdefault("tls", TLSPolicy(ca_pem=certs.ca_pem))
        fields.setdefault("timeout", TIMEOUT)
        return Endpoint(Protocol.SMTP, host, server.port, security, **fields)

    return make


@pytest.fixture
def pipelining(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make every test SMTP server advertise PIPELINING (aiosmtpd handles pipelined
    commands but does not say so), to exercise the pipelined path of SmtpSender.

    aiosmtpd writes each pipelined reply separately, and the fixture's sockets miss
    asyncio's TCP_NODELAY (its listening socket has proto 0, which asyncio's check skips),
    so Nagle on the server meets delayed ACKs on the client: ~40 ms per reply after the
    first. Real servers (Postfix, Exim) send pipelined replies in one write; here the
    server's connections get TCP_NODELAY instead.
    """
    original = smtp_fixture._Handler.handle_EHLO
    connection_made = smtp_fixture._SMTP.connection_made

    def nodelay_connection_made(self: Any, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection_made(self, transport)

    monkeypatch.setattr(smtp_fixture._SMTP, "connection_made", nodelay_connection_made)

    # aiosmtpd counts the hook's parameters, so they are spelled out.
    async def handle_EHLO(
        self: Any, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        out: list[str] = await original(self, server, session, envelope, hostname, responses)
        return [*out[:-1], "250-PIPELINING", out[-1]]

    monkeypatch.setattr(smtp_fixture._Handler, "handle_EHLO", handle_EHLO)
    yield


def message(subject: str = "Hello", body: bytes = b"Hi there.\r\n", **headers: str) -> bytes:
    lines = [f"From: {SENDER}", "To: bob@remote.test", f"Subject: {subject}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def creds(login: str, password: str) -> Credentials:
    return Credentials(login, password)
