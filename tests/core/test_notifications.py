"""E3: notifications are shown in Postroom and mailed through the default outgoing account."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User
from django.utils import translation

from postroom.accounts.models import EmailAccount
from postroom.core.models import Event, Notification
from postroom.core.notify import do_notify_account_people, do_notify_users
from postroom.incoming.blobs import read_blob
from postroom.outgoing.models import OutboxItem
from postroom.outgoing.queue import deliver_due
from tests.outgoing.conftest import make_smtp_account
from tests.servers.smtp import SmtpServer
from tests.web.conftest import make_account

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    # Some checks read English text; a language left active by another test must not matter.
    with translation.override("en"):
        yield


@pytest.fixture
def olga(db: None) -> User:
    return User.objects.create_user("olga", email="olga@example.test")


def _notify(user: User, key: str = "k1") -> list[Notification]:
    return do_notify_users(
        [user], kind="test", key=key, title="Something needs you", body="Details.", url="/x/"
    )


def test_a_notification_is_mailed_once_through_the_default_outgoing_account(
    olga: User, smtp_server_factory: Callable[..., SmtpServer]
) -> None:
    server = smtp_server_factory()
    make_smtp_account(server)  # not the default: never used for notifications
    sender = make_smtp_account(server, default_outgoing=True)

    [notification] = _notify(olga)
    assert _notify(olga) == []  # the same key again: nothing new, no second mail
    [item] = OutboxItem.objects.all()
    assert item.account == sender and item.subject == "Something needs you"
    assert list(item.recipients.values_list("address", flat=True)) == ["olga@example.test"]

    assert deliver_due("test-worker", 10) == 1
    [received] = server.wait_for_messages(1)
    assert received.rcpt_tos == ("olga@example.test",)
    message = received.message
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"] == "Something needs you"
    body = message.get_content()
    assert "Details." in body and "/x/" in body and "/notifications/" in body
    assert Notification.objects.get(pk=notification.pk).read_at is None


def test_without_a_default_outgoing_account_the_notification_stays_and_a_warning_is_logged(
    olga: User,
) -> None:
    [notification] = _notify(olga)
    assert Notification.objects.filter(pk=notification.pk).exists()
    assert OutboxItem.objects.count() == 0
    event = Event.objects.get(kind="notification.mail_failed")
    assert event.level == "warning" and "no default outgoing account" in event.message


def test_a_default_account_that_cannot_send_is_reported_too(olga: User) -> None:
    sender = make_smtp_account(None, default_outgoing=True)
    EmailAccount.objects.filter(pk=sender.pk).update(outgoing_enabled=False)
    _notify(olga)
    assert OutboxItem.objects.count() == 0
    event = Event.objects.get(kind="notification.mail_failed")
    assert "switched off" in event.message


def test_a_user_without_an_address_gets_the_notification_only(db: None) -> None:
    make_smtp_account(None, default_outgoing=True)
    nobody = User.objects.create_user("nomail")
    assert len(_notify(nobody)) == 1
    assert OutboxItem.objects.count() == 0
    assert not Event.objects.filter(kind="notification.mail_failed").exists()


def test_account_people_are_the_owner_not_every_superuser(olga: User) -> None:
    User.objects.create_superuser("root", email="root@example.test")
    account = make_account("support@example.test", owner=olga)
    made = do_notify_account_people(account, kind="test", key="a", title="T")
    assert [n.user for n in made] == [olga]
    assert made[0].account == account


def test_links_in_the_mail_are_absolute_with_a_base_url(olga: User, settings: object) -> None:
    settings.POSTROOM_BASE_URL = "https://postroom.example.com/"  # type: ignore[attr-defined]
    make_smtp_account(None, default_outgoing=True)
    _notify(olga)
    [item] = OutboxItem.objects.all()
    raw = read_blob(item.blob_id)
    assert b"https://postroom.example.com/x/" in raw
    assert b"https://postroom.example.com/notifications/" in raw
