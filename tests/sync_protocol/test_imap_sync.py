"""ImapSyncSession against the real Dovecot over IMAPS (certificate verified)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from postroom.mail.errors import FolderMissing, PlaintextRefused
from postroom.mail.imap_sync import FetchedMessage, ImapSyncSession
from postroom.mail.types import Security
from tests.servers import Dovecot, DovecotUser
from tests.sync_protocol.conftest import ImapOpener
from tests.sync_protocol.messages import make_message


def fill(dovecot: Dovecot, user: DovecotUser, count: int, folder: str = "INBOX") -> list[int]:
    return [dovecot.append(user.name, folder, make_message(i, 2_000)) for i in range(count)]


def fetch_all(
    session: ImapSyncSession, uids: Iterable[int], **options: Any
) -> list[list[FetchedMessage]]:
    return list(session.fetch(uids, **options))


# ---------------------------------------------------------------- folders and state


def test_select_reports_folder_state(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    fill(dovecot, user, 3)
    session = open_imap()
    assert session.condstore and session.qresync
    status = session.select("INBOX")
    assert status.name == "INBOX"
    assert status.uidvalidity > 0
    assert status.uidnext == 4
    assert status.exists == 3
    assert status.highestmodseq is not None and status.highestmodseq > 0
    assert status.readonly
    assert session.select("INBOX", readonly=False).readonly is False
    assert session.selected == session.select("INBOX", readonly=False)


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.NONE])
def test_other_security_modes(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener, security: Security
) -> None:
    fill(dovecot, user, 2)
    session = open_imap(security=security, allow_plaintext_login=security is Security.NONE)
    session.select("INBOX")
    assert [m.uid for b in session.fetch(session.uids_after(0)) for m in b] == [1, 2]


def test_plaintext_login_refused_without_consent(open_imap: ImapOpener) -> None:
    with pytest.raises(PlaintextRefused):
        open_imap(security=Security.NONE)


def test_condstore_without_qresync(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    session = open_imap(qresync=False)
    assert session.condstore and not session.qresync
    assert session.select("INBOX").highestmodseq is not None


def test_missing_folder(open_imap: ImapOpener) -> None:
    session = open_imap()
    with pytest.raises(FolderMissing) as caught:
        session.select("Nope")
    assert caught.value.folder == "Nope"
    # The session survives a refused SELECT.
    assert session.select("INBOX").exists == 0


def test_list_folders_with_special_use_and_non_ascii(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    for folder in ("Archive", "Счета", "Archiv/Bestätigt"):
        dovecot.create_folder(user.name, folder)
    folders = {f.name: f for f in open_imap().list_folders()}
    assert {"INBOX", "Archive", "Счета", "Archiv", "Archiv/Bestätigt"} <= set(folders)
    assert folders["Archive"].special_use == "\\Archive"
    assert folders["INBOX"].special_use is None
    assert folders["Счета"].delimiter == "/"
    assert all(folders[n].selectable for n in ("INBOX", "Archive", "Счета", "Archiv/Bestätigt"))


def test_non_ascii_folder_select_and_fetch(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    dovecot.create_folder(user.name, "Счета/2025")
    raw = make_message(1, 3_000, subject="Rechnung")
    uid = dovecot.append(user.name, "Счета/2025", raw)
    session = open_imap()
    assert session.select("Счета/2025").exists == 1
    [[message]] = fetch_all(session, session.uids_after(0))
    assert (message.uid, message.raw) == (uid, raw)


# ---------------------------------------------------------------- searching


def test_uids_after_edge_cases(dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener) -> None:
    session = open_imap()
    session.select("INBOX")
    assert session.uids_after(0) == []  # empty folder
    fill(dovecot, user, 3)
    assert session.uids_after(0) == [1, 2, 3]
    assert session.uids_after(1) == [2, 3]
    # "4:*" means "4 up to the highest UID", i.e. 3:4, so the server returns 3.
    assert session.uids_after(3) == []
    assert session.uids_after(10) == []


def test_unseen_only(dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener) -> None:
    dovecot.append(user.name, "INBOX", make_message(1), flags=["\\Seen"])
    dovecot.append(user.name, "INBOX", make_message(2))
    dovecot.append(user.name, "INBOX", make_message(3), flags=["\\Seen"])
    dovecot.append(user.name, "INBOX", make_message(4))
    session = open_imap()
    session.select("INBOX")
    assert session.uids_after(0, unseen_only=True) == [2, 4]
    assert session.uids_after(2, unseen_only=True) == [4]
    assert session.newest_uids(1, unseen_only=True) == [4]


def test_newest_uids(dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener) -> None:
    fill(dovecot, user, 5)
    session = open_imap()
    session.select("INBOX")
    assert session.newest_uids(2) == [4, 5]
    assert session.newest_uids(50) == [1, 2, 3, 4, 5]
    assert session.newest_uids(0) == []


# ---------------------------------------------------------------- fetching


def test_fetch_mixed_sizes_in_batches(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    sizes = [500, 13_000, 2_000_000, 100, 70_000, 13_000, 250_000, 900, 13_000, 40_000, 5, 13_000]
    when = datetime(2024, 3, 5, 8, 30, 15, tzinfo=timezone(timedelta(hours=2)))
    raws = {}
    for i, size in enumerate(sizes):
        raw = make_message(i, size)
        flags = ["\\Flagged"] if i == 3 else []
        raws[dovecot.append(user.name, "INBOX", raw, flags=flags, when=when)] = raw
    session = open_imap()
    session.select("INBOX")
    batches = fetch_all(session, reversed(session.uids_after(0)), batch_size=5)
    assert [len(b) for b in batches] == [5, 5, 2]
    messages = [m for batch in batches for m in batch]
    assert [m.uid for m in messages] == sorted(raws)  # ascending whatever the input order
    for message in messages:
        assert message.raw == raws[message.uid]
        assert message.size == len(message.raw)
        assert message.internaldate == when.astimezone(UTC)
        assert message.modseq is not None
    assert messages[3].flags == {"\\Flagged"}
    assert all(not m.flags for i, m in enumerate(messages) if i != 3)


def test_fetch_batches_are_bounded_in_bytes(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    sizes = [300_000, 300_000, 2_000_000, 300_000, 300_000, 300_000, 10_000, 10_000]
    for i, size in enumerate(sizes):
        dovecot.append(user.name, "INBOX", make_message(i, size))
    session = open_imap()
    session.select("INBOX")
    batches = fetch_all(session, session.uids_after(0), batch_size=100, max_batch_bytes=1_000_000)
    # 1 and 2 fit; 3 is over the limit alone; 7 and 8 still fit after 4-6.
    assert [[m.uid for m in b] for b in batches] == [[1, 2], [3], [4, 5, 6, 7, 8]]
    for batch in batches:
        assert len(batch) == 1 or sum(m.size for m in batch) <= 1_000_000


def test_fetch_never_sets_seen(dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener) -> None:
    fill(dovecot, user, 4)
    session = open_imap()
    session.select("INBOX", readonly=False)  # EXAMINE would hide a missing PEEK
    messages = [m for b in session.fetch(session.uids_after(0)) for m in b]
    assert len(messages) == 4
    assert all("\\Seen" not in m.flags for m in messages)
    assert all("\\Seen" not in flags for flags in dovecot.flags(user.name).values())
    assert session.uids_after(0, unseen_only=True) == [1, 2, 3, 4]


def test_fetch_skips_uids_that_do_not_exist(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    fill(dovecot, user, 2)
    session = open_imap()
    session.select("INBOX")
    assert [m.uid for b in session.fetch([2, 7, 99]) for m in b] == [2]
    assert list(session.fetch([])) == []


def test_closing_fetch_early_keeps_the_session_usable(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    fill(dovecot, user, 6)
    session = open_imap()
    session.select("INBOX")
    batches = session.fetch(session.uids_after(0), batch_size=1)
    assert [m.uid for m in next(batches)] == [1]
    with pytest.raises(RuntimeError):
        session.noop()  # FETCH answers are still coming in
    batches.close()
    assert session.uids_after(4) == [5, 6]
    assert [m.uid for b in session.fetch([5, 6]) for m in b] == [5, 6]


# ---------------------------------------------------------------- flags and expunges


def test_changed_flags_since(dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener) -> None:
    fill(dovecot, user, 3)
    session = open_imap()
    modseq = session.select("INBOX").highestmodseq
    assert modseq is not None
    assert session.changed_flags_since(modseq) == {}
    with dovecot.imap(user.name) as other:
        other.select_folder("INBOX")
        other.add_flags([2], ["\\Seen"])
    assert session.changed_flags_since(modseq) == {2: {"\\Seen"}}
    # The next sync starts from the modseq its SELECT reports.
    later = session.select("INBOX").highestmodseq
    assert later is not None and later > modseq
    assert session.changed_flags_since(later) == {}


def test_flags_for_a_window(dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener) -> None:
    dovecot.append(user.name, "INBOX", make_message(1), flags=["\\Seen", "$Forwarded"])
    dovecot.append(user.name, "INBOX", make_message(2))
    dovecot.append(user.name, "INBOX", make_message(3), flags=["\\Answered"])
    session = open_imap()
    session.select("INBOX")
    assert session.flags_for(range(1, 3)) == {1: {"\\Seen", "$Forwarded"}, 2: frozenset()}
    assert session.flags_for([3, 40]) == {3: {"\\Answered"}}


@pytest.mark.parametrize("qresync", [True, False])
def test_expunged_since(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener, qresync: bool
) -> None:
    fill(dovecot, user, 6)
    session = open_imap(qresync=qresync)
    modseq = session.select("INBOX").highestmodseq
    with dovecot.imap(user.name) as other:
        other.select_folder("INBOX")
        other.delete_messages([2, 5])
        other.expunge()
    known = [1, 2, 3, 4, 5, 6]
    assert session.expunged_since(known, modseq) == {2, 5}  # VANISHED when qresync
    assert session.expunged_since(known) == {2, 5}  # UID SEARCH comparison
    assert session.expunged_since([1, 3]) == set()
    assert session.expunged_since(range(1, 7)) == {2, 5}


def test_add_and_remove_flags_are_seen_by_others(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    fill(dovecot, user, 3)
    session = open_imap()
    session.select("INBOX")
    with pytest.raises(RuntimeError):
        session.add_flags([1], ["\\Seen"])  # selected read-only
    session.select("INBOX", readonly=False)
    session.add_flags([1, 2], ["\\Seen", "\\Flagged"])
    session.add_flags([3], ["$Forwarded"])
    session.remove_flags([2], ["\\Seen"])
    assert dovecot.flags(user.name) == {
        1: ("\\Flagged", "\\Seen"),
        2: ("\\Flagged",),
        3: ("$Forwarded",),
    }
    with pytest.raises(ValueError):
        session.add_flags([1], ["two words"])
    # Our own STORE is not news for IDLE.
    assert session.noop() is False


# ---------------------------------------------------------------- waiting


def test_idle_wakes_soon_after_an_append(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    session = open_imap()
    session.select("INBOX")
    appended: list[float] = []

    def deliver() -> None:
        time.sleep(0.3)
        dovecot.append(user.name, "INBOX", make_message(1))
        appended.append(time.monotonic())

    thread = threading.Thread(target=deliver)
    thread.start()
    started = time.monotonic()
    woke = session.idle_wait(10)
    returned = time.monotonic()
    thread.join()
    assert woke is True
    # Dovecot waits 0.5 s before it notifies IDLE clients.
    assert returned - appended[0] < 1.2, returned - appended[0]
    assert returned - started < 3
    assert session.uids_after(0) == [1]  # IDLE was left cleanly


def test_idle_times_out(open_imap: ImapOpener) -> None:
    session = open_imap()
    session.select("INBOX")
    started = time.monotonic()
    assert session.idle_wait(0.8) is False
    assert 0.7 < time.monotonic() - started < 2.5
    assert session.noop() is False
    assert session.uids_after(0) == []


def test_change_reported_before_idle_is_not_missed(
    dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener
) -> None:
    session = open_imap()
    session.select("INBOX")
    dovecot.append(user.name, "INBOX", make_message(1))
    # The EXISTS for this arrives with the reply to some command before IDLE...
    session.flags_for([1])
    started = time.monotonic()
    # ...so waiting must return at once instead of sleeping through it.
    assert session.idle_wait(10) is True
    assert time.monotonic() - started < 0.3
    assert session.idle_wait(0.3) is False


def test_noop_reports_changes(dovecot: Dovecot, user: DovecotUser, open_imap: ImapOpener) -> None:
    session = open_imap()
    session.select("INBOX")
    assert session.noop() is False
    dovecot.append(user.name, "INBOX", make_message(1))
    assert session.noop() is True
    assert session.noop() is False
