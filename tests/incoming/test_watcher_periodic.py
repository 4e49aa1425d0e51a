"""The watcher's periodic pass (folders IDLE does not watch) runs on its IDLE session."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from postroom.incoming import watcher as watcher_module
from postroom.incoming.models import Message, SyncStatus
from postroom.incoming.watcher import Watcher
from postroom.mail.imap_sync import ImapSyncSession
from tests.incoming.factory import make_message

pytestmark = pytest.mark.django_db(transaction=True)


def test_other_folders_are_polled_without_a_new_login(
    dovecot, dovecot_user, imap_account_factory, monkeypatch
):
    dovecot.create_folder(dovecot_user.name, "Archive")
    account = imap_account_factory(dovecot_user, folders=["INBOX", "Archive"])
    # Below the form's minimum, set directly: the test must not wait minutes.
    type(account).objects.filter(pk=account.pk).update(poll_interval=2)
    sessions: list[float] = []
    real_init = ImapSyncSession.__init__

    def counting_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        sessions.append(time.monotonic())
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(ImapSyncSession, "__init__", counting_init)
    monkeypatch.setattr(watcher_module, "IDLE_ROUND_SECONDS", 0.5)
    watcher = Watcher("periodic-test")

    def run() -> None:
        try:
            watcher.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not SyncStatus.objects.filter(
            account=account, last_success_at__isnull=False
        ).exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)  # in IDLE on INBOX by now
        logins = len(sessions)
        dovecot.append(dovecot_user.name, "Archive", make_message(3, tag="archived"))
        appended = time.monotonic()
        while not Message.objects.filter(
            account=account, message_id="archived3.0@example.org"
        ).exists():
            # IDLE watches INBOX only: the periodic pass (every 2 s) must bring it.
            assert time.monotonic() - appended < 10, "the periodic pass did not run"
            time.sleep(0.05)
        assert len(sessions) == logins, "the periodic pass logged in again"
    finally:
        watcher.stop()
        thread.join(timeout=30)
