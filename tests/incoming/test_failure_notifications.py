"""E3: an account that stops syncing tells its people once, in Postroom and by mail."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from postroom.accounts.actions import do_save_account
from postroom.accounts.models import EmailAccount
from postroom.core.models import Notification
from postroom.incoming.actions import ERROR_NOTIFY_AFTER, do_sync_account, status_for
from postroom.incoming.models import SyncState
from postroom.mail.errors import AuthError, MailError
from postroom.outgoing.models import OutboxItem
from postroom.outgoing.queue import deliver_due
from tests.incoming.factory import make_message
from tests.outgoing.conftest import make_smtp_account
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.django_db(transaction=True)


def _fail(account: EmailAccount, times: int, error: type[Exception] = AuthError) -> None:
    for _ in range(times):
        with pytest.raises(error):
            do_sync_account(account)
        status = status_for(account)
        status.next_attempt_at = None  # no back-off wait in tests
        status.save()


def test_auth_error_notifies_the_owner_once_per_episode_in_app_and_by_mail(
    dovecot, dovecot_user, imap_account_factory, smtp_server_factory: Callable[..., SmtpServer]
):
    server = smtp_server_factory()
    make_smtp_account(server, default_outgoing=True)
    owner = User.objects.create_user("owner", email="owner@example.test")
    dovecot.append(dovecot_user.name, "INBOX", make_message(1))
    account = imap_account_factory(dovecot_user, owner=owner)
    dovecot.set_password(dovecot_user.name, "changed-elsewhere")

    _fail(account, 2)
    assert not Notification.objects.exists()  # two refusals: not yet a person's problem
    _fail(account, 2)  # the third enters auth_error; a fourth (manual) run repeats nothing
    assert status_for(account).state == SyncState.AUTH_ERROR
    [notification] = Notification.objects.all()
    assert (notification.user, notification.account, notification.kind) == (
        owner,
        account,
        "account.auth_error",
    )
    assert notification.url == f"/accounts/{account.pk}/edit/"
    [item] = OutboxItem.objects.all()
    assert list(item.recipients.values_list("address", flat=True)) == ["owner@example.test"]
    deliver_due("test-worker", 10)
    [received] = server.wait_for_messages(1)
    assert received.message["Auto-Submitted"] == "auto-generated"
    assert account.name in received.message["Subject"]

    # Fixed, synced, broken again: a new episode is told again.
    account.refresh_from_db()
    do_save_account(account, actor=owner, password="changed-elsewhere", check=False)
    do_sync_account(account)
    assert status_for(account).state == SyncState.IDLE
    dovecot.set_password(dovecot_user.name, "changed-again")
    _fail(account, 3)
    assert Notification.objects.filter(kind="account.auth_error").count() == 2
    assert OutboxItem.objects.count() == 2


def test_a_persisting_error_notifies_once_and_a_passing_one_never(
    dovecot, dovecot_user, imap_account_factory, closed_port: int
):
    owner = User.objects.create_user("owner", email="owner@example.test")
    account = imap_account_factory(dovecot_user, owner=owner, port=closed_port)
    _fail(account, ERROR_NOTIFY_AFTER - 1, MailError)
    assert status_for(account).state == SyncState.ERROR
    assert not Notification.objects.exists()
    _fail(account, 2, MailError)
    [notification] = Notification.objects.all()
    assert notification.kind == "account.error" and notification.user == owner
    assert notification.url == "/sync/"
