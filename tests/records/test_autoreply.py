"""A20 auto-reply by RFC 3834: once per sender and interval, never to automatic mail."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from django.utils import timezone

from postroom.accounts.models import EmailAccount
from postroom.incoming.blobs import read_blob
from postroom.outgoing.models import OutboxItem
from postroom.records.actions import RecordError, do_save_routing_settings, do_set_append_to
from postroom.records.models import AutoReplyLog, Record, RecordLink
from postroom.records.tokens import record_from_message_id
from tests.records.conftest import deliver, mail, recent, record_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def away(support: EmailAccount) -> EmailAccount:
    do_save_routing_settings(
        support,
        auto_reply_enabled=True,
        auto_reply_text="We are away until Monday.",
        auto_reply_interval_days=4,
    )
    return support


def _replies() -> list[OutboxItem]:
    return list(OutboxItem.objects.order_by("pk"))


def test_one_auto_reply_per_sender_with_rfc3834_headers(away: EmailAccount) -> None:
    [first], _ = deliver(away, mail("Question"))
    [item] = _replies()
    sent = message_from_bytes(read_blob(item.blob_id), policy=default)
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent["To"] == "carol@customer.example"
    assert sent["In-Reply-To"] == f"<{first.message_id}>"
    assert sent["Subject"] == "Auto: Question"
    assert "away until Monday" in sent.get_body().get_content()
    # The same sender again within the interval: no second answer.
    deliver(away, mail("Another question"))
    assert len(_replies()) == 1
    # After the interval it answers again.
    AutoReplyLog.objects.update(last_sent_at=timezone.now() - timedelta(days=5))
    deliver(away, mail("Third question"))
    assert len(_replies()) == 2


@pytest.mark.parametrize(
    ("sender", "headers"),
    [
        ("carol@customer.example", {"Auto-Submitted": "auto-replied"}),
        ("carol@customer.example", {"Auto-Submitted": "auto-generated"}),
        ("carol@customer.example", {"List-Id": "<users.lists.example>"}),
        ("carol@customer.example", {"List-Unsubscribe": "<mailto:u@lists.example>"}),
        ("carol@customer.example", {"Precedence": "bulk"}),
        ("carol@customer.example", {"X-Auto-Response-Suppress": "OOF, AutoReply"}),
        ("carol@customer.example", {"Return-Path": "<>"}),
        ("MAILER-DAEMON@mx.example", {}),
        ("noreply@shop.example", {}),
        ("support@example.test", {}),
    ],
)
def test_no_auto_reply_to_automatic_mail(
    away: EmailAccount, sender: str, headers: dict[str, str]
) -> None:
    deliver(away, mail(sender=sender, headers=headers))
    assert _replies() == []


def test_no_auto_reply_when_only_bcc_or_old_or_outside_dates(away: EmailAccount) -> None:
    deliver(away, mail(to="someone-else@example.org"))  # we were Bcc'd or on a list
    deliver(away, mail(sender="old@customer.example", date=recent(60 * 24 * 3)))  # first sync
    assert _replies() == []
    do_save_routing_settings(away, auto_reply_starts_at=timezone.now() + timedelta(days=1))
    deliver(away, mail(sender="early@customer.example"))
    do_save_routing_settings(
        away,
        auto_reply_starts_at=timezone.now() - timedelta(days=2),
        auto_reply_ends_at=timezone.now() - timedelta(days=1),
    )
    deliver(away, mail(sender="late@customer.example"))
    assert _replies() == []


def test_auto_reply_to_new_record_carries_its_token(away: EmailAccount) -> None:
    do_set_append_to(away, record_type("issue"))
    deliver(away, mail("Question"))
    [item] = _replies()
    record = Record.objects.get()
    assert record_from_message_id(item.message_id) == record.pk
    assert RecordLink.objects.filter(record=record, outbox_item=item).exists()


def test_auto_reply_needs_a_text(support: EmailAccount) -> None:
    with pytest.raises(RecordError) as caught:
        do_save_routing_settings(support, auto_reply_enabled=True)
    assert caught.value.field == "auto_reply_text"
    with pytest.raises(RecordError) as caught:
        now = timezone.now()
        do_save_routing_settings(
            support, auto_reply_text="x", auto_reply_starts_at=now, auto_reply_ends_at=now
        )
    assert caught.value.field == "auto_reply_ends_at"
