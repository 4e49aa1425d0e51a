"""A18: a password changed elsewhere stops the sync after three refusals, visibly."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from postroom.accounts.actions import do_save_account
from postroom.core.models import Event
from postroom.incoming.actions import do_sync_account, may_sync, status_for
from postroom.incoming.models import SyncState
from postroom.mail.errors import AuthError
from tests.incoming.factory import make_message

pytestmark = pytest.mark.django_db(transaction=True)


def test_three_refused_logins_stop_the_sync_until_the_password_changes(
    dovecot, dovecot_user, imap_account_factory
):
    owner = User.objects.create_user("owner", password="owner-pw-123")
    dovecot.append(dovecot_user.name, "INBOX", make_message(1))
    account = imap_account_factory(dovecot_user, owner=owner)
    dovecot.set_password(dovecot_user.name, "changed-elsewhere")

    for attempt in range(1, 4):
        with pytest.raises(AuthError):
            do_sync_account(account)
        status = status_for(account)
        assert status.consecutive_auth_failures == attempt
        if attempt < 3:
            assert status.state == SyncState.ERROR
            status.next_attempt_at = None  # skip the back-off wait in this test
            status.save()
    status = status_for(account)
    assert status.state == SyncState.AUTH_ERROR
    assert status.last_error_code == "auth_failed"
    assert not may_sync(account, status)  # no further login attempts: no server ban
    assert Event.objects.filter(account=account, kind="sync.auth_error", level="error").exists()

    client = Client()
    client.force_login(owner)
    page = client.get("/accounts/").content.decode()
    assert 'data-alert="auth_error"' in page and account.name in page

    account.refresh_from_db()
    do_save_account(account, actor=owner, password="changed-elsewhere", check=False)
    assert may_sync(account, status_for(account))
    do_sync_account(account)
    assert status_for(account).state == SyncState.IDLE
    assert 'data-alert="auth_error"' not in client.get("/accounts/").content.decode()
