"""Sessions against the shared real Dovecot (tests/servers), over IMAPS/POP3S with the run's CA."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from postroom.mail.imap_sync import ImapSyncSession
from postroom.mail.pop3_sync import Pop3SyncSession
from postroom.mail.types import Credentials, Endpoint, Protocol, Security, TLSPolicy
from tests.servers import Dovecot, DovecotUser
from tests.servers.proxy import TcpProxy

# Generous for a loaded machine; tests that wait for a timeout on purpose set their own.
TIMEOUT = 5.0

ImapOpener = Callable[..., ImapSyncSession]
ProxyFactory = Callable[..., TcpProxy]


def imaps_endpoint(
    dovecot: Dovecot, port: int | None = None, security: Security = Security.SSL, **fields: Any
) -> Endpoint:
    fields.setdefault("timeout", TIMEOUT)
    default = dovecot.imaps_port if security is Security.SSL else dovecot.imap_port
    return Endpoint(
        Protocol.IMAP,
        "localhost",  # the name in Dovecot's certificate; verification stays on
        port or default,
        security,
        TLSPolicy(ca_pem=dovecot.ca_pem),
        **fields,
    )


def pop3_endpoint(
    dovecot: Dovecot, security: Security = Security.SSL, port: int | None = None, **fields: Any
) -> Endpoint:
    fields.setdefault("timeout", TIMEOUT)
    default = dovecot.pop3s_port if security is Security.SSL else dovecot.pop3_port
    return Endpoint(
        Protocol.POP3,
        "localhost",
        port or default,
        security,
        TLSPolicy(ca_pem=dovecot.ca_pem),
        **fields,
    )


def creds(user: DovecotUser) -> Credentials:
    return Credentials(user.name, user.password)


@pytest.fixture
def user(dovecot: Dovecot) -> DovecotUser:
    """A fresh mailbox per test, so tests never see each other's mail."""
    return dovecot.new_user("sync")


@pytest.fixture
def open_imap(dovecot: Dovecot, user: DovecotUser) -> Iterator[ImapOpener]:
    """``open_imap(**endpoint_fields, qresync=True)``: a session as ``user``; closed at teardown."""
    sessions: list[ImapSyncSession] = []

    def make(*, qresync: bool = True, **fields: Any) -> ImapSyncSession:
        session = ImapSyncSession(imaps_endpoint(dovecot, **fields), creds(user), qresync=qresync)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def pop3_session(dovecot: Dovecot, user: DovecotUser) -> Callable[..., Pop3SyncSession]:
    def make(security: Security = Security.SSL, **fields: Any) -> Pop3SyncSession:
        return Pop3SyncSession(pop3_endpoint(dovecot, security, **fields), creds(user))

    return make


@pytest.fixture
def proxy_factory() -> Iterator[ProxyFactory]:
    """``make(port, **options)``: a :class:`TcpProxy` to localhost:port; stopped at teardown."""
    started: list[TcpProxy] = []

    def make(port: int, **options: Any) -> TcpProxy:
        proxy = TcpProxy("127.0.0.1", port, **options).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()
