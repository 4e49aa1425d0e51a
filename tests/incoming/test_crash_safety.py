"""B14 proven with real processes: SIGKILL, a cut TCP connection, two watchers."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postroom.incoming.actions import do_sync_account
from postroom.incoming.models import Message, MessageBlob, MessageLocation, SyncLease
from postroom.mail.errors import MailError
from tests.incoming.factory import make_message, make_messages
from tests.servers.proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)


def postroom_bin() -> str:
    found = shutil.which("postroom") or str(Path(sys.executable).parent / "postroom")
    assert os.path.exists(found)
    return found


def assert_stored_equals_server(dovecot, user, account) -> None:
    server = dovecot.messages(user.name)
    locations = MessageLocation.objects.filter(folder__account=account, folder__name="INBOX")
    assert sorted(locations.values_list("uid", flat=True)) == sorted(server)
    # No duplicates: one message per distinct raw message, one location per UID.
    assert Message.objects.filter(account=account).count() == len(set(server.values()))
    assert locations.count() == len(server)
    shas = set(Message.objects.filter(account=account).values_list("blob_id", flat=True))
    assert len(shas) == len(server)
    assert MessageBlob.objects.filter(sha256__in=shas).count() == len(shas)


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    dovecot, dovecot_user, imap_account_factory, postroom_env
):
    dovecot.bulk_load(dovecot_user.name, make_messages(5000, size=1500))
    account = imap_account_factory(dovecot_user)
    rng = random.Random(20261123)
    kills = 0
    for _ in range(30):
        proc = subprocess.Popen(
            [postroom_bin(), "sync", account.name, "--json"],
            env=postroom_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
        if kills >= 10:
            break
    assert kills >= 10, "the sync finished before it could be killed ten times"
    partial = MessageLocation.objects.filter(folder__account=account).count()
    assert 0 < partial < 5000 or kills >= 10

    done = subprocess.run(
        [postroom_bin(), "sync", account.name, "--json"],
        env=postroom_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["account"] == account.name
    assert_stored_equals_server(dovecot, dovecot_user, account)


def test_connection_cut_in_the_middle_of_a_fetch_resumes(
    dovecot, dovecot_user, imap_account_factory
):
    dovecot.bulk_load(dovecot_user.name, make_messages(400, size=4000))
    proxy = TcpProxy("127.0.0.1", dovecot.imaps_port).start()
    try:
        account = imap_account_factory(dovecot_user, port=proxy.port)
        # Cut once about a third of the mailbox has crossed the wire.
        proxy.cut_after(600_000)
        with pytest.raises(MailError) as failure:
            do_sync_account(account)
        assert failure.value.temporary
        stored_before = MessageLocation.objects.filter(folder__account=account).count()
        assert stored_before < 400

        do_sync_account(account)
    finally:
        proxy.stop()
    assert_stored_equals_server(dovecot, dovecot_user, account)


def _start_watcher(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [postroom_bin(), "watch"],
            env={**env, "POSTROOM_LEASE_SECONDS": "3"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_until(
    predicate, timeout: float, what: str, logs: list[Path] = (), procs: list = ()
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    for proc in procs:  # ask the watchers where they are stuck (faulthandler)
        if proc.poll() is None:
            proc.send_signal(signal.SIGUSR1)
    time.sleep(1)
    from postroom.incoming.models import SyncStatus

    states = list(
        SyncStatus.objects.values_list("account_id", "state", "last_error_code", "next_attempt_at")
    )
    leases = list(SyncLease.objects.values_list("account_id", "holder", "expires_at"))
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-8000:]}" for p in logs)
    raise AssertionError(f"timed out waiting for {what}\n{states}\n{leases}\n{tails}")


def test_two_watchers_share_accounts_and_one_takes_over_when_the_other_dies(
    dovecot, imap_account_factory, postroom_env, tmp_path
):
    users = [dovecot.new_user("watch") for _ in range(4)]
    accounts = [imap_account_factory(u) for u in users]
    for user in users:
        dovecot.bulk_load(user.name, make_messages(50, tag=user.name))
    logs = [tmp_path / "watcher-1.log", tmp_path / "watcher-2.log"]
    first, second = _start_watcher(postroom_env, logs[0]), _start_watcher(postroom_env, logs[1])
    try:
        _wait_until(
            lambda: (
                SyncLease.objects.count() == 4
                and all(
                    MessageLocation.objects.filter(folder__account=a).count() == 50
                    for a in accounts
                )
            ),
            60,
            "both watchers to sync all four accounts",
            logs,
        )
        holders = dict(SyncLease.objects.values_list("account_id", "holder"))
        assert len(holders) == 4  # one lease, so one watcher, per account
        first_pid = str(first.pid)
        victims = [a for a in accounts if holders[a.pk].split(":")[1] == first_pid]

        first.send_signal(signal.SIGKILL)
        first.wait()
        for user in users:
            dovecot.append(user.name, "INBOX", make_message(999, tag=user.name + "late"))
        _wait_until(
            lambda: all(
                MessageLocation.objects.filter(folder__account=a).count() == 51 for a in accounts
            ),
            60,
            "the surviving watcher to take over and fetch the new mail",
            logs,
            [first, second],
        )
        survivor = str(second.pid)
        for account in victims:
            assert SyncLease.objects.get(account=account).holder.split(":")[1] == survivor
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    for user, account in zip(users, accounts, strict=True):
        assert_stored_equals_server(dovecot, user, account)
