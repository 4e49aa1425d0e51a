"""Delivery against a real HTTP receiver on loopback, with the queue's clock driven by the test."""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from postroom.core import secrets
from postroom.core.models import Event
from postroom.records.actions import do_create_record, do_update_record
from postroom.records.models import Record, RecordType
from postroom.webhooks.actions import (
    WebhookError,
    do_redeliver,
    do_send_test,
    do_update_subscription,
)
from postroom.webhooks.delivery import deliver_due, verify_signature
from postroom.webhooks.emit import deliveries_changed
from postroom.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery
from tests.servers.certs import CertSet
from tests.webhooks.conftest import Receiver, subscribe

pytestmark = pytest.mark.django_db

HOLDER = "test-worker/webhooks"


def issue(title: str = "Printer on fire") -> Record:
    return do_create_record(RecordType.objects.get(key="issue"), title=title)


def run(now: datetime) -> int:
    """Deliver until nothing more is due at ``now``; returns how many were claimed."""
    total = 0
    while claimed := deliver_due(HOLDER, 10, now=now):
        total += claimed
    return total


def test_a_record_created_is_posted_signed(receiver: Receiver, superuser: User) -> None:
    _subscription, secret = subscribe(receiver, superuser)
    record = issue()
    delivery = WebhookDelivery.objects.get()
    assert delivery.ordering_key == f"record:{record.pk}"

    assert run(timezone.now()) == 1

    (request,) = receiver.requests
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["x-postroom-event"] == "record.created"
    assert headers["x-postroom-delivery"] == str(delivery.event_id)
    stamp = headers["x-postroom-timestamp"]
    assert abs(int(stamp) - time.time()) < 60
    signature = headers["x-postroom-signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(secret, request.body, stamp, signature)
    # A different secret, a changed body or an old timestamp do not verify.
    assert not verify_signature(secret + "x", request.body, stamp, signature)
    assert not verify_signature(secret, request.body + b" ", stamp, signature)
    assert not verify_signature(secret, request.body, stamp, signature, now=int(stamp) + 301)
    event = request.json
    assert event["type"] == "record.created"
    assert event["id"] == str(delivery.event_id)
    assert event["data"]["record"]["reference"] == record.reference

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED
    assert delivery.attempts == 1
    (attempt,) = WebhookAttempt.objects.filter(delivery=delivery)
    assert attempt.status_code == 200
    assert attempt.response_excerpt == "thanks"
    assert attempt.error == ""


def test_secret_is_stored_encrypted_and_never_logged(receiver: Receiver, superuser: User) -> None:
    subscription, secret = subscribe(receiver, superuser)
    assert secret.startswith("whsec_") and len(secret) > 40
    assert secret not in subscription.secret_encrypted
    assert secrets.decrypt(subscription.secret_encrypted) == secret
    for event in Event.objects.all():
        assert secret not in event.message
        assert secret not in json.dumps(event.data)


def test_a_receiver_that_is_down_gets_everything_in_order_once_back(
    receiver: Receiver, superuser: User
) -> None:
    subscribe(receiver, superuser)
    receiver.stop()  # the port is closed: connections are refused
    first, second = issue("First"), issue("Second")
    do_update_record(first, status="Replied")
    do_update_record(first, title="First, renamed")
    do_update_record(second, status="Closed")
    assert WebhookDelivery.objects.count() == 5

    now = timezone.now()
    # Only the first delivery of each record is tried while it is pending.
    assert run(now) == 2
    attempts = WebhookAttempt.objects.all()
    assert len(attempts) == 2
    assert all("refused" in a.error and a.status_code is None for a in attempts)

    # Back-off grows: each retry waits longer than the one before, up to about an hour.
    head = WebhookDelivery.objects.filter(ordering_key=f"record:{first.pk}").order_by("pk")[0]
    waits = []
    for _round in range(9):
        head.refresh_from_db()
        waits.append(head.next_attempt_at - now)
        now = head.next_attempt_at
        assert run(now) >= 1
    assert timedelta(seconds=20) <= waits[0] <= timedelta(seconds=40)
    assert all(later > earlier for earlier, later in itertools.pairwise(waits[:7]))
    assert all(wait <= timedelta(hours=1) for wait in waits)
    assert waits[-1] >= timedelta(minutes=45)
    assert WebhookDelivery.objects.filter(state=DeliveryState.PENDING).count() == 5
    assert receiver.requests == []

    receiver.start()  # back, on the same port
    now += timedelta(hours=2)
    assert run(now) == 5
    assert WebhookDelivery.objects.filter(state=DeliveryState.DELIVERED).count() == 5
    events = receiver.events()
    assert len(events) == 5
    assert len({e["id"] for e in events}) == 5
    for record in (first, second):
        mine = [e for e in events if e["data"]["record"]["id"] == record.pk]
        ids = list(
            WebhookDelivery.objects.filter(ordering_key=f"record:{record.pk}")
            .order_by("pk")
            .values_list("event_id", flat=True)
        )
        assert [e["id"] for e in mine] == [str(i) for i in ids]
    titles = [e["data"]["record"]["title"] for e in events if e["data"]["record"]["id"] == first.pk]
    assert titles[-1] == "First, renamed"


def test_one_failing_key_holds_back_only_its_own_later_events(
    receiver: Receiver, superuser: User
) -> None:
    subscribe(receiver, superuser)
    blocked, free = issue("Blocked"), issue("Free")

    def answer(request: Any) -> int:
        return 503 if request.json["data"]["record"]["id"] == blocked.pk else 200

    receiver.answer = answer
    do_update_record(blocked, status="Replied")
    do_update_record(free, status="Replied")
    now = timezone.now()
    run(now)
    states = {(d.ordering_key, d.event_type): d.state for d in WebhookDelivery.objects.all()}
    assert states[(f"record:{blocked.pk}", "record.created")] == DeliveryState.PENDING
    assert states[(f"record:{blocked.pk}", "record.updated")] == DeliveryState.PENDING
    assert states[(f"record:{free.pk}", "record.created")] == DeliveryState.DELIVERED
    assert states[(f"record:{free.pk}", "record.updated")] == DeliveryState.DELIVERED
    # The later event of the blocked record was never sent, only the first was (once).
    blocked_sent = [r for r in receiver.events() if r["data"]["record"]["id"] == blocked.pk]
    assert [e["type"] for e in blocked_sent] == ["record.created"]
    attempt = WebhookAttempt.objects.get(delivery__ordering_key=f"record:{blocked.pk}")
    assert attempt.status_code == 503
    assert attempt.response_excerpt == "not now"


def test_gives_up_after_the_maximum_age_and_can_be_sent_again(
    receiver: Receiver, superuser: User, settings: Any
) -> None:
    settings.POSTROOM_WEBHOOK_MAX_AGE_HOURS = 72
    subscribe(receiver, superuser)
    receiver.answer = lambda request: 503
    record = issue()
    do_update_record(record, status="Replied")
    first, second = WebhookDelivery.objects.order_by("pk")
    start = timezone.now()
    run(start)
    first.refresh_from_db()
    assert first.state == DeliveryState.PENDING
    # The retry never goes past the deadline: the last attempt is at it.
    later = start + timedelta(hours=71, minutes=59)
    run(later)
    first.refresh_from_db()
    assert first.next_attempt_at <= first.created_at + timedelta(hours=72)
    run(first.created_at + timedelta(hours=72, seconds=1))
    first.refresh_from_db()
    assert first.state == DeliveryState.FAILED
    assert first.last_status_code == 503
    assert "503" in first.last_error
    failed = Event.objects.filter(kind="webhook.failed", data__delivery=first.pk).get()
    assert failed.level == "error"
    # Given up, it no longer holds back the next event of the record, which was
    # tried at once (and, as old, given up after that one attempt).
    second.refresh_from_db()
    assert second.attempts == 1
    assert second.state == DeliveryState.FAILED

    receiver.answer = lambda request: 200
    do_redeliver(first, actor=superuser)
    first.refresh_from_db()
    assert first.state == DeliveryState.PENDING
    assert first.requeued_at is not None
    run(timezone.now())
    first.refresh_from_db()
    assert first.state == DeliveryState.DELIVERED
    assert WebhookAttempt.objects.filter(delivery=first, status_code=200).count() == 1
    with pytest.raises(WebhookError):
        do_redeliver(first, actor=superuser)  # delivered: nothing to send again


def test_tls_certificates_are_verified(certs: CertSet, superuser: User) -> None:
    receiver = Receiver(tls=certs.server_context("valid")).start()
    try:
        subscribe(receiver, superuser)
        issue()
        run(timezone.now())
        delivery = WebhookDelivery.objects.get()
        assert delivery.state == DeliveryState.PENDING
        assert "certificate" in delivery.last_error
        assert receiver.requests == []
    finally:
        receiver.stop()


def test_a_receiver_that_never_answers_times_out(
    silent_port: int, superuser: User, settings: Any
) -> None:
    settings.POSTROOM_WEBHOOK_TIMEOUT = 0.5
    receiver = Receiver()
    receiver.port = silent_port  # not started: the silent server holds the port
    subscribe(receiver, superuser)
    issue()
    started = time.monotonic()
    run(timezone.now())
    assert time.monotonic() - started < 5
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING
    assert "0.5" in delivery.last_error


def test_send_test_reaches_only_that_subscription(receiver: Receiver, superuser: User) -> None:
    other = Receiver().start()
    try:
        subscription, secret = subscribe(receiver, superuser, name="tested")
        subscribe(other, superuser, name="other")
        delivery = do_send_test(subscription, actor=superuser)
        run(timezone.now())
        delivery.refresh_from_db()
        assert delivery.state == DeliveryState.DELIVERED
        (request,) = receiver.requests
        assert request.json["type"] == "webhook.test"
        assert request.json["data"]["subscription"]["id"] == subscription.pk
        assert verify_signature(
            secret,
            request.body,
            request.headers["X-Postroom-Timestamp"],
            request.headers["X-Postroom-Signature"],
        )
        assert other.requests == []
    finally:
        other.stop()


def test_an_emit_wakes_the_worker_on_commit(
    receiver: Receiver, superuser: User, django_capture_on_commit_callbacks: Any
) -> None:
    subscribe(receiver, superuser)
    deliveries_changed.clear()
    with django_capture_on_commit_callbacks(execute=True):
        issue()
        assert not deliveries_changed.is_set()
    assert deliveries_changed.is_set()


def test_no_subscription_no_delivery(superuser: User) -> None:
    issue()
    assert not WebhookDelivery.objects.exists()


def test_a_redirect_is_not_followed(receiver: Receiver, superuser: User) -> None:
    subscribe(receiver, superuser)
    receiver.answer = lambda request: 302
    issue()
    run(timezone.now())
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING
    assert delivery.last_status_code == 302
    assert "Redirects are not followed" in delivery.last_error
    assert len(receiver.requests) == 1


def test_a_switched_off_webhook_gets_no_new_events_and_keeps_waiting_ones(
    receiver: Receiver, superuser: User
) -> None:
    subscription, _secret = subscribe(receiver, superuser)
    issue("Before")
    do_update_subscription(subscription, actor=superuser, active=False)
    issue("While off")
    assert WebhookDelivery.objects.count() == 1
    assert run(timezone.now()) == 0  # kept, not sent
    do_update_subscription(subscription, actor=superuser, active=True)
    assert run(timezone.now()) == 1
    assert [e["data"]["record"]["title"] for e in receiver.events()] == ["Before"]
