"""Per-account routing pages: settings with append-to, the rules editor, held mail."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.records.actions import do_save_routing_settings, do_set_append_to, routing_settings
from postroom.records.models import AppendTo, Record, RecordType, RoutedMessage, RouteOutcome, Rule
from tests.web.conftest import client_for, make_account
from tests.web.records_mail import deliver, mail

pytestmark = pytest.mark.django_db


@pytest.fixture
def support(alice: User, domain: EmailDomain) -> EmailAccount:
    return make_account("support@example.test", owner=alice, folders=["INBOX", "Jobs"])


def settings_post(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "append_0": "issue",  # every folder
        "append_1": "",  # INBOX
        "append_2": "job_applicant",  # Jobs
        "create_contacts": "on",
        "auto_reply_subject": "",
        "auto_reply_text": "",
        "auto_reply_interval_days": "4",
        "unreplied_after_minutes": "",
        "unreplied_notify": "",
        "loop_limit": "10",
        "loop_window_minutes": "60",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_routing_pages_need_the_manage_right(alice: User, bob: User, support: EmailAccount) -> None:
    names = (
        "web:account_routing",
        "web:account_rules",
        "web:account_rule_create",
        "web:account_held",
    )
    bobs = client_for(bob)
    for name in names:
        assert bobs.get(reverse(name, args=[support.pk])).status_code == 404, name
    assert (
        bobs.post(reverse("web:account_routing", args=[support.pk]), settings_post()).status_code
        == 404
    )
    do_share_account(support, actor=alice, user=bob, can_read=True, can_send=True)
    for name in names:
        assert bobs.get(reverse(name, args=[support.pk])).status_code == 403, name
    assert (
        bobs.post(reverse("web:account_routing", args=[support.pk]), settings_post()).status_code
        == 403
    )
    assert not AppendTo.objects.exists()
    # The account page links to the routing page only for those who manage it.
    link = reverse("web:account_routing", args=[support.pk]).encode()
    assert link not in bobs.get(reverse("web:account_detail", args=[support.pk])).content
    assert link in client_for(alice).get(reverse("web:account_detail", args=[support.pk])).content


def test_settings_save_append_to_per_folder(alice: User, support: EmailAccount) -> None:
    client = client_for(alice)
    page = client.get(reverse("web:account_routing", args=[support.pk]))
    assert page.status_code == 200
    assert b'data-folder="Jobs"' in page.content
    response = client.post(
        reverse("web:account_routing", args=[support.pk]),
        settings_post(unreplied_after_minutes="30", unreplied_notify="boss@example.test"),
    )
    assert response.status_code == 302, response.content.decode()[-6000:]
    rows = {row.folder: row.record_type.key for row in AppendTo.objects.filter(account=support)}
    assert rows == {"": "issue", "Jobs": "job_applicant"}
    stored = routing_settings(support)
    assert stored.create_contacts is True
    assert stored.unreplied_after_minutes == 30
    assert stored.unreplied_notify == ["boss@example.test"]

    # Mail in Jobs creates a Job Applicant, elsewhere an Issue.
    deliver(support, mail("My CV"), folder="Jobs")
    deliver(support, mail("Broken"))
    assert {r.title: r.type.key for r in Record.objects.all()} == {
        "My CV": "job_applicant",
        "Broken": "issue",
    }

    # Choosing "no records" removes the folder's setting.
    response = client.post(
        reverse("web:account_routing", args=[support.pk]), settings_post(append_2="")
    )
    assert response.status_code == 302
    assert set(AppendTo.objects.filter(account=support).values_list("folder", flat=True)) == {""}


def test_settings_errors_are_shown_next_to_the_field(alice: User, support: EmailAccount) -> None:
    client = client_for(alice)
    url = reverse("web:account_routing", args=[support.pk])
    cases = [
        (settings_post(auto_reply_enabled="on"), "auto_reply_text"),
        (settings_post(loop_limit="0"), "loop_limit"),
        (settings_post(unreplied_notify="not an address"), "unreplied_notify"),
        (
            settings_post(
                auto_reply_enabled="on",
                auto_reply_text="Thanks",
                auto_reply_starts_at="2026-05-02T10:00",
                auto_reply_ends_at="2026-05-01T10:00",
            ),
            "auto_reply_ends_at",
        ),
    ]
    for data, field in cases:
        response = client.post(url, data)
        assert response.status_code == 422, field
        assert f'id="id_{field}_errors"'.encode() in response.content, field
    bad_type = client.post(url, settings_post(append_1="no-such-type"))
    assert bad_type.status_code == 422
    assert (
        b'id="row-append_1"' in bad_type.content and b"There is no record type" in bad_type.content
    )
    # Nothing of a refused form was saved.
    assert not AppendTo.objects.exists()
    assert routing_settings(support).pk is None


def test_rules_editor(alice: User, support: EmailAccount) -> None:
    client = client_for(alice)
    url = reverse("web:account_rule_create", args=[support.pk])
    assert client.get(url).status_code == 200
    missing_value = client.post(
        url,
        {
            "name": "Newsletters",
            "match": "all",
            "enabled": "on",
            "cond_0_field": "",
            "cond_1_field": "subject",
            "cond_1_op": "contains",
            "cond_1_value": "",
            "act_0_action": "skip",
        },
    )
    assert missing_value.status_code == 422
    assert b'id="id_cond_1_value_errors"' in missing_value.content
    unknown_type = client.post(
        url,
        {
            "name": "Sales",
            "match": "all",
            "cond_0_field": "to",
            "cond_0_op": "contains",
            "cond_0_value": "sales@",
            "act_1_action": "set_record_type",
            "act_1_value": "no-such-type",
        },
    )
    assert unknown_type.status_code == 422
    assert b'id="id_act_1_value_errors"' in unknown_type.content
    assert not Rule.objects.exists()

    for name in ("First", "Second", "Third"):
        response = client.post(
            url,
            {
                "name": name,
                "match": "any",
                "enabled": "on",
                "cond_0_field": "header",
                "cond_0_op": "exists",
                "cond_0_header": "List-Id",
                "act_0_action": "label",
                "act_0_value": "list",
                "act_1_action": "stop",
            },
        )
        assert response.status_code == 302
    first = Rule.objects.get(name="First")
    assert first.conditions == [{"field": "header", "op": "exists", "header": "List-Id"}]
    assert first.actions == [{"action": "label", "value": "list"}, {"action": "stop"}]

    def order() -> list[str]:
        return list(Rule.objects.filter(account=support).values_list("name", flat=True))

    third = Rule.objects.get(name="Third")
    move = reverse("web:account_rule_move", args=[support.pk, third.pk])
    assert client.post(move, {"direction": "up"}).status_code == 302
    assert order() == ["First", "Third", "Second"]
    client.post(move, {"direction": "up"})
    client.post(move, {"direction": "up"})
    assert order() == ["Third", "First", "Second"]

    edit = reverse("web:account_rule_edit", args=[support.pk, first.pk])
    page = client.get(edit)
    assert b'value="List-Id"' in page.content
    client.post(
        edit,
        {
            "name": "First renamed",
            "match": "all",
            "cond_0_field": "from",
            "cond_0_op": "ends_with",
            "cond_0_value": "@spam.example",
            "act_0_action": "skip",
        },
    )
    first.refresh_from_db()
    assert (first.name, first.enabled, first.actions) == (
        "First renamed",
        False,
        [{"action": "skip"}],
    )
    listing = client.get(reverse("web:account_rules", args=[support.pk])).content.decode()
    positions = [listing.index(f'data-rule="{n}"') for n in ("Third", "First renamed", "Second")]
    assert positions == sorted(positions)

    client.post(reverse("web:account_rule_delete", args=[support.pk, first.pk]))
    assert order() == ["Third", "Second"]


def test_held_mail_is_released_into_a_record(alice: User, support: EmailAccount) -> None:
    do_set_append_to(support, RecordType.objects.get(key="issue"))
    do_save_routing_settings(support, loop_limit=1, loop_window_minutes=60)
    messages, report = deliver(support, mail("One"), mail("Two"))
    assert (report.created, report.held) == (1, 1)
    held = messages[1]
    client = client_for(alice)
    listing = client.get(reverse("web:account_held", args=[support.pk]))
    assert f'data-message="{held.pk}"'.encode() in listing.content
    assert b'id="reroute-all"' not in listing.content  # nothing failed
    assert (
        client.get(reverse("web:record_held_redirect"), {"account": support.pk}).status_code == 302
    )

    response = client.post(
        reverse("web:account_held_release", args=[support.pk]), {"message": str(held.pk)}
    )
    assert response.status_code == 302
    record = Record.objects.get(title="Two")
    assert record.links.filter(message=held).exists()
    assert RoutedMessage.objects.get(message=held).outcome == RouteOutcome.RELEASED
    # The limit itself still holds for the next mail.
    assert routing_settings(support).loop_limit == 1
    _messages, report = deliver(support, mail("Three"))
    assert report.held == 1
    # Releasing a message that is not held says so and changes nothing.
    again = client.post(
        reverse("web:account_held_release", args=[support.pk]),
        {"message": str(held.pk)},
        follow=True,
    )
    assert b"not held" in again.content
    assert Record.objects.filter(title="Two").count() == 1


def test_failed_routing_is_routed_again(alice: User, support: EmailAccount) -> None:
    do_set_append_to(support, RecordType.objects.get(key="issue"))
    messages, _report = deliver(support, mail("Fine"))
    # As if routing had failed on it.
    RoutedMessage.objects.filter(message=messages[0]).update(
        outcome=RouteOutcome.ERROR, detail="boom"
    )
    Record.objects.all().delete()
    client = client_for(alice)
    listing = client.get(reverse("web:account_held", args=[support.pk]))
    assert b"boom" in listing.content
    assert b'id="reroute-all"' in listing.content
    response = client.post(
        reverse("web:account_held_reroute", args=[support.pk]), {"message": str(messages[0].pk)}
    )
    assert response.status_code == 302
    assert RoutedMessage.objects.get(message=messages[0]).outcome == RouteOutcome.CREATED
    assert Record.objects.filter(title="Fine").exists()


def test_auto_reply_dates_round_trip(alice: User, support: EmailAccount) -> None:
    client = client_for(alice)
    url = reverse("web:account_routing", args=[support.pk])
    response = client.post(
        url,
        settings_post(
            auto_reply_enabled="on",
            auto_reply_subject="Away",
            auto_reply_text="Back on Monday.",
            auto_reply_starts_at="2026-05-01T10:00",
            auto_reply_ends_at="2026-05-04T08:30",
        ),
    )
    assert response.status_code == 302
    stored = routing_settings(support)
    assert stored.auto_reply_enabled and stored.auto_reply_text == "Back on Monday."
    assert stored.auto_reply_starts_at is not None and stored.auto_reply_ends_at is not None
    page = client.get(url).content.decode()
    # What the browser's date-time field can show, so saving again keeps the dates.
    assert 'value="2026-05-01T10:00"' in page
    assert 'value="2026-05-04T08:30"' in page
