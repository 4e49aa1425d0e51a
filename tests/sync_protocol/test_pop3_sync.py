"""Pop3SyncSession against the real Dovecot."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postroom.mail.errors import PlaintextRefused, ProtocolError
from postroom.mail.pop3_sync import Pop3Stat, Pop3SyncSession
from postroom.mail.types import Security
from tests.servers import Dovecot, DovecotUser
from tests.sync_protocol.messages import make_message

Opener = Callable[..., Pop3SyncSession]


def tricky_message() -> bytes:
    """A 5,000-byte line (poplib's limit is 2,048) and lines that need dot-stuffing."""
    return (
        b"From: a@example.test\r\nTo: b@example.test\r\nSubject: long line\r\n\r\n"
        + b"x" * 5_000
        + b"\r\n.\r\n..two dots\r\n.leading dot\r\nlast line\r\n"
    )


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS, Security.NONE])
def test_uidl_and_retrieve_long_lines(
    dovecot: Dovecot, user: DovecotUser, pop3_session: Opener, security: Security
) -> None:
    raws = [tricky_message(), make_message(2, 40_000, line_length=3_000)]
    for raw in raws:
        dovecot.append(user.name, "INBOX", raw)
    allow = security is Security.NONE  # 127.0.0.1: Dovecot lets it log in in clear
    with pop3_session(security, allow_plaintext_login=allow) as session:
        assert session.stat() == Pop3Stat(2, sum(len(r) for r in raws))
        ids = session.uidl()
        assert sorted(ids) == [1, 2] and len(set(ids.values())) == 2
        assert session.retrieve(1) == raws[0]
        assert session.retrieve(2) == raws[1]
        # The connection is still in step after the long reads.
        assert session.stat().messages == 2
    with pop3_session(security, allow_plaintext_login=allow) as again:
        assert again.uidl() == ids  # stable across sessions: what the ledger stores


def test_deletions_take_effect_only_at_quit(
    dovecot: Dovecot, user: DovecotUser, pop3_session: Opener
) -> None:
    for i in range(3):
        dovecot.append(user.name, "INBOX", make_message(i, 1_000))
    with pop3_session() as session:
        ids = session.uidl()
        session.delete(2)
        # Leaving without quit(): RSET, nothing deleted.
    with pop3_session() as session:
        assert session.uidl() == ids
        session.delete(2)
        with pytest.raises(ProtocolError) as caught:
            session.retrieve(2)  # marked as deleted in this session
        assert caught.value.server_reply and caught.value.server_reply.startswith("-ERR")
        session.quit()
    with pop3_session() as session:
        assert sorted(session.uidl().values()) == sorted([ids[1], ids[3]])
    assert len(dovecot.messages(user.name)) == 2


def test_exception_inside_the_block_deletes_nothing(
    dovecot: Dovecot, user: DovecotUser, pop3_session: Opener
) -> None:
    dovecot.append(user.name, "INBOX", make_message(1, 1_000))
    with pytest.raises(KeyError), pop3_session() as session:
        session.delete(1)
        raise KeyError("storing failed")
    with pop3_session() as session:
        assert session.stat().messages == 1


def test_missing_message(pop3_session: Opener) -> None:
    with pop3_session() as session:
        assert session.uidl() == {}
        with pytest.raises(ProtocolError):
            session.retrieve(1)
        assert session.stat() == Pop3Stat(0, 0)


def test_plaintext_login_refused_without_consent(dovecot: Dovecot, pop3_session: Opener) -> None:
    with pytest.raises(PlaintextRefused) as caught:
        pop3_session(Security.NONE, port=dovecot.pop3_port)
    assert caught.value.by_server is False
