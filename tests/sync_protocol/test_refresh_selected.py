"""refresh_selected: the selected folder's figures by STATUS instead of a new SELECT."""

from __future__ import annotations

from typing import Any

from postroom.mail.imap_sync import ImapSyncSession
from tests.servers import Dovecot, DovecotUser
from tests.sync_protocol.conftest import ImapOpener
from tests.sync_protocol.messages import make_message


def count_selects(session: ImapSyncSession, monkeypatch: Any) -> list[str]:
    calls: list[str] = []
    real = session.select

    def select(folder: str, readonly: bool = True) -> Any:
        calls.append(folder)
        return real(folder, readonly)

    monkeypatch.setattr(session, "select", select)
    return calls


def test_the_selected_folder_is_refreshed_without_selecting_again(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener, monkeypatch: Any
) -> None:
    dovecot.append(user.name, "INBOX", make_message(0, 1_000))
    session = open_imap()
    first = session.select("INBOX")
    selects = count_selects(session, monkeypatch)
    new_uid = dovecot.append(user.name, "INBOX", make_message(1, 1_000))
    status = session.refresh_selected("INBOX")
    assert selects == []
    assert status.uidvalidity == first.uidvalidity and status.readonly
    assert status.uidnext == new_uid + 1 and status.exists == 2
    assert first.highestmodseq is not None and status.highestmodseq is not None
    assert status.highestmodseq > first.highestmodseq
    assert session.selected == status
    assert session.uids_after(first.uidnext - 1) == [new_uid]


def test_another_or_a_writable_folder_is_selected(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener, monkeypatch: Any
) -> None:
    dovecot.create_folder(user.name, "Archive")
    session = open_imap()
    session.select("INBOX", readonly=False)
    selects = count_selects(session, monkeypatch)
    assert session.refresh_selected("INBOX").readonly  # was read-write: selected again
    assert session.refresh_selected("Archive").name == "Archive"
    assert selects == ["INBOX", "Archive"]
