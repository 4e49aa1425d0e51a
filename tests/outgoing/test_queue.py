"""The outgoing queue against real aiosmtpd servers: every classification and state change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from postroom.outgoing.actions import (
    AccountCannotSend,
    InvalidMessage,
    NothingToCancel,
    RecipientsSuppressed,
    do_cancel,
    do_queue_message,
    do_retry_now,
    do_suppress,
    do_unsuppress,
)
from postroom.outgoing.models import (
    AttemptOutcome,
    DeliveryAttempt,
    ItemState,
    OutboxItem,
    OutboxRecipient,
    RecipientKind,
    RecipientStatus,
    WaitReason,
)
from postroom.outgoing.queries import is_final, item_summary, queue_depth
from postroom.outgoing.queue import BACKOFF_CAP, Courier, backoff, item_state
from tests.outgoing.conftest import deliver, make_due, make_smtp_account, queue, statuses
from tests.servers.users import ALICE, ALICE_PASSWORD

pytestmark = pytest.mark.django_db

S = RecipientStatus


def test_one_transaction_carries_every_recipient(smtp_account):
    account, server = smtp_account()
    item = queue(
        account,
        to=["Ann <ann@example.test>", "bob@example.test"],
        cc=["cid@example.test"],
        bcc=["dan@example.test"],
    )
    assert item.state == ItemState.QUEUED
    assert deliver() == 1
    [received] = server.messages
    assert set(received.rcpt_tos) == {
        "ann@example.test",
        "bob@example.test",
        "cid@example.test",
        "dan@example.test",
    }
    assert received.mail_from == account.email
    headers = received.message
    assert headers["Message-ID"] == f"<{item.message_id}>"
    assert "Bcc" not in headers and b"dan@example.test" not in received.data
    item.refresh_from_db()
    assert item.state == ItemState.SENT and item.next_attempt_at is None
    assert item.lease_holder == "" and item.finished_at is not None
    rows = list(item.recipients.order_by("id"))
    assert {r.status for r in rows} == {S.SENT}
    assert all(r.reply.startswith("250") and r.code == 250 for r in rows)
    assert {r.kind for r in rows} == {RecipientKind.TO, RecipientKind.CC, RecipientKind.BCC}
    [attempt] = item.attempts.all()
    assert attempt.outcome == AttemptOutcome.SENT and attempt.data_code == 250
    assert len(attempt.recipients) == 4
    assert is_final(item)
    summary = item_summary(item)
    assert summary["recipients"]["ann@example.test"]["status"] == "sent"
    # The stored bytes are what went out.
    assert item.size == len(received.data) or received.data.startswith(b"Date:")


def test_rcpt_refused_for_one_recipient_does_not_fail_the_others(smtp_account):
    account, server = smtp_account()
    item = queue(account, to=["nobody@example.test", "bob@example.test"])
    server.fail_next("RCPT", "550 5.1.1 <nobody@example.test>: user unknown")
    deliver()
    [received] = server.messages
    assert received.rcpt_tos == ("bob@example.test",)
    item.refresh_from_db()
    assert item.state == ItemState.PARTIAL
    failed = item.recipients.get(address="nobody@example.test")
    assert failed.status == S.FAILED and failed.code == 550
    assert "user unknown" in failed.reply
    assert item.recipients.get(address="bob@example.test").status == S.SENT
    assert item.next_attempt_at is None
    assert item.attempts.get().outcome == AttemptOutcome.PARTIAL


def test_451_defers_with_backoff_and_the_retry_sends(smtp_account):
    account, server = smtp_account()
    item = queue(account, to=["later@example.test", "now@example.test"])
    server.fail_next("RCPT", "451 4.7.1 Greylisted, try later")
    before = timezone.now()
    deliver()
    item.refresh_from_db()
    assert statuses(item) == {"later@example.test": S.DEFERRED, "now@example.test": S.SENT}
    assert item.state == ItemState.DEFERRED and item.deferrals == 1
    assert item.wait_reason == WaitReason.BACKOFF and "Greylisted" in item.wait_detail
    assert item.next_attempt_at is not None
    wait = (item.next_attempt_at - before).total_seconds()
    assert 40 <= wait <= 80  # about a minute, with jitter
    assert item.recipients.get(address="later@example.test").code == 451

    assert deliver() == 0  # not due yet
    make_due(item)
    assert deliver() == 1
    item.refresh_from_db()
    assert item.state == ItemState.SENT
    assert [m.rcpt_tos for m in server.messages] == [
        ("now@example.test",),
        ("later@example.test",),
    ]
    # The retry carried the same bytes and Message-ID.
    assert server.messages[0].data == server.messages[1].data
    assert [a.outcome for a in item.attempts.all()] == [
        AttemptOutcome.PARTIAL,
        AttemptOutcome.SENT,
    ]


def test_data_451_defers_everyone_and_data_554_fails_everyone(smtp_account):
    account, server = smtp_account()
    first = queue(account, to=["a@example.test", "b@example.test"])
    server.fail_next("DATA", "451 4.3.0 Queue full")
    deliver()
    first.refresh_from_db()
    assert set(statuses(first).values()) == {S.DEFERRED}
    assert first.state == ItemState.DEFERRED

    second = queue(account, to=["c@example.test"])
    server.fail_next("DATA", "554 5.6.0 Message rejected as spam")
    deliver()
    second.refresh_from_db()
    assert second.state == ItemState.FAILED and second.next_attempt_at is None
    row = second.recipients.get()
    assert row.status == S.FAILED and "spam" in row.reply and row.code == 554
    assert server.messages == []


def test_connection_dropped_in_data_defers_and_retries_on_a_fresh_connection(smtp_account):
    account, server = smtp_account()
    courier = Courier("test-courier")
    try:
        one, two = queue(account), queue(account)
        courier.deliver_due(10)
        first_peers = {m.peer for m in server.messages}
        assert len(server.messages) == 2 and len(first_peers) == 1  # one connection, reused

        dropped = queue(account, to=["drop@example.test"])
        server.drop_next("DATA")
        courier.deliver_due(10)
        dropped.refresh_from_db()
        assert dropped.state == ItemState.DEFERRED
        row = dropped.recipients.get()
        assert row.status == S.DEFERRED and row.reply
        assert dropped.attempts.get().error

        make_due(dropped)
        courier.deliver_due(10)
        dropped.refresh_from_db()
        assert dropped.state == ItemState.SENT
        assert server.messages[-1].rcpt_tos == ("drop@example.test",)
        assert server.messages[-1].peer not in first_peers  # a new connection
    finally:
        courier.close()
    for item in (one, two):
        item.refresh_from_db()
        assert item.state == ItemState.SENT


def test_deferred_past_the_maximum_age_fails(smtp_account):
    account, server = smtp_account(account={"max_queue_age": 1})
    item = queue(account)
    OutboxItem.objects.filter(pk=item.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    server.fail_next("RCPT", "452 4.2.2 Mailbox full")
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.FAILED and item.next_attempt_at is None
    row = item.recipients.get()
    assert row.status == S.FAILED and "Mailbox full" in row.reply and "1 hours" in row.reply


def test_unreachable_server_defers_every_item_of_the_account(smtp_account, closed_port):
    account = make_smtp_account(None, smtp_port=closed_port)
    items = [queue(account) for _ in range(3)]
    assert deliver(limit=1) == 1
    for item in items:
        item.refresh_from_db()
    tried = items[0]
    assert tried.state == ItemState.DEFERRED
    assert tried.recipients.get().status == S.DEFERRED
    # The others were not tried once each: they wait with the account, and say why.
    for item in items[1:]:
        assert item.state == ItemState.QUEUED
        assert item.wait_reason == WaitReason.ACCOUNT and item.wait_detail
        assert item.next_attempt_at > timezone.now()
        assert item.attempts.count() == 0
    assert deliver() == 0


def test_unreachable_server_in_one_batch_leaves_nothing_sending(smtp_account, closed_port):
    """A batch marks its recipients ``sending`` up front; those not tried are put back."""
    account = make_smtp_account(None, smtp_port=closed_port)
    items = [queue(account, to=["a@example.test", "b@example.test"]) for _ in range(3)]
    assert deliver(limit=10) == 3
    for item in items:
        item.refresh_from_db()
    assert items[0].state == ItemState.DEFERRED
    for item in items[1:]:
        assert item.state == ItemState.QUEUED
        assert item.wait_reason == WaitReason.ACCOUNT and item.lease_holder == ""
        assert item.attempts.count() == 0
        assert set(item.recipients.values_list("status", "attempts")) == {(S.QUEUED, 0)}
    assert not OutboxRecipient.objects.filter(status=S.SENDING).exists()


def test_a_server_that_never_greets_defers_with_the_account(silent_port, settings):
    settings.POSTROOM_CHECK_TIMEOUT = 0.5
    account = make_smtp_account(None, smtp_port=silent_port)
    item = queue(account)
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.DEFERRED
    row = item.recipients.get()
    assert row.status == S.DEFERRED and row.reply
    assert item.attempts.get().error


def test_refused_login_waits_for_the_account(smtp_account):
    account, server = smtp_account(
        mode="starttls",
        users={ALICE: ALICE_PASSWORD},
        account={
            "smtp_security": "starttls",
            "smtp_auth": True,
            "smtp_host": "localhost",
            "password": "wrong",
        },
    )
    from postroom.accounts.models import EmailAccount

    EmailAccount.objects.filter(pk=account.pk).update(ca_cert=server.ca_pem)
    account.refresh_from_db()
    item = queue(account)
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.DEFERRED  # a password is fixed by a person, not by time
    assert item.recipients.get().status == S.DEFERRED
    assert "535" in item.recipients.get().reply or "refused" in item.recipients.get().reply
    assert server.messages == []


def test_starttls_and_auth(smtp_account):
    account, server = smtp_account(
        mode="starttls",
        users={ALICE: ALICE_PASSWORD},
        account={
            "email": ALICE,
            "name": "alice-out",
            "smtp_security": "starttls",
            "smtp_auth": True,
            "smtp_host": "localhost",
            "password": ALICE_PASSWORD,
        },
    )
    from postroom.accounts.models import EmailAccount

    EmailAccount.objects.filter(pk=account.pk).update(ca_cert=server.ca_pem)
    account.refresh_from_db()
    item = queue(account)
    deliver()
    [received] = server.messages
    assert received.tls and received.authenticated_as == ALICE
    item.refresh_from_db()
    assert item.state == ItemState.SENT


def test_cancel_before_sending(smtp_account):
    account, server = smtp_account()
    item = queue(account, send_at=timezone.now() + timedelta(hours=1))
    assert item.wait_reason == WaitReason.SCHEDULED
    do_cancel(item, None)
    item.refresh_from_db()
    assert item.state == ItemState.CANCELLED and item.next_attempt_at is None
    assert statuses(item) == {"rcpt@example.test": S.CANCELLED}
    make_due(item)
    deliver()
    assert server.messages == []
    with pytest.raises(NothingToCancel):
        do_cancel(item, None)

    sent = queue(account)
    deliver()
    with pytest.raises(NothingToCancel):
        do_cancel(sent, None)


def test_cancel_while_claimed_is_honoured(smtp_account):
    from postroom.outgoing.queue import claim_due

    account, server = smtp_account()
    item = queue(account)
    courier = Courier("claimer")
    claims = claim_due("claimer", 10)
    assert [c.item_id for c in claims] == [item.pk]
    do_cancel(item, None)
    courier._deliver(claims[:1])
    courier.close()
    item.refresh_from_db()
    assert item.state == ItemState.CANCELLED and item.lease_holder == ""
    assert server.messages == []


def test_retry_now_sends_a_deferred_item_at_once(smtp_account):
    account, server = smtp_account()
    item = queue(account)
    server.fail_next("MAIL", "421 4.3.2 Service shutting down")
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.DEFERRED and item.next_attempt_at > timezone.now()
    do_retry_now(item, None)
    assert deliver() == 1
    item.refresh_from_db()
    assert item.state == ItemState.SENT and len(server.messages) == 1


def test_retry_now_requeues_a_failed_recipient(smtp_account):
    account, server = smtp_account()
    item = queue(account, to=["x@example.test"])
    server.fail_next("RCPT", "550 5.7.1 Not today")
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.FAILED
    do_retry_now(item, None)
    item.refresh_from_db()
    assert item.state == ItemState.QUEUED and item.next_attempt_at is not None
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.SENT


def test_rate_limit_holds_back_with_a_visible_reason(smtp_account):
    account, server = smtp_account(account={"rate_limit_per_minute": 2, "rate_limit_per_day": 100})
    items = [queue(account) for _ in range(3)]
    deliver()
    assert len(server.messages) == 2
    for item in items:
        item.refresh_from_db()
    waiting = [i for i in items if i.state != ItemState.SENT]
    assert len(waiting) == 1
    [held] = waiting
    assert held.wait_reason == WaitReason.RATE_MINUTE
    assert "2 messages per minute" in held.wait_detail
    assert held.next_attempt_at > timezone.now() + timedelta(seconds=30)
    assert held.recipients.get().status == S.QUEUED
    assert deliver() == 0
    # Once the window has passed it goes.
    DeliveryAttempt.objects.update(started_at=timezone.now() - timedelta(minutes=2))
    make_due(held)
    deliver()
    held.refresh_from_db()
    assert held.state == ItemState.SENT and held.wait_reason == WaitReason.NONE


def test_daily_limit_reason(smtp_account):
    account, _server = smtp_account(account={"rate_limit_per_day": 1})
    queue(account)
    held = queue(account)
    deliver()
    held.refresh_from_db()
    assert held.wait_reason == WaitReason.RATE_DAY
    assert held.next_attempt_at > timezone.now() + timedelta(hours=23)


def test_send_at_in_the_future_is_not_sent(smtp_account):
    account, server = smtp_account()
    later = queue(account, send_at=timezone.now() + timedelta(minutes=30))
    assert later.next_attempt_at == later.send_at
    assert deliver() == 0
    assert server.messages == []
    later.refresh_from_db()
    assert later.state == ItemState.QUEUED
    OutboxItem.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now())
    deliver()
    later.refresh_from_db()
    assert later.state == ItemState.SENT


def test_priority_order(smtp_account):
    account, server = smtp_account()
    low = queue(account, subject="low", priority=-5)
    normal = queue(account, subject="normal")
    high = queue(account, subject="high", priority=10)
    for _ in range(3):
        assert deliver(limit=1) == 1
    assert [m.message["Subject"] for m in server.messages] == ["high", "normal", "low"]
    assert {i.pk for i in (low, normal, high)} == set(
        OutboxItem.objects.filter(state=ItemState.SENT).values_list("pk", flat=True)
    )


def test_suppressed_addresses_are_refused_and_honoured(smtp_account):
    account, server = smtp_account()
    do_suppress("Gone@Example.test", reason="550 5.1.1 user unknown")
    with pytest.raises(RecipientsSuppressed) as refused:
        queue(account, to=["ok@example.test", "gone@example.test"])
    assert refused.value.addresses == ("gone@example.test",)
    assert "suppression list" in str(refused.value)
    assert OutboxItem.objects.count() == 0

    # Suppressed after queueing: the queue honours the list at sending time.
    item = queue(account, to=["ok@example.test", "late@example.test"])
    do_suppress("late@example.test")
    deliver()
    item.refresh_from_db()
    assert statuses(item) == {"ok@example.test": S.SENT, "late@example.test": S.FAILED}
    assert "suppression list" in item.recipients.get(address="late@example.test").reply
    assert server.messages[0].rcpt_tos == ("ok@example.test",)

    assert do_unsuppress("GONE@example.test") is True
    assert do_unsuppress("gone@example.test") is False
    queue(account, to=["gone@example.test"])


def test_idempotency_key_never_queues_twice(smtp_account):
    account, _server = smtp_account()
    first = queue(account, idempotency_key="abc-1")
    again = queue(account, idempotency_key="abc-1", subject="something else")
    assert again.pk == first.pk
    assert OutboxItem.objects.count() == 1


def test_bad_headers_and_addresses_are_refused_before_queueing(smtp_account):
    account, _server = smtp_account()
    with pytest.raises(InvalidMessage) as injected:
        queue(account, subject="Hi\r\nBcc: victim@example.test")
    assert injected.value.field == "subject"
    with pytest.raises(InvalidMessage):
        queue(account, to=["not an address"])
    with pytest.raises(InvalidMessage):
        queue(account, extra_headers={"X-Tag": "a\nb"})
    assert OutboxItem.objects.count() == 0


def test_an_account_that_cannot_send_refuses_to_queue(smtp_account):
    account, _server = smtp_account(account={"outgoing_enabled": False})
    with pytest.raises(AccountCannotSend):
        queue(account)


def test_outgoing_switched_off_after_queueing_waits_with_a_reason(smtp_account):
    from postroom.accounts.models import EmailAccount

    account, server = smtp_account()
    item = queue(account)
    EmailAccount.objects.filter(pk=account.pk).update(outgoing_enabled=False)
    deliver()
    item.refresh_from_db()
    assert item.state == ItemState.QUEUED and item.wait_reason == WaitReason.ACCOUNT
    assert "switched off" in item.wait_detail
    assert server.messages == []


# -- what is sent: sender rules, BCC, charsets, addresses ---------------------------


def test_sender_rules_user_with_reply_to_the_default_incoming_account(smtp_account):
    support = make_smtp_account(
        None,
        email="support@example.test",
        name="support",
        default_incoming=True,
        incoming_enabled=True,
        incoming_host="imap.example.test",
        incoming_port=993,
        incoming_security="ssl",
        outgoing_enabled=False,
    )
    account, server = smtp_account(account={"sender_name": "Example Sales"})
    user = User.objects.create_user("jo", email="jo@example.test", first_name="Jo", last_name="Ng")
    do_queue_message(account, actor=user, to="x@example.test", subject="s", text="t")
    deliver()
    headers = server.messages[-1].message
    assert headers["From"] == "Jo Ng <jo@example.test>"
    assert headers["Reply-To"] == support.email
    assert headers["Sender"] == account.email
    assert server.messages[-1].mail_from == account.email

    account.always_use_account_name_as_sender = True
    account.save()
    do_queue_message(account, actor=user, to="x@example.test", subject="s", text="t")
    deliver()
    assert server.messages[-1].message["From"] == "Example Sales <jo@example.test>"

    account.always_use_account_email_as_sender = True
    account.save()
    do_queue_message(account, actor=user, to="x@example.test", subject="s", text="t")
    deliver()
    headers = server.messages[-1].message
    assert headers["From"] == f"Example Sales <{account.email}>"
    assert headers["Reply-To"] is None and headers["Sender"] is None


def test_account_bcc_addresses_get_every_mail(smtp_account):
    account, server = smtp_account(account={"bcc_addresses": ["archive@example.test"]})
    item = queue(account, to=["x@example.test"])
    deliver()
    [received] = server.messages
    assert set(received.rcpt_tos) == {"x@example.test", "archive@example.test"}
    assert b"archive@example.test" not in received.data
    assert item.recipients.get(address="archive@example.test").kind == RecipientKind.ACCOUNT_BCC


def test_iso_2022_jp_charset_with_rfc2047_headers(smtp_account):
    account, server = smtp_account(account={"charset": "iso-2022-jp"})
    item = queue(account, subject="お知らせ", text="こんにちは\n")
    deliver()
    [received] = server.messages
    assert b"=?iso-2022-jp?" in received.data.lower()
    assert received.message["Subject"] == "お知らせ"
    assert received.message.get_body().get_content_charset() == "iso-2022-jp"
    assert received.message.get_body().get_content().replace("\r\n", "\n") == "こんにちは\n"
    item.refresh_from_db()
    assert item.charset == "iso-2022-jp"


def test_text_that_does_not_fit_the_charset_goes_as_utf8(smtp_account):
    account, server = smtp_account(account={"charset": "iso-8859-1"})
    queue(account, subject="Zażółć", text="gęślą jaźń\n")
    queue(account, subject="Café", text="déjà vu\n")
    deliver()
    first, second = (m.message for m in server.messages)
    assert first.get_body().get_content_charset() == "utf-8"
    assert first["Subject"] == "Zażółć"
    assert second.get_body().get_content_charset() == "iso-8859-1"
    assert second["Subject"] == "Café"


def test_international_addresses(smtp_account, smtp_server_factory):
    account, server = smtp_account()
    item = queue(account, to=["jürgen@bücher.example", "ann@bücher.example"])
    deliver()
    [received] = server.messages
    assert "SMTPUTF8" in received.mail_options
    assert set(received.rcpt_tos) == {"jürgen@xn--bcher-kva.example", "ann@xn--bcher-kva.example"}
    item.refresh_from_db()
    assert item.needs_smtputf8 and item.state == ItemState.SENT

    # A server without SMTPUTF8: the message (UTF-8 headers) cannot go there; said clearly.
    plain = smtp_server_factory(smtputf8=False)
    old = make_smtp_account(plain)
    refused = queue(old, to=["jürgen@bücher.example"])
    idna_only = queue(old, to=["ann@bücher.example"])
    deliver()
    refused.refresh_from_db()
    row = refused.recipients.get()
    assert row.status == S.FAILED and "SMTPUTF8" in row.reply
    idna_only.refresh_from_db()
    assert idna_only.state == ItemState.SENT
    assert plain.messages[0].rcpt_tos == ("ann@xn--bcher-kva.example",)


# -- small pure parts ------------------------------------------------------------------


def test_backoff_grows_from_a_minute_to_hours():
    firsts = [backoff(1).total_seconds() for _ in range(50)]
    assert 45 <= min(firsts) and max(firsts) <= 75 and len(set(firsts)) > 1  # jitter
    assert 90 <= backoff(2).total_seconds() <= 150
    assert BACKOFF_CAP * 0.75 <= backoff(30).total_seconds() <= BACKOFF_CAP * 1.25


def test_item_state_from_recipients():
    assert item_state([S.SENT, S.SENT]) == ItemState.SENT
    assert item_state([S.SENT, S.FAILED]) == ItemState.PARTIAL
    assert item_state([S.FAILED, S.BOUNCED]) == ItemState.FAILED
    assert item_state([S.SENT, S.DEFERRED]) == ItemState.DEFERRED
    assert item_state([S.CANCELLED]) == ItemState.CANCELLED
    assert item_state([S.SENDING, S.QUEUED]) == ItemState.SENDING
    assert item_state([S.SENT, S.CANCELLED]) == ItemState.SENT


def test_queue_depth(smtp_account):
    account, _server = smtp_account()
    queue(account)
    depth = queue_depth()
    assert depth["queued"] == 1 and depth["sent"] == 0
