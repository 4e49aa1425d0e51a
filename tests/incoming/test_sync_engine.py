"""The sync engine against a real Dovecot: what is stored, what is not, what is never done."""

from __future__ import annotations

import pytest

from postroom.incoming.actions import do_sync_account, status_for
from postroom.incoming.models import FolderState, Message, MessageLocation, SyncState
from tests.incoming.factory import make_message, make_messages

pytestmark = pytest.mark.django_db(transaction=True)


def server_uids(dovecot, user, folder="INBOX") -> set[int]:
    return set(dovecot.messages(user.name, folder))


def stored_uids(account, folder="INBOX") -> set[int]:
    return set(
        MessageLocation.objects.filter(folder__account=account, folder__name=folder).values_list(
            "uid", flat=True
        )
    )


def test_first_sync_stores_everything_once_and_second_sync_adds_nothing(
    dovecot, dovecot_user, imap_account_factory
):
    dovecot.bulk_load(dovecot_user.name, make_messages(120))
    account = imap_account_factory(dovecot_user)

    first = do_sync_account(account).result
    assert (first.fetched, first.stored, first.duplicates) == (120, 120, 0)
    assert stored_uids(account) == server_uids(dovecot, dovecot_user)
    assert Message.objects.filter(account=account).count() == 120

    second = do_sync_account(account).result
    assert (second.fetched, second.stored) == (0, 0)
    assert status_for(account).state == SyncState.IDLE
    # Replies were threaded by In-Reply-To, not by subject.
    reply = Message.objects.get(account=account, message_id="m2.0@example.org")
    parent = Message.objects.get(account=account, message_id="m1.0@example.org")
    assert reply.thread_id == parent.thread_id


def test_sync_never_marks_mail_read_on_the_server(dovecot, dovecot_user, imap_account_factory):
    dovecot.append(dovecot_user.name, "INBOX", make_message(1))
    account = imap_account_factory(dovecot_user)
    do_sync_account(account)
    assert all("\\Seen" not in flags for flags in dovecot.flags(dovecot_user.name).values())
    assert not Message.objects.get(account=account).seen


def test_unseen_option_and_initial_sync_count(dovecot, dovecot_user, imap_account_factory):
    for i in range(6):
        flags = ("\\Seen",) if i % 2 else ()
        dovecot.append(dovecot_user.name, "INBOX", make_message(i), flags=flags)
    unseen = imap_account_factory(dovecot_user, sync_option="unseen")
    do_sync_account(unseen)
    assert Message.objects.filter(account=unseen).count() == 3
    assert not Message.objects.filter(account=unseen, seen=True).exists()

    unseen.delete()
    newest = imap_account_factory(dovecot_user, initial_sync_count=2)
    do_sync_account(newest)
    assert stored_uids(newest) == set(sorted(server_uids(dovecot, dovecot_user))[-2:])
    # Later syncs take everything new after the initial window.
    dovecot.append(dovecot_user.name, "INBOX", make_message(99))
    do_sync_account(newest)
    assert len(stored_uids(newest)) == 3


def test_same_message_in_two_folders_is_one_message_with_two_locations(
    dovecot, dovecot_user, imap_account_factory
):
    dovecot.create_folder(dovecot_user.name, "Archive")
    raw = make_message(5)
    dovecot.append(dovecot_user.name, "INBOX", raw)
    dovecot.append(dovecot_user.name, "Archive", raw)
    account = imap_account_factory(dovecot_user, folders=["INBOX", "Archive"])
    result = do_sync_account(account).result
    assert (result.fetched, result.stored, result.duplicates) == (2, 1, 1)
    message = Message.objects.get(account=account)
    assert sorted(message.locations.values_list("folder__name", flat=True)) == ["Archive", "INBOX"]


def test_uidvalidity_reset_loses_nothing_and_duplicates_nothing(
    dovecot, dovecot_user, imap_account_factory
):
    dovecot.bulk_load(dovecot_user.name, make_messages(30))
    account = imap_account_factory(dovecot_user)
    do_sync_account(account)
    old_validity = FolderState.objects.get(account=account, name="INBOX").uidvalidity

    dovecot.reset_uidvalidity(dovecot_user.name)
    dovecot.append(dovecot_user.name, "INBOX", make_message(500, tag="new"))
    result = do_sync_account(account).result

    state = FolderState.objects.get(account=account, name="INBOX")
    assert state.uidvalidity != old_validity
    assert result.stored == 1  # only the new message is new; the 30 are recognised
    assert Message.objects.filter(account=account).count() == 31
    assert stored_uids(account) == server_uids(dovecot, dovecot_user)
    assert not MessageLocation.objects.filter(folder=state, uidvalidity=old_validity).exists()


def test_flags_follow_the_server(dovecot, dovecot_user, imap_account_factory):
    uid = dovecot.append(dovecot_user.name, "INBOX", make_message(1))
    account = imap_account_factory(dovecot_user)
    do_sync_account(account)
    with dovecot.imap(dovecot_user.name) as client:
        client.select_folder("INBOX")
        client.add_flags([uid], [b"\\Seen", b"\\Flagged"])
    do_sync_account(account)
    message = Message.objects.get(account=account)
    assert message.seen and message.flagged and not message.answered


def test_expunged_on_server_drops_the_location_not_the_message(
    dovecot, dovecot_user, imap_account_factory
):
    uid = dovecot.append(dovecot_user.name, "INBOX", make_message(1))
    account = imap_account_factory(dovecot_user)
    do_sync_account(account)
    with dovecot.imap(dovecot_user.name) as client:
        client.select_folder("INBOX")
        client.delete_messages([uid])
        client.expunge()
    do_sync_account(account)
    assert stored_uids(account) == set()
    assert Message.objects.filter(account=account).count() == 1
