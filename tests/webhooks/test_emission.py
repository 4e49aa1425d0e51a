"""The events other apps emit: sent/failed from the outbox (real SMTP server), bounced,
account state changes (real refused connection), records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from postroom.accounts.models import EmailAccount
from postroom.incoming.actions import do_set_sync_enabled, do_sync_account
from postroom.mail.errors import MailError
from postroom.mail.mime.dsn import parse_dsn
from postroom.outgoing.bounces import apply_report
from postroom.outgoing.models import RecipientStatus
from postroom.records.actions import do_create_record, do_link_outbox_item
from postroom.records.models import RecordType
from postroom.webhooks.delivery import deliver_due
from postroom.webhooks.models import WebhookDelivery
from tests.outgoing.conftest import deliver, make_smtp_account, queue
from tests.outgoing.test_sent_and_bounces import _dsn
from tests.servers.smtp import SmtpServer
from tests.web.conftest import make_account
from tests.webhooks.conftest import Receiver, subscribe

pytestmark = pytest.mark.django_db

MESSAGE_EVENTS = ["message.sent", "message.failed", "message.bounced"]


def data_of(event_type: str) -> list[dict[str, Any]]:
    return [
        d.payload["data"]
        for d in WebhookDelivery.objects.filter(event_type=event_type).order_by("pk")
    ]


def test_sent_and_failed_recipients_are_reported_with_the_record(
    receiver: Receiver,
    superuser: User,
    smtp_server_factory: Callable[..., SmtpServer],
) -> None:
    subscribe(receiver, superuser, events=MESSAGE_EVENTS)
    server = smtp_server_factory()
    account = make_smtp_account(server)
    record = do_create_record(RecordType.objects.get(key="issue"), title="Printer")
    server.fail_next("RCPT", "550 5.1.1 No such user")
    item = queue(account, to=["gone@example.test", "fine@example.test"])
    do_link_outbox_item(record, item)
    deliver()
    item.refresh_from_db()
    assert dict(item.recipients.values_list("address", "status")) == {
        "gone@example.test": RecipientStatus.FAILED,
        "fine@example.test": RecipientStatus.SENT,
    }

    (sent,) = data_of("message.sent")
    assert sent["outbox_item"] == item.pk
    assert sent["message_id"] == item.message_id
    assert sent["account"] == {"id": account.pk, "name": account.name, "email": account.email}
    assert [r["address"] for r in sent["recipients"]] == ["fine@example.test"]
    assert sent["recipients"][0]["status"] == "sent"
    assert sent["record"] == {"id": record.pk, "reference": record.reference}
    (failed,) = data_of("message.failed")
    assert [r["address"] for r in failed["recipients"]] == ["gone@example.test"]
    assert failed["recipients"][0]["code"] == 550
    assert "No such user" in failed["recipients"][0]["reply"]
    keys = set(
        WebhookDelivery.objects.filter(event_type__startswith="message.").values_list(
            "ordering_key", flat=True
        )
    )
    assert keys == {f"outbox:{item.pk}"}

    while deliver_due("t", 10):
        pass
    assert [e["type"] for e in receiver.events()] == ["message.sent", "message.failed"]


def test_outbox_emits_nothing_without_a_subscription(
    smtp_server_factory: Callable[..., SmtpServer], superuser: User, receiver: Receiver
) -> None:
    subscribe(receiver, superuser, events=["record.created"])
    account = make_smtp_account(smtp_server_factory())
    queue(account)
    deliver()
    assert not WebhookDelivery.objects.exists()


def test_a_bounce_is_reported(
    receiver: Receiver, superuser: User, smtp_server_factory: Callable[..., SmtpServer]
) -> None:
    account = make_smtp_account(smtp_server_factory())
    item = queue(account, to=["gone@example.net", "fine@example.net"])
    deliver()
    subscribe(receiver, superuser, events=["message.bounced"])
    report = parse_dsn(_dsn(item.message_id, "gone@example.net", to=account.email))
    assert report is not None
    assert apply_report(item, report) == 1
    (bounced,) = data_of("message.bounced")
    assert bounced["outbox_item"] == item.pk
    (entry,) = bounced["recipients"]
    assert entry["address"] == "gone@example.net"
    assert entry["status"] == "bounced"
    assert entry["dsn_status"] == "5.1.1"
    assert entry["hard"] is True
    assert "Recipient address rejected" in entry["reason"]
    # Seen again: nothing changes, nothing is reported twice.
    assert apply_report(item, report) == 0
    assert len(data_of("message.bounced")) == 1


@pytest.fixture
def refused_account(closed_port: int, superuser: User) -> EmailAccount:
    return make_account(
        "broken@example.test",
        owner=superuser,
        incoming_host="127.0.0.1",
        incoming_port=closed_port,
        incoming_security="none",
    )


def test_account_state_changes_are_reported_once_per_change(
    receiver: Receiver, superuser: User, refused_account: EmailAccount
) -> None:
    subscribe(receiver, superuser, events=["account.state_changed"], account=refused_account)
    with pytest.raises(MailError):
        do_sync_account(refused_account)
    with pytest.raises(MailError):
        do_sync_account(refused_account)  # still "error": no second event
    do_set_sync_enabled(refused_account, False)
    do_set_sync_enabled(refused_account, False)  # no change
    do_set_sync_enabled(refused_account, True)
    events = data_of("account.state_changed")
    assert [(e["previous_state"], e["state"]) for e in events] == [
        ("idle", "error"),
        ("error", "disabled"),
        ("disabled", "idle"),
    ]
    assert events[0]["account"]["id"] == refused_account.pk
    assert events[0]["error_code"] == "connection_refused"
    assert events[0]["error_message"]
    assert set(WebhookDelivery.objects.values_list("ordering_key", flat=True)) == {
        f"account:{refused_account.pk}"
    }


def test_a_subscription_for_one_account_hears_only_that_account(
    receiver: Receiver, superuser: User, refused_account: EmailAccount
) -> None:
    other = make_account("other@example.test", owner=superuser)
    subscribe(receiver, superuser, events=["account.state_changed"], account=other)
    do_set_sync_enabled(refused_account, False)
    assert not WebhookDelivery.objects.exists()
    do_set_sync_enabled(other, False)
    assert WebhookDelivery.objects.count() == 1


def test_do_create_record_results_in_a_delivery(
    receiver: Receiver, superuser: User, refused_account: EmailAccount
) -> None:
    subscribe(receiver, superuser, events=["record.created"], account=refused_account)
    record = do_create_record(
        RecordType.objects.get(key="lead"), title="Big order", account=refused_account
    )
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event_type == "record.created"
    assert delivery.ordering_key == f"record:{record.pk}"
    assert delivery.next_attempt_at <= timezone.now()
    assert deliver_due("t", 10) == 1
    (event,) = receiver.events()
    assert event["data"]["record"]["reference"] == record.reference
    assert event["data"]["record"]["type"] == "lead"
