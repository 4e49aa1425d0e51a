"""Broken networks: a real TCP proxy between the session and Dovecot cuts or stalls it.

A lost connection must surface quickly as ConnectionLost (temporary), never as a hang, and a new
session must be able to resume from what was stored.
"""

from __future__ import annotations

import threading
import time

import pytest

from postroom.mail.errors import ConnectionLost
from postroom.mail.imap_sync import ImapSyncSession
from postroom.mail.pop3_sync import Pop3SyncSession
from tests.servers import Dovecot, DovecotUser
from tests.sync_protocol.conftest import ProxyFactory, creds, imaps_endpoint, pop3_endpoint
from tests.sync_protocol.messages import make_message

MESSAGES = 30
SIZE = 100_000


@pytest.fixture
def mailbox(dovecot: Dovecot, user: DovecotUser) -> dict[int, bytes]:
    with dovecot.imap(user.name) as client:
        client.multiappend("INBOX", [make_message(i, SIZE) for i in range(MESSAGES)])
    return dovecot.messages(user.name)


def proxied_session(
    dovecot: Dovecot, user: DovecotUser, port: int, timeout: float = 5.0
) -> ImapSyncSession:
    return ImapSyncSession(imaps_endpoint(dovecot, port=port, timeout=timeout), creds(user))


@pytest.mark.parametrize("reset", [False, True])
def test_cut_mid_fetch_then_resume(
    dovecot: Dovecot,
    user: DovecotUser,
    mailbox: dict[int, bytes],
    proxy_factory: ProxyFactory,
    reset: bool,
) -> None:
    proxy = proxy_factory(dovecot.imaps_port)
    stored: dict[int, bytes] = {}
    session = proxied_session(dovecot, user, proxy.port)
    session.select("INBOX")
    uids = session.uids_after(0)
    if not reset:
        # About a third of the way in, in the middle of a message literal.
        proxy.cut_after(MESSAGES * SIZE // 3 + SIZE // 2)
    started = time.monotonic()
    with pytest.raises(ConnectionLost) as caught:
        for batch in session.fetch(uids, batch_size=4):
            for message in batch:
                stored[message.uid] = message.raw
            if reset and len(stored) >= 8:
                proxy.cut(reset=True)  # on demand, while the next batch streams
    elapsed = time.monotonic() - started
    assert caught.value.temporary
    assert elapsed < 2, elapsed  # the endpoint timeout (5 s) was not needed
    assert 0 < len(stored) < MESSAGES
    # The broken session refuses work at once and closes without waiting.
    with pytest.raises(ConnectionLost):
        session.noop()
    started = time.monotonic()
    session.close()
    assert time.monotonic() - started < 0.5

    # Resume from the highest UID stored, as the engine does.
    with proxied_session(dovecot, user, proxy.port) as again:
        again.select("INBOX")
        rest = again.uids_after(max(stored))
        for batch in again.fetch(rest):
            for message in batch:
                assert message.uid not in stored  # no duplicates
                stored[message.uid] = message.raw
    assert stored == mailbox


def test_stalled_connection_times_out(
    dovecot: Dovecot, user: DovecotUser, mailbox: dict[int, bytes], proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(dovecot.imaps_port)
    with proxied_session(dovecot, user, proxy.port, timeout=1.0) as session:
        session.select("INBOX")
        batches = session.fetch(session.uids_after(0), batch_size=2)
        next(batches)
        proxy.stall()  # nothing closes: only our read timeout can notice
        started = time.monotonic()
        with pytest.raises(ConnectionLost) as caught:
            for _batch in batches:
                pass
        elapsed = time.monotonic() - started
    assert "no data for 1 s" in caught.value.detail
    assert elapsed < 3, elapsed


def test_cut_during_idle(dovecot: Dovecot, user: DovecotUser, proxy_factory: ProxyFactory) -> None:
    proxy = proxy_factory(dovecot.imaps_port)
    with proxied_session(dovecot, user, proxy.port) as session:
        session.select("INBOX")
        timer = threading.Timer(0.3, proxy.cut)
        timer.start()
        started = time.monotonic()
        with pytest.raises(ConnectionLost):
            session.idle_wait(30)
        timer.join()
    assert time.monotonic() - started < 2


def test_pop3_cut_mid_retrieve(
    dovecot: Dovecot, user: DovecotUser, proxy_factory: ProxyFactory
) -> None:
    dovecot.append(user.name, "INBOX", make_message(1, 1_000_000))
    proxy = proxy_factory(dovecot.pop3s_port)
    endpoint = pop3_endpoint(dovecot, port=proxy.port)
    with Pop3SyncSession(endpoint, creds(user)) as session:
        proxy.cut_after(300_000)
        started = time.monotonic()
        with pytest.raises(ConnectionLost):
            session.retrieve(1)
        assert time.monotonic() - started < 2
        with pytest.raises(ConnectionLost):
            session.stat()
    # Nothing was deleted, and a new session through the proxy works.
    with Pop3SyncSession(endpoint, creds(user)) as session:
        assert session.stat().messages == 1
