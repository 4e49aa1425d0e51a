"""``postroom account set ... --append-to`` and ``postroom records list``: the fixed contracts."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.records.actions import do_create_record, routing_settings
from postroom.records.models import AppendTo, Record, RecordType
from tests.cli.conftest import Result
from tests.web.conftest import domain, make_account
from tests.web.records_mail import deliver, mail

pytestmark = pytest.mark.django_db

Run = Callable[..., Result]

__all__ = ["domain"]


@pytest.fixture
def owner(db: None) -> User:
    return User.objects.create_user("olga")


@pytest.fixture
def support(owner: User, domain: EmailDomain) -> EmailAccount:
    return make_account("support@example.test", owner=owner, name="support")


def test_append_to_then_mail_becomes_records(run: Run, support: EmailAccount) -> None:
    result = run("account", "set", "support", "--append-to", "ISSUE", "--create-contacts")
    assert result.code == 0, result.err
    assert "Issue" in result.out
    assert AppendTo.objects.get(account=support, folder="").record_type.key == "issue"
    assert routing_settings(support).create_contacts is True

    # By name, case-insensitive, per folder; by the account's address too.
    result = run(
        "account", "set", "support@example.test", "--append-to", "job applicant", "--folder", "Jobs"
    )
    assert result.code == 0, result.err
    assert AppendTo.objects.get(account=support, folder="Jobs").record_type.key == "job_applicant"

    messages, _report = deliver(
        support, mail("Printer on fire"), mail("Paper jam", sender="dave@customer.example")
    )
    deliver(support, mail("Re: Printer on fire", in_reply_to=f"<{messages[0].message_id}>"))
    deliver(support, mail("My CV"), folder="Jobs")

    result = run("records", "list", "--json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert isinstance(rows, list)
    by_title = {row["title"]: row for row in rows}
    assert set(by_title) == {"Printer on fire", "Paper jam", "My CV"}
    fire = by_title["Printer on fire"]
    assert {"reference", "type", "title", "status", "contact", "message_count"} <= set(fire)
    assert fire["reference"].startswith("ISSUE-")
    assert (fire["type"], fire["status"], fire["contact"], fire["message_count"]) == (
        "issue",
        "Open",
        "carol@customer.example",
        2,
    )
    assert by_title["Paper jam"]["contact"] == "dave@customer.example"
    assert by_title["My CV"]["type"] == "job_applicant"

    only = json.loads(run("records", "list", "--type", "issue", "--json").out)
    assert {row["title"] for row in only} == {"Printer on fire", "Paper jam"}
    assert (
        json.loads(run("records", "list", "--type", "Job Applicant", "--json").out)[0]["title"]
        == "My CV"
    )

    table = run("records", "list")
    assert table.code == 0
    assert "REFERENCE" in table.out and fire["reference"] in table.out and "Paper jam" in table.out

    # "none" removes the setting; later mail creates nothing.
    result = run("account", "set", "support", "--append-to", "none")
    assert result.code == 0, result.err
    assert not AppendTo.objects.filter(account=support, folder="").exists()
    deliver(support, mail("Another"))
    assert not Record.objects.filter(title="Another").exists()


def test_records_list_without_records_and_contact_null(run: Run, support: EmailAccount) -> None:
    assert json.loads(run("records", "list", "--json").out) == []
    assert run("records", "list").out.strip() == "No records."
    do_create_record(RecordType.objects.get(key="task"), title="Call", account=support)
    [row] = json.loads(run("records", "list", "--json").out)
    assert (row["contact"], row["message_count"], row["type"]) == (None, 0, "task")


def test_refusals(run: Run, support: EmailAccount, owner: User) -> None:
    unknown = run("account", "set", "support", "--append-to", "tickets")
    assert unknown.code == 2
    assert "--append-to" in unknown.err and "issue" in unknown.err
    assert run("account", "set", "nosuch", "--append-to", "issue").code == 2
    assert run("account", "set", "support").code == 2
    assert run("records", "list", "--type", "nosuch", "--json").code == 2
    assert not AppendTo.objects.exists()

    # --as-user: rights as in the web UI.
    reader = User.objects.create_user("rita")
    do_share_account(support, actor=owner, user=reader, can_read=True)
    refused = run("account", "set", "support", "--append-to", "issue", "--as-user", "rita")
    assert refused.code == 2 and "manage" in refused.err
    assert not AppendTo.objects.exists()
    User.objects.create_user("sam")
    do_create_record(RecordType.objects.get(key="task"), title="Secret", account=support)
    assert json.loads(run("records", "list", "--json", "--as-user", "sam").out) == []
    assert len(json.loads(run("records", "list", "--json", "--as-user", "rita").out)) == 1
