"""E3: a message someone queued that fails for good tells them, once; automatic mail never does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from postroom.accounts.models import EmailAccount
from postroom.core.models import Notification
from postroom.outgoing.actions import do_queue_message
from postroom.outgoing.models import OutboxItem, RecipientStatus
from tests.outgoing.conftest import deliver, queue

pytestmark = pytest.mark.django_db(transaction=True)


def _queue_as(user: User, account: EmailAccount, to: list[str]) -> OutboxItem:
    return do_queue_message(account, actor=user, to=to, subject="Hello", text="Body\n")


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", email="alice@example.test")


def test_a_permanent_failure_notifies_the_user_who_queued_it(
    alice: User, smtp_account: Callable[..., Any]
) -> None:
    account, server = smtp_account()
    item = _queue_as(alice, account, ["nobody@example.test", "ok@example.test"])
    server.fail_next("RCPT", "550 5.1.1 <nobody@example.test>: user unknown")
    deliver()
    assert dict(item.recipients.values_list("address", "status")) == {
        "nobody@example.test": RecipientStatus.FAILED,
        "ok@example.test": RecipientStatus.SENT,
    }
    [notification] = Notification.objects.all()
    assert (notification.user, notification.kind, notification.account) == (
        alice,
        "outbox.failed",
        account,
    )
    assert notification.url == f"/outbox/{item.pk}/"
    assert "nobody@example.test" in notification.body and "user unknown" in notification.body


def test_temporary_failures_and_mail_nobody_queued_notify_nobody(
    alice: User, smtp_account: Callable[..., Any]
) -> None:
    account, server = smtp_account()
    server.fail_next("RCPT", "451 4.7.1 Greylisted, try later")
    item = _queue_as(alice, account, ["later@example.test"])
    deliver()
    assert item.recipients.get().status == RecipientStatus.DEFERRED
    assert not Notification.objects.exists()
    server.fail_next("RCPT", "550 5.7.1 Not today")
    automatic = queue(account, to=["auto@example.test"])  # no actor: automatic mail
    deliver()
    assert automatic.recipients.get().status == RecipientStatus.FAILED
    assert not Notification.objects.exists()
