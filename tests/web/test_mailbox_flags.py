"""Read/flag buttons and "mark read on open", against the real Dovecot of tests/servers.

The mail is appended to Dovecot and synced by the real engine, so every
location row carries the server's own UID and UIDVALIDITY.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from postroom.accounts.actions import do_save_account, do_share_account
from postroom.accounts.models import EmailAccount
from postroom.core.models import Event
from postroom.incoming.actions import do_sync_account
from postroom.incoming.models import Message
from tests.servers.dovecot import Dovecot, DovecotUser
from tests.web.conftest import client_for
from tests.web.test_mailbox_pages import plain_mail

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def dovecot_account(
    dovecot: Dovecot, user: DovecotUser, *, owner: User, password: str | None = None
) -> EmailAccount:
    """An IMAPS account on the test Dovecot, trusting this run's private CA."""
    return do_save_account(
        EmailAccount(
            email=user.name.lower(),
            name=user.name.lower(),
            owner=owner,
            incoming_protocol="imap",
            incoming_host=dovecot.host,
            incoming_port=dovecot.imaps_port,
            incoming_security="ssl",
            folders=["INBOX"],
            outgoing_enabled=False,
            ca_cert=dovecot.ca_pem,
        ),
        actor=None,
        password=password if password is not None else user.password,
        check=False,
    )


@pytest.fixture
def synced(dovecot: Dovecot, dovecot_user: DovecotUser, alice: User) -> tuple[Message, int]:
    """alice's account with one synced, unread message; returns it and its server UID."""
    uid = dovecot.append(dovecot_user.name, "INBOX", plain_mail("Flag me"))
    account = dovecot_account(dovecot, dovecot_user, owner=alice)
    assert do_sync_account(account).result.stored == 1
    message = Message.objects.get(account=account)
    assert not message.seen
    return message, uid


def test_opening_marks_read_on_the_server_and_buttons_change_flags(
    synced: tuple[Message, int], dovecot: Dovecot, dovecot_user: DovecotUser, alice: User
) -> None:
    message, uid = synced
    client = client_for(alice)
    page_url = reverse("web:mail_message", args=[message.pk])
    flags_url = reverse("web:mail_message_flags", args=[message.pk])

    # Showing the page is a GET: nothing changes, on the server or here.
    assert client.get(page_url).status_code == 200
    assert "\\Seen" not in dovecot.flags(dovecot_user.name)[uid]
    message.refresh_from_db()
    assert not message.seen

    # The page's own "opened" POST (htmx, on load) marks it read on the server too.
    response = client.post(flags_url, {"seen": "1"}, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="message-flags"')  # the partial alone
    assert 'id="mark-unread"' in html
    assert "\\Seen" in dovecot.flags(dovecot_user.name)[uid]
    message.refresh_from_db()
    assert message.seen

    # Flag, then mark unread: both reach the server; plain POSTs go back to the page.
    response = client.post(flags_url, {"flagged": "1"})
    assert response.status_code == 302 and response["Location"] == page_url
    response = client.post(flags_url, {"seen": "0"}, headers=HTMX)
    assert 'id="mark-read"' in response.content.decode()
    assert 'id="unflag"' in response.content.decode()
    server = set(dovecot.flags(dovecot_user.name)[uid])
    assert "\\Flagged" in server and "\\Seen" not in server
    message.refresh_from_db()
    assert message.flagged and not message.seen
    assert Event.objects.filter(kind="message.flags", account=message.account).count() == 3

    # Nothing to change is a bad request, not a silent success.
    assert client.post(flags_url, {"seen": "maybe"}).status_code == 400


def test_a_read_share_may_change_flags(
    synced: tuple[Message, int], dovecot: Dovecot, dovecot_user: DovecotUser, alice: User, bob: User
) -> None:
    message, uid = synced
    do_share_account(message.account, actor=alice, user=bob, can_read=True)
    flags_url = reverse("web:mail_message_flags", args=[message.pk])
    assert client_for(bob).post(flags_url, {"flagged": "1"}, headers=HTMX).status_code == 200
    assert "\\Flagged" in dovecot.flags(dovecot_user.name)[uid]


def test_a_refusing_server_shows_the_diagnosis_and_changes_nothing(
    synced: tuple[Message, int], dovecot: Dovecot, dovecot_user: DovecotUser, alice: User
) -> None:
    message, uid = synced
    dovecot.set_password(dovecot_user.name, "changed-on-the-server")
    client = client_for(alice)
    flags_url = reverse("web:mail_message_flags", args=[message.pk])

    response = client.post(flags_url, {"seen": "1"}, headers=HTMX)
    assert response.status_code == 200  # htmx swaps 200s only
    html = response.content.decode()
    assert 'role="alert"' in html and 'data-code="auth_failed"' in html
    assert "The mail server refused the change" in html
    assert 'id="mark-read"' in html  # still unread
    message.refresh_from_db()
    assert not message.seen
    assert "\\Seen" not in dovecot.flags(dovecot_user.name)[uid]

    # Without htmx the same diagnosis arrives as a message on the page.
    response = client.post(flags_url, {"seen": "1"}, follow=True)
    assert "The mail server refused the change:" in response.content.decode()
    message.refresh_from_db()
    assert not message.seen
