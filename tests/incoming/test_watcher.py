"""The watcher keeps an account current through IDLE, without any request."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from postroom.incoming.models import Message, SyncStatus
from postroom.incoming.watcher import Watcher
from tests.incoming.factory import make_message

pytestmark = pytest.mark.django_db(transaction=True)


def test_new_mail_appears_through_idle_within_seconds(dovecot, dovecot_user, imap_account_factory):
    account = imap_account_factory(dovecot_user, poll_interval=600)
    watcher = Watcher("idle-test")

    def run() -> None:
        try:
            watcher.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        # Wait for the first pass, then for IDLE to be entered.
        while not SyncStatus.objects.filter(
            account=account, last_success_at__isnull=False
        ).exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.5)
        appended = time.monotonic()
        dovecot.append(dovecot_user.name, "INBOX", make_message(7, tag="idle"))
        while not Message.objects.filter(
            account=account, message_id="idle7.0@example.org"
        ).exists():
            # The poll interval is ten minutes: only IDLE can bring it in time.
            assert time.monotonic() - appended < 5, "new mail did not arrive through IDLE"
            time.sleep(0.05)
    finally:
        watcher.stop()
        thread.join(timeout=30)


def test_mail_arriving_between_a_sync_and_the_idle_select_is_not_missed(
    dovecot, dovecot_user, imap_account_factory, monkeypatch
):
    """Regression: the IDLE session's SELECT already counts mail that arrived
    after the sync looked, so IDLE never reports it; the watcher must compare
    that SELECT with what the sync stored.

    Mail is delivered right after the first pass (its own connection, before
    the IDLE session exists) and right after the second (on the IDLE
    session, before it selects INBOX again): both windows of the race.
    """
    account = imap_account_factory(dovecot_user, poll_interval=600)
    real_sync = Watcher._sync
    delivered: list[float] = []

    def sync_then_deliver(account, session=None):
        ok = real_sync(account, session)
        if len(delivered) < 2:
            number = len(delivered) + 1
            dovecot.append(dovecot_user.name, "INBOX", make_message(number, tag="between"))
            delivered.append(time.monotonic())
        return ok

    monkeypatch.setattr(Watcher, "_sync", staticmethod(sync_then_deliver))
    watcher = Watcher("race-test")

    def run() -> None:
        try:
            watcher.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        for number in (1, 2):
            deadline = time.monotonic() + 20
            while len(delivered) < number:
                assert time.monotonic() < deadline, f"pass {number} did not happen"
                time.sleep(0.05)
            while not Message.objects.filter(
                account=account, message_id=f"between{number}.0@example.org"
            ).exists():
                # The poll interval is ten minutes: only the watcher noticing
                # its SELECT is ahead of the stored state can bring it in time.
                assert time.monotonic() - delivered[number - 1] < 5, (
                    f"mail delivered after pass {number} was missed"
                )
                time.sleep(0.05)
    finally:
        watcher.stop()
        thread.join(timeout=30)
