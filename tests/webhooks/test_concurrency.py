"""Several deliverers at once, and the webhook thread of a real worker (committed data)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection

from postroom.outgoing.worker import Worker
from postroom.records.actions import do_create_record, do_update_record
from postroom.records.models import RecordType
from postroom.webhooks.actions import do_delete_subscription
from postroom.webhooks.delivery import Deliverer
from postroom.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from tests.webhooks.conftest import Receiver, subscribe

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_concurrent_deliverers_send_each_event_once_and_in_order(
    receiver: Receiver, superuser: User
) -> None:
    subscribe(receiver, superuser)
    receiver.answer = lambda request: (time.sleep(0.01), 200)[1]
    issue = RecordType.objects.get(key="issue")
    records = [do_create_record(issue, title=f"Record {n}") for n in range(4)]
    for step in range(5):
        for record in records:
            do_update_record(record, title=f"{record.pk} step {step}")
    expected = WebhookDelivery.objects.count()
    assert expected == 24

    errors: list[BaseException] = []

    def work(n: int) -> None:
        deliverer = Deliverer(f"concurrent/{n}")
        try:
            idle = 0
            while idle < 5:
                if deliverer.deliver_due(3):
                    idle = 0
                else:
                    idle += 1
                    time.sleep(0.05)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert WebhookDelivery.objects.filter(state=DeliveryState.DELIVERED).count() == expected
    events = receiver.events()
    assert len(events) == expected
    assert len({e["id"] for e in events}) == expected
    for record in records:
        got = [e["id"] for e in events if e["data"]["record"]["id"] == record.pk]
        queued = [
            str(i)
            for i in WebhookDelivery.objects.filter(ordering_key=f"record:{record.pk}")
            .order_by("pk")
            .values_list("event_id", flat=True)
        ]
        assert got == queued


def test_the_worker_delivers_webhooks_promptly(receiver: Receiver, superuser: User) -> None:
    subscribe(receiver, superuser)
    worker = Worker(threads=1, poll_seconds=0.2)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        record = do_create_record(RecordType.objects.get(key="issue"), title="Hello")
        assert wait_until(lambda: len(receiver.requests) == 1, 10)
        assert receiver.events()[0]["data"]["record"]["id"] == record.pk
    finally:
        worker.stop()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED


def test_a_webhook_deleted_while_its_delivery_is_sent(
    receiver: Receiver, superuser: User, caplog: pytest.LogCaptureFixture
) -> None:
    subscription, _secret = subscribe(receiver, superuser)

    def delete_then_answer(request: object) -> int:
        try:
            do_delete_subscription(WebhookSubscription.objects.get(), actor=None)
        finally:
            connection.close()
        return 200

    receiver.answer = delete_then_answer
    do_create_record(RecordType.objects.get(key="issue"), title="Hello")
    assert Deliverer("t").deliver_due() == 1
    assert len(receiver.requests) == 1
    assert not WebhookSubscription.objects.filter(pk=subscription.pk).exists()
    assert not WebhookDelivery.objects.exists()
    assert not WebhookAttempt.objects.exists()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
