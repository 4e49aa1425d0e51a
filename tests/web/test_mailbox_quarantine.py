"""Quarantine page: lists unparseable messages across readable accounts; re-process (manage)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.incoming.models import Message, ParseState
from tests.web.conftest import client_for, make_account
from tests.web.test_mailbox_pages import deliver, mail_with_attachments, plain_mail

pytestmark = pytest.mark.django_db


def quarantine(message: Message, error: str) -> None:
    """As the extraction records a parse failure (a parser bug, since fixed: the raw parses)."""
    Message.objects.filter(pk=message.pk).update(
        parse_state=ParseState.QUARANTINED, parse_error=error, text="", has_attachments=False
    )
    message.attachments.all().delete()


@pytest.fixture
def alices(alice: User, domain: EmailDomain) -> EmailAccount:
    return make_account("alice-q@example.test", owner=alice)


@pytest.fixture
def bobs(bob: User, domain: EmailDomain) -> EmailAccount:
    return make_account("bob-q@example.test", owner=bob)


def test_lists_quarantined_mail_of_readable_accounts(
    alice: User, alices: EmailAccount, bobs: EmailAccount
) -> None:
    broken, fine = deliver(alices, plain_mail("Broken for alice"), plain_mail("Fine"))
    (bobs_broken,) = deliver(bobs, plain_mail("Broken for bob"))
    quarantine(broken, "UnicodeDecodeError: <byte 0xff>")
    quarantine(bobs_broken, "ValueError: bob's")
    html = client_for(alice).get(reverse("web:quarantine")).content.decode()
    assert f'data-message="{broken.pk}"' in html
    assert "Broken for alice" in html and "UnicodeDecodeError: &lt;byte 0xff&gt;" in html
    assert f'data-message="{fine.pk}"' not in html
    assert "Broken for bob" not in html and "bob&#x27;s" not in html
    assert reverse("web:quarantine_reprocess", args=[alices.pk]) in html
    # The message list marks it too.
    listing = client_for(alice).get(reverse("web:mail_messages", args=[alices.pk]))
    assert "Quarantined" in listing.content.decode()


def test_reprocess_needs_manage_and_parses_again(
    alice: User, bob: User, bobs: EmailAccount
) -> None:
    (broken,) = deliver(bobs, mail_with_attachments())
    quarantine(broken, "ValueError: boom")
    url = reverse("web:quarantine_reprocess", args=[bobs.pk])

    # alice cannot see the account: 404; with read only: listed, but no button and 403.
    assert client_for(alice).post(url).status_code == 404
    do_share_account(bobs, actor=bob, user=alice, can_read=True)
    html = client_for(alice).get(reverse("web:quarantine")).content.decode()
    assert "ValueError: boom" in html and url not in html
    assert client_for(alice).post(url).status_code == 403
    broken.refresh_from_db()
    assert broken.parse_state == ParseState.QUARANTINED
    assert client_for(bob).get(url).status_code == 405

    response = client_for(bob).post(url, follow=True)
    page = response.content.decode()
    assert "1 message parsed again; 0 still quarantined." in page
    assert "Nothing is quarantined." in page
    broken.refresh_from_db()
    assert broken.parse_state == ParseState.COMPLETE and broken.parse_error == ""
    assert broken.attachments.count() == 2


def test_reprocess_from_the_message_page_returns_there(bob: User, bobs: EmailAccount) -> None:
    (broken,) = deliver(bobs, plain_mail("Back to me"))
    quarantine(broken, "ValueError: boom")
    message_url = reverse("web:mail_message", args=[broken.pk])
    url = reverse("web:quarantine_reprocess", args=[bobs.pk])
    response = client_for(bob).post(url, {"next": message_url})
    assert response.status_code == 302 and response["Location"] == message_url
    # Never to somewhere else.
    response = client_for(bob).post(url, {"next": "https://evil.example/"})
    assert response["Location"] == reverse("web:quarantine")
