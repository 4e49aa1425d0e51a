"""The outbox pages: list, detail with attempts, cancel and retry buttons, suppression list."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from postroom.accounts.actions import do_save_account, do_share_account
from postroom.accounts.models import EmailAccount
from postroom.outgoing.actions import deliver_due, do_queue_message, do_suppress
from postroom.outgoing.models import OutboxItem, Suppression
from tests.servers.smtp import SmtpServer
from tests.web.conftest import client_for

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)


def smtp_account(server: SmtpServer, owner: User | None, **extra: Any) -> EmailAccount:
    number = next(_numbers)
    fields: dict[str, Any] = {
        "name": f"web-out{number}",
        "email": f"web-out{number}@example.test",
        "owner": owner,
        "incoming_enabled": False,
        "outgoing_enabled": True,
        "smtp_host": "localhost",
        "smtp_port": server.port,
        "smtp_security": "starttls",
        "smtp_auth": False,
        "ca_cert": server.ca_pem,
    }
    fields.update(extra)
    return do_save_account(EmailAccount(**fields), actor=None, check=False)


@pytest.fixture
def server(smtp_server_factory: Callable[..., SmtpServer]) -> SmtpServer:
    return smtp_server_factory(mode="starttls")


@pytest.fixture
def account(server: SmtpServer, alice: User) -> EmailAccount:
    return smtp_account(server, alice)


def queue(account: EmailAccount, *to: str, **extra: Any) -> OutboxItem:
    return do_queue_message(account, actor=None, to=list(to), subject="Report", text="Hi", **extra)


def deliver() -> int:
    return deliver_due("web-test", 10)


def test_outbox_shows_items_with_per_recipient_status_and_reply(
    alice: User, account: EmailAccount, server: SmtpServer
) -> None:
    sent = queue(account, "bad@example.test", "good@example.test")
    server.fail_next("RCPT", "550 5.1.1 No mailbox by that name")
    deliver()
    later = queue(account, "later@example.test", send_at=timezone.now() + timedelta(hours=2))

    client = client_for(alice)
    page = client.get(reverse("web:outbox"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-item="{sent.pk}" data-state="partial"' in html
    assert 'data-recipient="bad@example.test" data-status="failed"' in html
    assert "No mailbox by that name" in html
    assert 'data-recipient="good@example.test" data-status="sent"' in html
    assert f'data-item="{later.pk}" data-state="queued"' in html
    assert 'data-wait-reason="scheduled"' in html
    assert 'aria-current="page">Outbox' in html

    only_queued = client.get(reverse("web:outbox"), {"state": "queued"}).content.decode()
    assert f'data-item="{later.pk}"' in only_queued
    assert f'data-item="{sent.pk}"' not in only_queued
    by_account = client.get(reverse("web:outbox"), {"account": account.pk}).content.decode()
    assert f'data-item="{sent.pk}"' in by_account

    detail = client.get(reverse("web:outbox_item", args=[sent.pk]))
    assert detail.status_code == 200
    text = detail.content.decode()
    assert 'data-outcome="partial"' in text
    assert "No mailbox by that name" in text
    assert sent.message_id in text
    assert "250" in text  # the server's acceptance of the good recipient


def test_cancel_and_retry_buttons(alice: User, account: EmailAccount, server: SmtpServer) -> None:
    client = client_for(alice)
    scheduled = queue(account, "x@example.test", send_at=timezone.now() + timedelta(hours=1))
    outbox = reverse("web:outbox")
    response = client.post(reverse("web:outbox_cancel", args=[scheduled.pk]), {"next": outbox})
    assert response.status_code == 302
    assert response["Location"] == outbox
    scheduled.refresh_from_db()
    assert scheduled.state == "cancelled"
    again = client.post(reverse("web:outbox_cancel", args=[scheduled.pk]), follow=True)
    assert "Nothing to cancel" in again.content.decode()

    failed = queue(account, "bad@example.test")
    server.fail_next("RCPT", "550 5.1.1 unknown")
    deliver()
    failed.refresh_from_db()
    assert failed.state == "failed"
    page = client.get(reverse("web:outbox_item", args=[failed.pk])).content.decode()
    assert 'data-action="retry"' in page
    response = client.post(reverse("web:outbox_retry", args=[failed.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("web:outbox_item", args=[failed.pk])
    deliver()
    failed.refresh_from_db()
    assert failed.state == "sent"
    assert failed.attempts.count() == 2
    assert len(server.messages) == 1


def test_rights_on_the_outbox(
    alice: User, bob: User, make_user: Callable[..., User], account: EmailAccount
) -> None:
    item = queue(account, "x@example.test")
    do_share_account(account, actor=None, user=bob, can_read=True, can_send=False)
    as_bob = client_for(bob)
    page = as_bob.get(reverse("web:outbox")).content.decode()
    assert f'data-item="{item.pk}"' in page
    assert 'data-action="cancel"' not in page
    assert as_bob.get(reverse("web:outbox_item", args=[item.pk])).status_code == 200
    assert as_bob.post(reverse("web:outbox_cancel", args=[item.pk])).status_code == 403
    assert as_bob.post(reverse("web:outbox_retry", args=[item.pk])).status_code == 403

    as_carol = client_for(make_user("carol"))
    assert f'data-item="{item.pk}"' not in as_carol.get(reverse("web:outbox")).content.decode()
    assert as_carol.get(reverse("web:outbox_item", args=[item.pk])).status_code == 404
    assert as_carol.post(reverse("web:outbox_cancel", args=[item.pk])).status_code == 404
    assert as_carol.get(reverse("web:outbox"), {"account": account.pk}).status_code == 404
    item.refresh_from_db()
    assert item.state == "queued"

    assert (
        client_for(alice).get(reverse("web:outbox")).content.decode().count('data-action="cancel"')
        == 1
    )


def test_suppression_list_for_domain_managers_only(
    admin: User, alice: User, make_user: Callable[..., User], account: EmailAccount
) -> None:
    do_suppress("gone@example.test", reason="550 5.1.1 user unknown")
    do_suppress("other@example.test")
    url = reverse("web:outbox_suppressions")

    assert client_for(alice).get(url).status_code == 403
    assert (
        client_for(alice).post(reverse("web:outbox_unsuppress"), {"address": "x"}).status_code
        == 403
    )
    assert "Suppression list" not in client_for(alice).get(reverse("web:outbox")).content.decode()

    manager = make_user("postmaster")
    manager.user_permissions.add(Permission.objects.get(codename="change_emaildomain"))
    for user in (admin, User.objects.get(pk=manager.pk)):
        page = client_for(user).get(url)
        assert page.status_code == 200
        assert "550 5.1.1 user unknown" in page.content.decode()

    client = client_for(admin)
    assert "gone@example.test" in client.get(url, {"q": "gone"}).content.decode()
    assert "other@example.test" not in client.get(url, {"q": "gone"}).content.decode()
    removed = client.post(
        reverse("web:outbox_unsuppress"), {"address": "gone@example.test"}, follow=True
    )
    assert "was removed from the suppression list" in removed.content.decode()
    assert list(Suppression.objects.values_list("address", flat=True)) == ["other@example.test"]
    # Mail to it is accepted again.
    queue(account, "gone@example.test")
    missing = client.post(reverse("web:outbox_unsuppress"), {"address": "gone@example.test"})
    assert missing.status_code == 302


def test_empty_outbox_page(alice: User) -> None:
    page = client_for(alice).get(reverse("web:outbox"))
    assert page.status_code == 200
    assert "Nothing has been queued yet." in page.content.decode()
