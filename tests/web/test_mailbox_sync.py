"""The sync status page (E2): states, progress, errors, polling, "sync now", the switch."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.core.models import Event
from postroom.incoming import leases
from postroom.incoming.actions import do_sync_account
from postroom.incoming.models import SyncState, SyncStatus
from postroom.mail.errors import AuthError
from tests.servers.dovecot import Dovecot, DovecotUser
from tests.web.conftest import client_for, make_account
from tests.web.test_mailbox_flags import dovecot_account
from tests.web.test_mailbox_pages import deliver, plain_mail

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def alices(alice: User, domain: EmailDomain) -> EmailAccount:
    return make_account("alice-sync@example.test", owner=alice)


@pytest.fixture
def bobs(bob: User, domain: EmailDomain) -> EmailAccount:
    return make_account("bob-sync@example.test", owner=bob)


def row(html: str, account: EmailAccount) -> str:
    match = re.search(rf'<tr id="sync-row-{account.pk}".*?</tr>', html, re.S)
    assert match is not None, f"no row for {account}"
    return match.group(0)


def status_page(user: User, **headers: str) -> str:
    response = client_for(user).get(reverse("web:sync_status"), headers=headers)
    assert response.status_code == 200
    return str(response.content.decode())


def test_states_progress_errors_counts_and_lag(
    alice: User, alices: EmailAccount, bobs: EmailAccount, domain: EmailDomain
) -> None:
    deliver(alices, plain_mail("One"), plain_mail("Two"))
    done = timezone.now() - timedelta(minutes=5)
    SyncStatus.objects.create(account=alices, state=SyncState.IDLE, last_success_at=done)
    failing = make_account("alice-failing@example.test", owner=alice)
    SyncStatus.objects.create(
        account=failing,
        state=SyncState.ERROR,
        last_error_code="connection_refused",
        last_error_message="The server refused the connection. Check the port.",
    )
    busy = make_account("alice-busy@example.test", owner=alice)
    SyncStatus.objects.create(
        account=busy, state=SyncState.SYNCING, progress_done=120, progress_total=480
    )
    never = make_account("alice-never@example.test", owner=alice)

    html = status_page(alice)
    assert "bob-sync@example.test" not in html  # only accounts alice can read
    idle = row(html, alices)
    assert 'data-state="idle"' in idle and ">Idle<" in idle
    assert re.search(r"<td>2(<br>|</td>)", idle)  # message count
    assert "5\xa0minutes" in idle  # lag
    error = row(html, failing)
    assert 'data-state="error"' in error
    assert "connection_refused" in error and "The server refused the connection." in error
    syncing = row(html, busy)
    assert '<progress max="480" value="120"' in syncing and "120 of 480" in syncing
    assert "never" in row(html, never)
    # A GET writes nothing: the account that never synced still has no status row.
    assert not SyncStatus.objects.filter(account=never).exists()


def test_the_table_polls_only_while_something_moves(alice: User, alices: EmailAccount) -> None:
    status = SyncStatus.objects.create(account=alices, state=SyncState.IDLE)
    html = status_page(alice)
    assert 'hx-trigger="every 3s"' not in html

    status.state = SyncState.SYNCING
    status.save()
    html = status_page(alice)
    assert re.search(r'<div id="sync-table" hx-get="/sync/" hx-trigger="every 3s"', html)
    # The poll gets the table alone, still polling while the sync runs...
    partial = status_page(alice, **HTMX)
    assert partial.lstrip().startswith('<div id="sync-table"') and "<html" not in partial
    assert 'hx-trigger="every 3s"' in partial
    # ...and without the trigger once it is over, which ends the polling.
    status.state = SyncState.IDLE
    status.save()
    assert 'hx-trigger="every 3s"' not in status_page(alice, **HTMX)

    # A "sync now" that a running watcher has not started yet keeps it polling too.
    status.sync_requested_at = timezone.now()
    status.save()
    assert 'hx-trigger="every 3s"' not in status_page(alice)  # no watcher: nothing to wait for
    assert leases.try_acquire(alices.pk, "test-watcher")
    html = status_page(alice)
    assert 'hx-trigger="every 3s"' in html and "starting…" in row(html, alices)


def test_sync_now_sets_the_request(alice: User, bob: User, alices: EmailAccount) -> None:
    client = client_for(alice)
    url = reverse("web:sync_now", args=[alices.pk])
    before = timezone.now()
    response = client.post(url, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Sync of alice-sync@example.test requested." in html
    assert "No watcher is running" in html  # and says why nothing will move yet
    status = SyncStatus.objects.get(account=alices)
    assert status.sync_requested_at is not None and status.sync_requested_at >= before

    # Without htmx: back to the page, with the notice.
    response = client.post(url, follow=True)
    assert "requested." in response.content.decode()
    assert client.get(url).status_code == 405

    # Read right is enough; no right at all is 404.
    assert client_for(bob).post(url).status_code == 404
    do_share_account(alices, actor=alice, user=bob, can_read=True)
    assert client_for(bob).post(url).status_code == 302


def test_sync_now_is_refused_while_switched_off(alice: User, alices: EmailAccount) -> None:
    client_for(alice).post(reverse("web:sync_switch", args=[alices.pk]), {"enabled": "off"})
    response = client_for(alice).post(reverse("web:sync_now", args=[alices.pk]), headers=HTMX)
    assert "Sync is switched off for this account" in response.content.decode()
    assert SyncStatus.objects.get(account=alices).sync_requested_at is None


def test_the_switch_needs_the_manage_right(alice: User, bob: User, alices: EmailAccount) -> None:
    url = reverse("web:sync_switch", args=[alices.pk])
    do_share_account(alices, actor=alice, user=bob, can_read=True)
    assert client_for(bob).post(url, {"enabled": "off"}).status_code == 403
    alices.refresh_from_db()
    assert alices.sync_enabled
    html = status_page(bob)
    assert 'role="switch"' not in row(html, alices)  # shown as text, not as a switch
    assert reverse("web:sync_now", args=[alices.pk]) in row(html, alices)

    client = client_for(alice)
    response = client.post(url, {"enabled": "off"}, headers=HTMX)
    assert response.status_code == 200
    alices.refresh_from_db()
    assert not alices.sync_enabled
    assert SyncStatus.objects.get(account=alices).state == SyncState.DISABLED
    assert Event.objects.filter(kind="sync.disabled", account=alices).exists()
    switched = row(response.content.decode(), alices)
    assert 'data-state="disabled"' in switched and 'aria-checked="false"' in switched
    assert reverse("web:sync_now", args=[alices.pk]) not in switched

    client.post(url, {"enabled": "on"})
    alices.refresh_from_db()
    assert alices.sync_enabled
    assert 'aria-checked="true"' in row(status_page(alice), alices)


def test_a_failed_sync_shows_its_diagnosis_then_auth_error(
    dovecot: Dovecot, dovecot_user: DovecotUser, alice: User
) -> None:
    account = dovecot_account(dovecot, dovecot_user, owner=alice, password="wrong-password")
    with pytest.raises(AuthError):
        do_sync_account(account)
    html = row(status_page(alice), account)
    assert 'data-state="error"' in html and "auth_failed" in html
    status = SyncStatus.objects.get(account=account)
    assert status.last_error_message and status.last_error_message[:40] in html

    for _attempt in range(2):
        with pytest.raises(AuthError):
            do_sync_account(account)
    html = row(status_page(alice), account)
    assert 'data-state="auth_error"' in html
    assert "Stopped after repeated login failures." in html
    assert reverse("web:account_edit", args=[account.pk]) in html  # alice manages it


def test_german_status_page(alice: User, alices: EmailAccount) -> None:
    client = client_for(alice)
    client.post(reverse("set_language"), {"language": "de", "next": "/"})
    html = client.get(reverse("web:sync_status")).content.decode()
    assert "Synchronisationsstatus" in html
    assert "Jetzt synchronisieren" in html
