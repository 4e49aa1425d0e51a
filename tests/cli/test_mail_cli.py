"""``postroom sync`` and ``postroom messages list`` against the real Dovecot of tests/servers."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connection

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount
from postroom.cli.mail import ProgressBar
from postroom.incoming import leases
from postroom.incoming.models import Message, ParseState, SyncStatus
from postroom.incoming.watcher import Watcher
from tests.api.test_messages import html_mail, mail_with_attachment, make_account, plain_mail
from tests.cli.conftest import Result
from tests.servers.dovecot import Dovecot, DovecotUser

Run = Callable[..., Result]

NAME = "work-mail"


@pytest.fixture
def account(db: None, dovecot: Dovecot, dovecot_user: DovecotUser) -> EmailAccount:
    dovecot.create_folder(dovecot_user.name, "Archive")
    return make_account(dovecot, dovecot_user, name=NAME, folders=("INBOX", "Archive"))


def sync_json(run: Run, *args: str) -> dict[str, object]:
    result = run("sync", NAME, "--json", *args)
    assert result.code == 0, result.err
    # Exactly one JSON object on stdout; the progress bar, if any, is on stderr.
    data = json.loads(result.out)
    assert isinstance(data, dict)
    return data


@pytest.mark.django_db
def test_sync_then_list_then_sync_again(
    run: Run, account: EmailAccount, dovecot: Dovecot, dovecot_user: DovecotUser
) -> None:
    user = dovecot_user.name
    raws = [plain_mail("Hello"), mail_with_attachment(), html_mail()]
    uids = [dovecot.append(user, "INBOX", raw) for raw in raws]

    data = sync_json(run)
    assert set(data) == {"account", "fetched", "stored", "duplicates", "quarantined", "seconds"}
    assert data["account"] == NAME
    assert (data["fetched"], data["stored"], data["duplicates"], data["quarantined"]) == (
        3,
        3,
        0,
        0,
    )
    assert isinstance(data["seconds"], float)
    # Nothing was marked read on the server (B3).
    assert all("\\Seen" not in flags for flags in dovecot.flags(user).values())

    listed = run("messages", "list", "--account", NAME, "--json")
    assert listed.code == 0, listed.err
    entries = json.loads(listed.out)
    assert [(e["subject"], e["folder"], e["uid"]) for e in entries] == [
        ("Newsletter", "INBOX", uids[2]),
        ("Invoice attached", "INBOX", uids[1]),
        ("Hello", "INBOX", uids[0]),
    ]
    first = entries[1]
    assert first["message_id"] == "invoice-1@example.org"
    assert first["from"] == {"name": "Billing", "email": "billing@example.org"}
    assert first["date"].startswith("2024-03-01T10:00:00")
    assert first["size"] == len(raws[1])
    assert first["flags"] == {"seen": False, "flagged": False, "answered": False}
    assert first["imap_flags"] == []
    assert first["has_attachments"] is True

    again = sync_json(run)
    assert (again["fetched"], again["stored"], again["duplicates"]) == (0, 0, 0)

    # The same message in a second folder: fetched, held already, listed twice.
    archived = dovecot.append(user, "Archive", raws[0], flags=["\\Seen"])
    copied = sync_json(run, "--wait")
    assert (copied["fetched"], copied["stored"], copied["duplicates"]) == (1, 0, 1)
    entries = json.loads(run("messages", "list", "--account", NAME, "--json").out)
    hello = [(e["folder"], e["uid"], e["imap_flags"]) for e in entries if e["subject"] == "Hello"]
    assert hello == [("Archive", archived, ["\\Seen"]), ("INBOX", uids[0], [])]
    assert Message.objects.filter(account=account).count() == 3

    only_archive = json.loads(
        run("messages", "list", "--account", NAME, "--folder", "Archive", "--json").out
    )
    assert [(e["subject"], e["folder"]) for e in only_archive] == [("Hello", "Archive")]
    assert (
        len(json.loads(run("messages", "list", "--account", NAME, "--limit", "2", "--json").out))
        == 2
    )

    table = run("messages", "list", "--account", NAME)
    assert table.code == 0
    assert "Invoice attached" in table.out
    assert table.out.splitlines()[0].split()[:4] == ["DATE", "FLAGS", "FOLDER", "UID"]

    plain = run("sync", NAME)
    assert plain.code == 0, plain.err
    assert plain.out.startswith(f"Synced {NAME}: 0 fetched")


@pytest.mark.django_db
def test_quarantined_messages_are_counted(
    run: Run, account: EmailAccount, dovecot: Dovecot, dovecot_user: DovecotUser
) -> None:
    # Not a real parse failure (the parser never gives up on mail); the point is
    # the count in the JSON, so extraction is made to fail for this run.
    import postroom.incoming.parse_worker as worker

    def failing(message_id: int, path: str, limit: int | None) -> worker.Outcome:
        return worker.Outcome(message_id, None, "ValueError: broken on purpose")

    dovecot.append(dovecot_user.name, "INBOX", plain_mail("Broken"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(worker, "parse_one", failing)
        data = sync_json(run)
    assert (data["stored"], data["quarantined"]) == (1, 1)
    message = Message.objects.get(account=account)
    assert message.parse_state == ParseState.QUARANTINED
    entries = json.loads(run("messages", "list", "--account", NAME, "--json").out)
    assert entries[0]["parse_state"] == "quarantined"


@pytest.mark.django_db
def test_a_mail_error_prints_the_diagnosis_and_exits_1(
    run: Run, dovecot: Dovecot, dovecot_user: DovecotUser
) -> None:
    make_account(dovecot, dovecot_user, name=NAME, password="wrong-password")
    result = run("sync", NAME, "--json")
    assert result.code == 1
    assert result.out == ""
    assert "auth_failed" in result.err
    assert "Fix:" in result.err
    assert "wrong-password" not in result.err
    status = SyncStatus.objects.get(account__name=NAME)
    assert status.last_error_code == "auth_failed"
    # The CLI released its lease: a watcher may take the account again.
    assert leases.current_holder(status.account_id) is None


@pytest.mark.django_db
def test_rights_and_refusals(
    run: Run, account: EmailAccount, dovecot: Dovecot, dovecot_user: DovecotUser
) -> None:
    dovecot.append(dovecot_user.name, "INBOX", plain_mail("Private"))
    carol = User.objects.create_user("carol")
    for argv in (("sync", NAME), ("messages", "list", "--account", NAME)):
        refused = run(*argv, "--as-user", "carol")
        assert refused.code == 2
        assert f"There is no account named {NAME}." in refused.err

    account.owner = User.objects.create_user("owner")
    account.save()
    do_share_account(account, actor=None, user=carol, can_read=False, can_send=True)
    refused = run("sync", NAME, "--as-user", "carol")
    assert refused.code == 2
    assert "does not have the right to read" in refused.err

    do_share_account(account, actor=None, user=carol, can_read=True)
    assert run("sync", NAME, "--as-user", "carol", "--json").code == 0
    listed = run("messages", "list", "--account", NAME, "--as-user", "carol", "--json")
    assert [e["subject"] for e in json.loads(listed.out)] == ["Private"]

    EmailAccount.objects.filter(pk=account.pk).update(sync_enabled=False)
    off = run("sync", NAME)
    assert off.code == 2
    assert "Sync is switched off" in off.err


@pytest.mark.django_db
def test_with_a_watcher_holding_the_account_sync_only_asks_it(
    run: Run, account: EmailAccount, dovecot: Dovecot, dovecot_user: DovecotUser
) -> None:
    assert leases.try_acquire(account.pk, "some-watcher")
    dovecot.append(dovecot_user.name, "INBOX", plain_mail("Waiting"))
    result = run("sync", NAME)
    assert result.code == 0, result.err
    assert "requested" in result.out
    status = SyncStatus.objects.get(account=account)
    assert status.sync_requested_at is not None
    assert not Message.objects.filter(account=account).exists()


@pytest.fixture
def watcher(account: EmailAccount) -> Iterator[Watcher]:
    """A real watcher in a thread, holding ``account``."""
    instance = Watcher("test-watcher")

    def run_watcher() -> None:
        try:
            instance.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run_watcher, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while leases.current_holder(account.pk) != "test-watcher":
        assert time.monotonic() < deadline, "the watcher did not take the account"
        time.sleep(0.1)
    # Let its first pass (of an empty mailbox) finish.
    # The status row may not exist yet right after the lease is taken.
    while not SyncStatus.objects.filter(account=account, last_success_at__isnull=False).exists():
        assert time.monotonic() < deadline, "the watcher's first pass did not finish"
        time.sleep(0.1)
    yield instance
    instance.stop()
    thread.join(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_sync_wait_follows_the_watchers_run(
    run: Run,
    account: EmailAccount,
    watcher: Watcher,
    dovecot: Dovecot,
    dovecot_user: DovecotUser,
) -> None:
    for n in range(3):
        dovecot.append(dovecot_user.name, "Archive", plain_mail(f"Archived {n}"))
    # Archive is polled, not watched with IDLE: only the request makes the watcher look now.
    data = sync_json(run, "--wait")
    assert (data["fetched"], data["stored"], data["duplicates"], data["quarantined"]) == (
        3,
        3,
        0,
        0,
    )
    assert leases.current_holder(account.pk) == "test-watcher"
    assert Message.objects.filter(account=account).count() == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only() -> None:
    terminal = _Terminal()
    bar = ProgressBar("work-mail", terminal)
    bar(0, 4)
    bar(4, 4)
    bar.close()
    drawn = terminal.getvalue()
    assert drawn.startswith("\rwork-mail [")
    assert drawn.endswith("] 4/4\n")
    assert "#" * ProgressBar.WIDTH in drawn

    piped = io.StringIO()
    quiet = ProgressBar("work-mail", piped)
    quiet(1, 2)
    quiet.close()
    assert piped.getvalue() == ""
