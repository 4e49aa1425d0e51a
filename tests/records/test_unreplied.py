"""B11: threads nobody answered within N minutes are reported once, to the chosen addresses."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone, translation

from postroom.accounts.models import EmailAccount
from postroom.core.models import Event, Notification
from postroom.incoming.blobs import read_blob
from postroom.incoming.models import Message
from postroom.mail.mime.fields import header_fields
from postroom.outgoing.actions import do_queue_message
from postroom.outgoing.models import OutboxItem
from postroom.outgoing.queue import deliver_due
from postroom.outgoing.worker import Worker
from postroom.records import unreplied
from postroom.records.actions import do_save_routing_settings, routing_settings
from postroom.records.models import UnrepliedNotice
from postroom.records.unreplied import do_check_unreplied
from tests.records.conftest import deliver, mail, store
from tests.servers.smtp import SmtpServer
from tests.web.conftest import make_account

pytestmark = pytest.mark.django_db

BOSS = "boss@example.test"


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    # Some checks read English text; a language left active by another test must not matter.
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    # The per-process memory of settled threads must not leak between tests
    # (SQLite gives rolled-back ids out again).
    unreplied._settled.clear()
    yield
    unreplied._settled.clear()


@pytest.fixture
def watched(support: EmailAccount) -> EmailAccount:
    do_save_routing_settings(support, unreplied_after_minutes=30, unreplied_notify=[BOSS])
    return support


def later(minutes: float) -> datetime:
    return timezone.now() + timedelta(minutes=minutes)


def _notice_items() -> list[OutboxItem]:
    return [
        i
        for i in OutboxItem.objects.all()
        if BOSS in i.recipients.values_list("address", flat=True)
    ]


def test_switching_on_and_off_sets_when_it_counts_from(support: EmailAccount) -> None:
    before = timezone.now()
    do_save_routing_settings(support, unreplied_after_minutes=30)
    since = routing_settings(support).unreplied_since
    assert since is not None and since >= before
    do_save_routing_settings(support, unreplied_notify=[BOSS])  # unchanged while on
    assert routing_settings(support).unreplied_since == since
    do_save_routing_settings(support, unreplied_after_minutes=None)
    assert routing_settings(support).unreplied_since is None


def test_an_unreplied_thread_is_reported_once_after_n_minutes(
    watched: EmailAccount, owner: User
) -> None:
    [message], _ = deliver(watched, mail("Printer on fire"))

    assert do_check_unreplied(now=later(10)).notified == 0  # not yet 30 minutes
    assert not UnrepliedNotice.objects.exists()

    report = do_check_unreplied(now=later(31))
    assert report.notified == 1 and report.thread_ids == [message.thread_id]
    assert UnrepliedNotice.objects.filter(thread_id=message.thread_id).exists()
    [item] = _notice_items()
    assert item.account == watched
    assert "Printer on fire" in item.subject
    raw = read_blob(item.blob_id)
    assert header_fields(raw)["auto-submitted"] == ["auto-generated"]
    assert b"carol@customer.example" in raw and f"/mail/messages/{message.pk}/".encode() in raw
    [notification] = Notification.objects.filter(kind="thread.unreplied")
    assert notification.user == owner and notification.account == watched

    # Once per thread, whatever the memory of the worker says.
    unreplied._settled.clear()
    assert do_check_unreplied(now=later(90)).notified == 0
    assert len(_notice_items()) == 1
    assert Notification.objects.filter(kind="thread.unreplied").count() == 1


def test_no_notice_when_we_replied_through_the_outbox(watched: EmailAccount) -> None:
    [message], _ = deliver(watched, mail("Where is my order?"))
    do_queue_message(
        watched,
        actor=None,
        to=["carol@customer.example"],
        subject="Re: Where is my order?",
        text="On its way.\n",
        in_reply_to=message.message_id,
        references=[message.message_id],
    )
    assert do_check_unreplied(now=later(31)).notified == 0
    assert not UnrepliedNotice.objects.exists() and not _notice_items()


def test_an_auto_reply_is_not_an_answer(watched: EmailAccount) -> None:
    [message], _ = deliver(watched, mail("Where is my order?"))
    do_queue_message(
        watched,
        actor=None,
        to=["carol@customer.example"],
        subject="Out of office",
        text="Back on Monday.\n",
        in_reply_to=message.message_id,
        extra_headers={"Auto-Submitted": "auto-replied"},
    )
    assert do_check_unreplied(now=later(31)).notified == 1


def test_mail_to_the_sender_that_is_not_a_reply_does_not_count(watched: EmailAccount) -> None:
    deliver(watched, mail("Where is my order?"))
    do_queue_message(
        watched, actor=None, to=["carol@customer.example"], subject="Newsletter", text="x\n"
    )
    assert do_check_unreplied(now=later(31)).notified == 1


def test_no_notice_when_our_reply_is_in_the_thread(watched: EmailAccount) -> None:
    [message], _ = deliver(watched, mail("Where is my order?"))
    # Our answer, sent from another client, comes back through the Sent folder.
    store(
        watched,
        mail(
            "Re: Where is my order?",
            sender="Support <support@example.test>",
            to="carol@customer.example",
            in_reply_to=f"<{message.message_id}>",
        ),
        folder="Sent",
    )
    assert Message.objects.filter(thread_id=message.thread_id).count() == 2
    assert do_check_unreplied(now=later(31)).notified == 0


def test_a_follow_up_after_our_reply_is_unreplied_again(watched: EmailAccount) -> None:
    [first], _ = deliver(watched, mail("Where is my order?"))
    store(
        watched,
        mail(
            "Re: Where is my order?",
            sender="support@example.test",
            to="carol@customer.example",
            in_reply_to=f"<{first.message_id}>",
        ),
        folder="Sent",
    )
    assert do_check_unreplied(now=later(31)).notified == 0
    [ours] = Message.objects.filter(from_email="support@example.test")
    deliver(
        watched,
        mail("Re: Re: Where is my order?", in_reply_to=f"<{ours.message_id}>", date=later(5)),
    )
    assert do_check_unreplied(now=later(20)).notified == 0
    assert do_check_unreplied(now=later(36)).notified == 1


def test_a_message_flagged_answered_needs_no_notice(watched: EmailAccount) -> None:
    [message], _ = deliver(watched, mail("Where is my order?"))
    Message.objects.filter(pk=message.pk).update(answered=True)
    assert do_check_unreplied(now=later(31)).notified == 0


def test_automatic_mail_needs_no_answer(watched: EmailAccount) -> None:
    deliver(watched, mail("Delivery report", headers={"Auto-Submitted": "auto-generated"}))
    assert do_check_unreplied(now=later(31)).notified == 0


def test_old_mail_never_triggers_notices(support: EmailAccount) -> None:
    # Mail stored before the setting was switched on...
    deliver(support, mail("Before the switch"))
    do_save_routing_settings(support, unreplied_after_minutes=30, unreplied_notify=[BOSS])
    # ...and a first sync of old mail after it: neither is reported.
    old = timezone.now() - timedelta(days=2)
    deliver(support, *[mail(f"Old {n}", date=old + timedelta(minutes=n)) for n in range(5)])
    assert do_check_unreplied(now=later(31)).notified == 0
    # Mail older than a week is never reported, even when the setting is older.
    settings = routing_settings(support)
    settings.unreplied_since = timezone.now() - timedelta(days=30)
    settings.save()
    unreplied._settled.clear()
    assert do_check_unreplied(now=later(8 * 24 * 60)).notified == 0
    assert not UnrepliedNotice.objects.exists()


def test_nothing_configured_costs_one_query(
    support: EmailAccount, django_assert_num_queries: Callable[..., object]
) -> None:
    deliver(support, mail("Nobody is watching"))
    with django_assert_num_queries(1):  # type: ignore[attr-defined]
        assert do_check_unreplied(now=later(600)).notified == 0


def test_without_addresses_only_the_account_people_are_told(
    support: EmailAccount, owner: User
) -> None:
    do_save_routing_settings(support, unreplied_after_minutes=5)
    deliver(support, mail("Hello?"))
    assert do_check_unreplied(now=later(6)).notified == 1
    assert Notification.objects.get(kind="thread.unreplied").user == owner
    assert not _notice_items()


def test_an_account_that_cannot_send_uses_the_default_outgoing_account(
    watched: EmailAccount,
) -> None:
    EmailAccount.objects.filter(pk=watched.pk).update(outgoing_enabled=False)
    default = make_account(
        "notify@example.test", owner=None, default_outgoing=True, incoming_enabled=False
    )
    deliver(EmailAccount.objects.get(pk=watched.pk), mail("Hello?"))
    assert do_check_unreplied(now=later(31)).notified == 1
    [item] = _notice_items()
    assert item.account == default


def test_when_no_account_can_send_the_notice_is_still_shown_and_logged(
    watched: EmailAccount,
) -> None:
    EmailAccount.objects.filter(pk=watched.pk).update(outgoing_enabled=False)
    deliver(EmailAccount.objects.get(pk=watched.pk), mail("Hello?"))
    assert do_check_unreplied(now=later(31)).notified == 1
    assert not _notice_items()
    assert Notification.objects.filter(kind="thread.unreplied").exists()
    event = Event.objects.get(kind="thread.unreplied")
    assert event.level == "warning" and "could not be queued" in event.message


@pytest.mark.django_db(transaction=True)
def test_the_notice_arrives_over_smtp(
    owner: User, smtp_server_factory: Callable[..., SmtpServer]
) -> None:
    server = smtp_server_factory()
    account = make_account(
        "desk@example.test",
        owner=owner,
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_security="none",
        smtp_auth=False,
    )
    do_save_routing_settings(account, unreplied_after_minutes=15, unreplied_notify=[BOSS])
    [message], _ = deliver(account, mail("Invoice question", to="desk@example.test"))
    assert do_check_unreplied(now=later(16)).notified == 1
    deliver_due("test-worker", 10)
    received = {tuple(m.rcpt_tos): m for m in server.wait_for_messages(1)}
    notice = received[(BOSS,)].message
    assert notice["Auto-Submitted"] == "auto-generated"
    assert notice["From"] == "desk@example.test" or "desk@example.test" in notice["From"]
    body = notice.get_content()
    assert "Invoice question" in notice["Subject"] and "carol@customer.example" in body
    assert f"/mail/messages/{message.pk}/" in body


@pytest.mark.django_db(transaction=True)
def test_the_worker_reports_unreplied_threads_by_itself(
    owner: User, smtp_server_factory: Callable[..., SmtpServer]
) -> None:
    server = smtp_server_factory()
    account = make_account(
        "desk@example.test",
        owner=owner,
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_security="none",
        smtp_auth=False,
    )
    do_save_routing_settings(account, unreplied_after_minutes=1, unreplied_notify=[BOSS])
    settings = routing_settings(account)
    settings.unreplied_since = timezone.now() - timedelta(minutes=5)
    settings.save()
    deliver(account, mail("Anyone there?", to="desk@example.test", date=later(-2)))

    worker = Worker(threads=1, poll_seconds=0.2)
    worker.unreplied_seconds = 0.2
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        [received] = server.wait_for_messages(1, timeout=15)
    finally:
        worker.stop()
        runner.join(timeout=30)
    assert received.rcpt_tos == (BOSS,)
    assert "Anyone there?" in received.message["Subject"]
    assert UnrepliedNotice.objects.count() == 1


def test_people_among_the_addresses_get_one_mail_not_two(
    support: EmailAccount, owner: User
) -> None:
    make_account("notify@example.test", owner=None, default_outgoing=True, incoming_enabled=False)
    do_save_routing_settings(support, unreplied_after_minutes=5, unreplied_notify=[owner.email])
    deliver(support, mail("Hello?"))
    assert do_check_unreplied(now=later(6)).notified == 1
    assert Notification.objects.get(kind="thread.unreplied").user == owner
    mails = [
        i
        for i in OutboxItem.objects.all()
        if owner.email in i.recipients.values_list("address", flat=True)
    ]
    assert len(mails) == 1 and mails[0].account == support


def test_people_not_among_the_addresses_are_mailed_the_notification(
    watched: EmailAccount, owner: User
) -> None:
    default = make_account(
        "notify@example.test", owner=None, default_outgoing=True, incoming_enabled=False
    )
    deliver(watched, mail("Hello?"))
    assert do_check_unreplied(now=later(31)).notified == 1
    [to_owner] = [
        i
        for i in OutboxItem.objects.all()
        if owner.email in i.recipients.values_list("address", flat=True)
    ]
    assert to_owner.account == default and "Hello?" in to_owner.subject
