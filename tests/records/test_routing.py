"""Routing of incoming mail into records (issue 5): replies, mentions, rules, append-to, loops."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from postroom.accounts.models import EmailAccount
from postroom.core.models import Event, Notification
from postroom.incoming.models import Message
from postroom.records import routing
from postroom.records.actions import (
    RuleSpec,
    do_create_record,
    do_link_outbox_item,
    do_save_routing_settings,
    do_save_rule,
    do_set_append_to,
)
from postroom.records.models import (
    Contact,
    LinkVia,
    Record,
    RecordLink,
    RoutedMessage,
    RouteOutcome,
)
from postroom.records.routing import do_route_pending
from postroom.records.tokens import record_message_id
from tests.records.conftest import deliver, mail, record_type, store
from tests.web.conftest import make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def issues(support: EmailAccount) -> EmailAccount:
    do_set_append_to(support, record_type("issue"))
    return support


def _only_record() -> Record:
    [record] = Record.objects.all()
    return record


def test_append_to_creates_an_issue_with_the_sender_as_contact(
    issues: EmailAccount, owner: User
) -> None:
    [message], report = deliver(issues, mail("Printer on fire"))
    record = _only_record()
    assert (record.reference, record.title, record.status) == ("ISSUE-1", "Printer on fire", "Open")
    assert record.contact is not None and record.contact.email == "carol@customer.example"
    assert record.contact.name == "Carol Customer"
    assert record.account == issues and record.owner == owner
    assert list(record.links.values_list("message_id", "via")) == [(message.pk, LinkVia.CREATED)]
    assert RoutedMessage.objects.get(message=message).outcome == RouteOutcome.CREATED
    assert (report.routed, report.created) == (1, 1)
    # A second message makes ISSUE-2; numbering is per type.
    deliver(issues, mail("Another problem", sender="dan@customer.example"))
    assert set(Record.objects.values_list("reference", flat=True)) == {"ISSUE-1", "ISSUE-2"}


def test_routing_is_once_per_message(issues: EmailAccount) -> None:
    deliver(issues, mail())
    assert do_route_pending(issues).routed == 0
    assert Record.objects.count() == 1 and RecordLink.objects.count() == 1


def test_without_append_to_mail_makes_no_record(support: EmailAccount) -> None:
    [message], _ = deliver(support, mail())
    assert Record.objects.count() == 0
    assert RoutedMessage.objects.get(message=message).outcome == RouteOutcome.NONE


def test_append_to_per_folder_wins_over_every_folder(support: EmailAccount) -> None:
    do_set_append_to(support, record_type("issue"))
    do_set_append_to(support, record_type("job_applicant"), folder="Jobs")
    deliver(support, mail("My CV"), folder="Jobs")
    deliver(support, mail("Broken"), folder="INBOX")
    assert sorted(Record.objects.values_list("reference", flat=True)) == ["ISSUE-1", "JOB-1"]


@pytest.mark.parametrize("header", ["in_reply_to", "references"])
def test_a_reply_joins_the_record_by_one_threading_header(
    issues: EmailAccount, header: str
) -> None:
    [first], _ = deliver(issues, mail("Printer on fire"))
    parent = f"<{first.message_id}>"
    kwargs = (
        {"in_reply_to": parent} if header == "in_reply_to" else {"references": ["<x@y>", parent]}
    )
    [reply], _ = deliver(issues, mail("Re: Printer on fire", **kwargs))  # type: ignore[arg-type]
    record = _only_record()
    assert RecordLink.objects.get(message=reply).record == record
    assert RoutedMessage.objects.get(message=reply).outcome == RouteOutcome.LINKED


def test_subject_alone_never_links(issues: EmailAccount) -> None:
    deliver(issues, mail("Printer on fire"))
    deliver(issues, mail("Re: Printer on fire"))
    assert Record.objects.count() == 2


def test_a_reply_to_our_token_message_id_finds_the_record_without_any_stored_parent(
    issues: EmailAccount,
) -> None:
    record = do_create_record(record_type("issue"), title="Opened by hand", account=issues)
    ours = record_message_id(record.pk, "example.test")
    # Outlook kept only In-Reply-To, and we never stored what we sent.
    [reply], _ = deliver(issues, mail("Re: Opened by hand", in_reply_to=f"<{ours}>"))
    link = RecordLink.objects.get(message=reply)
    assert (link.record, link.via) == (record, LinkVia.TOKEN)


def test_a_forged_token_is_not_trusted(issues: EmailAccount) -> None:
    record = do_create_record(record_type("issue"), title="Secret", account=issues)
    forged = record_message_id(record.pk, "example.test").replace(
        f".r{record.pk}.", f".r{record.pk}."
    )
    left, _at, domain = forged.partition("@")
    forged = left[:-10] + "aaaaaaaaaa@" + domain
    [reply], _ = deliver(issues, mail("Re: Secret", in_reply_to=f"<{forged}>"))
    assert RecordLink.objects.get(message=reply).record != record


def test_a_reply_to_mail_we_sent_from_a_record_is_linked_by_the_outbox_item(
    issues: EmailAccount,
) -> None:
    from postroom.outgoing.actions import do_queue_message

    record = do_create_record(record_type("issue"), title="Sent first", account=issues)
    # Sent with a plain Message-ID (not a token): the outbox link alone must do.
    item = do_queue_message(
        issues, actor=None, to=["carol@customer.example"], subject="Hi", text="x"
    )
    do_link_outbox_item(record, item)
    [reply], _ = deliver(issues, mail("Re: Hi", references=[f"<{item.message_id}>"]))
    assert RecordLink.objects.get(message=reply).record == record


def test_a_forward_starts_a_new_record(issues: EmailAccount) -> None:
    [first], _ = deliver(issues, mail("Printer on fire"))
    deliver(issues, mail("Fwd: Printer on fire", in_reply_to=f"<{first.message_id}>"))
    assert Record.objects.count() == 2


def test_a_reply_sent_to_an_append_to_address_of_another_type_starts_a_new_record(
    issues: EmailAccount, owner: User
) -> None:
    jobs = make_account("jobs@example.test", owner=owner)
    do_set_append_to(jobs, record_type("job_applicant"))
    [first], _ = deliver(issues, mail("Printer on fire"))
    [reply], _ = deliver(
        jobs,
        mail("Re: Printer on fire", to="jobs@example.test", in_reply_to=f"<{first.message_id}>"),
    )
    assert RecordLink.objects.get(message=reply).record.reference == "JOB-1"


def test_plus_address_links_for_a_participant_only(issues: EmailAccount) -> None:
    deliver(issues, mail("Printer on fire"))
    # No threading headers at all, but the reference in the address.
    [known], _ = deliver(issues, mail("new words", to="support+ISSUE-1@example.test"))
    link = RecordLink.objects.get(message=known)
    assert (link.record.reference, link.via) == ("ISSUE-1", LinkVia.PLUS_ADDRESS)
    # Someone who never took part cannot attach mail to the record by guessing.
    [stranger], _ = deliver(
        issues, mail("hello", sender="eve@evil.example", to="support+ISSUE-1@example.test")
    )
    assert RecordLink.objects.get(message=stranger).record.reference == "ISSUE-2"


def test_reference_in_the_subject_links(issues: EmailAccount) -> None:
    deliver(issues, mail("Printer on fire"))
    [again], _ = deliver(issues, mail("About [ISSUE-1] again"))
    link = RecordLink.objects.get(message=again)
    assert (link.record.reference, link.via) == ("ISSUE-1", LinkVia.SUBJECT_REFERENCE)


@pytest.mark.parametrize(
    ("sender", "headers"),
    [
        ("carol@customer.example", {"Auto-Submitted": "auto-replied"}),
        ("carol@customer.example", {"List-Id": "<users.lists.example>"}),
        ("carol@customer.example", {"Precedence": "bulk"}),
        ("MAILER-DAEMON@mx.example", {}),
        ("no-reply@shop.example", {}),
        ("support@example.test", {}),  # our own address: a loop through ourselves
    ],
)
def test_automatic_mail_never_creates_records(
    issues: EmailAccount, sender: str, headers: dict[str, str]
) -> None:
    [message], _ = deliver(issues, mail(sender=sender, headers=headers))
    assert Record.objects.count() == 0
    assert RoutedMessage.objects.get(message=message).outcome == RouteOutcome.LOOP


def test_too_many_records_from_one_sender_are_held_and_reported(
    issues: EmailAccount, owner: User
) -> None:
    do_save_routing_settings(issues, loop_limit=2, loop_window_minutes=60)
    messages, report = deliver(issues, *(mail(f"Problem {n}") for n in range(4)))
    assert Record.objects.count() == 2
    outcomes = [RoutedMessage.objects.get(message=m).outcome for m in messages]
    assert outcomes.count(RouteOutcome.HELD) == 2 and report.held == 2
    [notice] = Notification.objects.filter(user=owner, kind="routing.held")
    assert "carol@customer.example" in notice.title
    assert Event.objects.filter(kind="routing.held", account=issues).count() == 2


def test_rules_skip_set_type_assign_owner_label_and_stop(issues: EmailAccount) -> None:
    sam = User.objects.create_user("sam")
    do_save_rule(
        issues,
        RuleSpec(
            name="newsletters",
            conditions=[{"field": "subject", "op": "contains", "value": "newsletter"}],
            actions=[{"action": "skip"}],
        ),
    )
    do_save_rule(
        issues,
        RuleSpec(
            name="sales",
            conditions=[{"field": "recipients", "op": "contains", "value": "sales@"}],
            actions=[
                {"action": "set_record_type", "value": "lead"},
                {"action": "assign_owner", "value": "sam"},
                {"action": "label", "value": "sales"},
                {"action": "stop"},
            ],
        ),
    )
    do_save_rule(
        issues,
        RuleSpec(
            name="never reached after stop",
            conditions=[{"field": "from", "op": "ends_with", "value": "customer.example"}],
            actions=[{"action": "label", "value": "late"}],
        ),
    )
    [news, lead, plain], _ = deliver(
        issues,
        mail("Our newsletter"),
        mail("Quote please", to="support@example.test", cc="sales@example.test"),
        mail("Broken"),
    )
    assert RoutedMessage.objects.get(message=news).outcome == RouteOutcome.SKIPPED
    lead_routing = RoutedMessage.objects.get(message=lead)
    assert lead_routing.record is not None and lead_routing.record.reference == "LEAD-1"
    assert lead_routing.record.owner == sam and lead_routing.labels == ["sales"]
    plain_routing = RoutedMessage.objects.get(message=plain)
    assert plain_routing.labels == ["late"] and plain_routing.record is not None
    assert plain_routing.record.reference == "ISSUE-1"


def test_contacts_are_created_once_per_address_when_asked(support: EmailAccount) -> None:
    do_save_routing_settings(support, create_contacts=True)
    deliver(
        support,
        mail(sender="Carol <CAROL@customer.example>"),
        mail(sender="carol@customer.example"),
    )
    deliver(support, mail(sender="news@list.example", headers={"List-Id": "<l.example>"}))
    assert list(Contact.objects.values_list("email", "name")) == [
        ("carol@customer.example", "Carol")
    ]


def test_a_failure_while_routing_saves_nothing_half_and_is_shown(
    issues: EmailAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(routing, "do_link_message", broken)
    [message], report = deliver(issues, mail())
    assert report.failed == 1
    # The record made before the failure was rolled back with it.
    assert Record.objects.count() == 0 and Contact.objects.count() == 0
    routed = RoutedMessage.objects.get(message=message)
    assert routed.outcome == RouteOutcome.ERROR and "disk on fire" in routed.detail
    assert Event.objects.filter(kind="routing.failed", account=issues).exists()
    # After the fix, re-routing creates the record once.
    monkeypatch.undo()
    routing.do_reroute([message])
    assert do_route_pending(issues).created == 1 and Record.objects.count() == 1


def test_messages_still_waiting_for_extraction_are_not_routed_yet(issues: EmailAccount) -> None:
    from postroom.incoming.ingest import RawMail, store_imap_batch
    from postroom.incoming.models import FolderState

    state = FolderState.objects.create(account=issues, name="INBOX", uidvalidity=1)
    store_imap_batch(state, 1, [RawMail(uid=1, raw=mail())])
    assert do_route_pending(issues).routed == 0
    [message] = Message.objects.all()
    assert not RoutedMessage.objects.filter(message=message).exists()


def test_old_mail_routes_in_date_order(issues: EmailAccount) -> None:
    from tests.records.conftest import recent

    newer = mail("Newer", date=recent(1))
    older = mail("Older", date=recent(60) - timedelta(days=1))
    store(issues, newer, older)
    do_route_pending(issues)
    assert list(Record.objects.order_by("number").values_list("title", flat=True)) == [
        "Older",
        "Newer",
    ]


@pytest.mark.parametrize("status", ["Replied", "Closed", "Resolved"])
def test_a_customer_reply_reopens_a_waiting_or_closed_record(
    issues: EmailAccount, status: str
) -> None:
    from postroom.records.actions import do_update_record

    [first], _ = deliver(issues, mail("Printer on fire"))
    record = do_update_record(_only_record(), status=status)
    deliver(issues, mail("Re: Printer on fire", in_reply_to=f"<{first.message_id}>"))
    record.refresh_from_db()
    assert record.status == "Open"


def test_our_own_copy_of_a_reply_does_not_reopen(issues: EmailAccount) -> None:
    from postroom.records.actions import do_update_record

    [first], _ = deliver(issues, mail("Printer on fire"))
    record = do_update_record(_only_record(), status="Replied")
    deliver(
        issues,
        mail(
            "Re: Printer on fire",
            sender="support@example.test",
            in_reply_to=f"<{first.message_id}>",
        ),
    )
    record.refresh_from_db()
    assert record.status == "Replied"
    assert record.links.count() == 2


def test_with_nothing_configured_replies_and_mentions_still_find_their_record(
    support: EmailAccount, owner: User
) -> None:
    """The quick path for accounts without append-to, rules, contacts or auto-reply."""
    from postroom.records.actions import do_link_message

    [first], _ = deliver(support, mail("Printer on fire"))
    record = do_create_record(record_type("issue"), title="By hand", account=support)
    do_link_message(record, first, LinkVia.MANUAL)
    others = [mail(f"Unrelated {n}", sender=f"p{n}@else.example") for n in range(5)]
    messages, report = deliver(
        support,
        *others,
        mail("Re: Printer on fire", in_reply_to=f"<{first.message_id}>"),
        mail("more", to=f"support+{record.reference}@example.test"),
        mail(f"About [{record.reference}]"),
    )
    assert report.routed == 8
    linked = [
        m.pk for m in messages if RecordLink.objects.filter(message=m, record=record).exists()
    ]
    assert linked == [m.pk for m in messages[5:]]
    assert (
        RoutedMessage.objects.filter(message__in=messages[:5], outcome=RouteOutcome.NONE).count()
        == 5
    )


def test_a_message_extracted_late_is_still_routed(issues: EmailAccount) -> None:
    from postroom.incoming.extract import extract_messages
    from postroom.incoming.ingest import RawMail, store_imap_batch
    from postroom.incoming.models import FolderState

    state = FolderState.objects.create(account=issues, name="Slow", uidvalidity=1)
    store_imap_batch(state, 1, [RawMail(uid=1, raw=mail("Waits for extraction"))])
    [late] = Message.objects.filter(subject="Waits for extraction")
    deliver(issues, mail("Extracted at once"))  # routes, and moves the cursor on
    assert not RoutedMessage.objects.filter(message=late).exists()
    extract_messages([late.pk], None, parallel=False)
    assert do_route_pending(issues).created == 1
    assert RoutedMessage.objects.get(message=late).outcome == RouteOutcome.CREATED


@pytest.mark.parametrize("configured", [True, False])
def test_routed_mail_is_reported_to_webhooks_in_record_order(
    support: EmailAccount, owner: User, configured: bool
) -> None:
    """message.received for every routed message, on the full path and the quick one."""
    from postroom.webhooks.actions import do_create_subscription
    from postroom.webhooks.models import WebhookDelivery

    User.objects.filter(pk=owner.pk).update(is_superuser=True)
    do_create_subscription(
        actor=User.objects.get(pk=owner.pk),
        name="crm",
        url="https://crm.example/hook",
        event_types=["message.received", "record.created"],
    )
    if configured:
        do_set_append_to(support, record_type("issue"))
    deliver(support, mail("Printer on fire"), mail("Other", sender="dan@customer.example"))
    rows = list(WebhookDelivery.objects.order_by("pk").values_list("event_type", "ordering_key"))
    received = [key for kind, key in rows if kind == "message.received"]
    assert len(received) == 2
    if configured:
        [first, second] = Record.objects.order_by("number")
        assert rows[:2] == [
            ("record.created", f"record:{first.pk}"),
            ("message.received", f"record:{first.pk}"),
        ]
        assert received == [f"record:{first.pk}", f"record:{second.pk}"]
    else:
        assert received == [f"account:{support.pk}"] * 2
