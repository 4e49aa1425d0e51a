"""pytest fixtures for the real test servers. Load with ``pytest_plugins = ["tests.servers.fixtures"]``.

Session-scoped fixtures are per process, so under pytest-xdist every worker gets its own CA,
Dovecot and SMTP servers (on its own free ports). Nothing here needs Django.

Shared session servers keep state between tests: prefer ``dovecot_user`` (a fresh mailbox on
the shared Dovecot) and ``smtp_server.reset()`` (or a factory) where a test must start clean.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .certs import CertSet, make_cert_set
from .dovecot import DOVECOT_BIN, Dovecot, DovecotUser
from .smtp import SmtpServer
from .sockets import ClosedPort, SilentServer
from .users import ALICE, ALICE_PASSWORD

DovecotFactory = Callable[..., Dovecot]
SmtpServerFactory = Callable[..., SmtpServer]


def _require_dovecot() -> None:
    if shutil.which(DOVECOT_BIN) is None:
        # Fail, never skip: CI installs Dovecot through ./scripts/test, so a
        # missing binary is a broken install step that must not hide.
        pytest.fail(
            f"Dovecot is not installed ({DOVECOT_BIN}); run ./scripts/test, which installs "
            "dovecot-imapd and dovecot-pop3d"
        )


def _with_alice(server: Dovecot) -> Dovecot:
    server.add_user(ALICE, ALICE_PASSWORD)
    server.create_folder(ALICE, "Archive")
    return server


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    """This session's CA and server certificates (valid, expired, wrong_host, self_signed,
    untrusted_ca) as PEM files."""
    return make_cert_set(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def dovecot(certs: CertSet) -> Iterator[Dovecot]:
    """A running Dovecot with the valid certificate and user ``alice@example.test`` /
    ``secret-alice`` (INBOX and ``Archive``). ``dovecot.untrusted_host`` refuses plaintext."""
    _require_dovecot()
    server = Dovecot(certs)
    try:
        yield _with_alice(server.start())
    finally:
        # Also after a failed start, so its temp directory does not linger.
        server.stop()


@pytest.fixture
def dovecot_user(dovecot: Dovecot) -> DovecotUser:
    """A new user with an empty INBOX on the shared ``dovecot``."""
    return dovecot.new_user()


@pytest.fixture
def dovecot_factory(certs: CertSet) -> Iterator[DovecotFactory]:
    """``make(**options) -> Dovecot``: start another Dovecot (options as for
    :class:`~tests.servers.dovecot.Dovecot`, e.g. ``cert="expired"``, ``ssl=False``,
    ``plaintext_refused=True``) with alice and ``Archive``; stopped at teardown."""
    _require_dovecot()
    started: list[Dovecot] = []

    def make(**options: Any) -> Dovecot:
        server = Dovecot(certs, **options)
        started.append(server)
        return _with_alice(server.start())

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server_factory(certs: CertSet) -> Iterator[SmtpServerFactory]:
    """``make(**options) -> SmtpServer``: start an SMTP server (options as for
    :class:`~tests.servers.smtp.SmtpServer`, e.g. ``mode="implicit"``, ``deny_relay=True``,
    ``users={...}``); stopped at teardown."""
    started: list[SmtpServer] = []

    def make(**options: Any) -> SmtpServer:
        server = SmtpServer(certs, **options)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def smtp_server(certs: CertSet) -> Iterator[SmtpServer]:
    """Submission-style SMTP: plain port with STARTTLS, AUTH (after STARTTLS) for alice.
    Accepts any recipient. Shared: call ``reset()`` to forget earlier messages."""
    with SmtpServer(certs, mode="starttls", users={ALICE: ALICE_PASSWORD}) as server:
        yield server


@pytest.fixture(scope="session")
def smtps_server(certs: CertSet) -> Iterator[SmtpServer]:
    """Implicit-TLS SMTP (SMTPS) with AUTH for alice. Accepts any recipient."""
    with SmtpServer(certs, mode="implicit", users={ALICE: ALICE_PASSWORD}) as server:
        yield server


@pytest.fixture(scope="session")
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections and never sends anything."""
    with SilentServer() as server:
        yield server.port


@pytest.fixture(scope="session")
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connecting is refused at once (ECONNREFUSED)."""
    with ClosedPort() as port:
        yield port.port
