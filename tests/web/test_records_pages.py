"""Records, contacts and record types in the web UI: permissions, filters, changes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.records.actions import do_create_record, do_set_append_to
from postroom.records.models import Contact, Record, RecordType
from tests.web.conftest import client_for, make_account
from tests.web.records_mail import deliver, mail

pytestmark = pytest.mark.django_db


@pytest.fixture
def support(alice: User, domain: EmailDomain) -> EmailAccount:
    account = make_account("support@example.test", owner=alice)
    do_set_append_to(account, RecordType.objects.get(key="issue"))
    return account


@pytest.fixture
def issue(support: EmailAccount) -> Record:
    deliver(support, mail("Printer on fire"))
    return Record.objects.get()


def test_mail_becomes_a_record_on_the_list_and_its_page(
    alice: User, support: EmailAccount, issue: Record
) -> None:
    client = client_for(alice)
    listing = client.get(reverse("web:record_list"))
    assert listing.status_code == 200
    assert f'data-record="{issue.reference}"'.encode() in listing.content
    assert b"carol@customer.example" in listing.content

    page = client.get(reverse("web:record_detail", args=[issue.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Printer on fire" in text
    message = issue.links.get().message
    assert message is not None
    # The timeline links to the message page and says why the message is there.
    assert reverse("web:mail_message", args=[message.pk]) in text
    assert 'data-via="created"' in text
    assert 'id="record-actions"' in text

    # The message page names its record and the routing outcome.
    shown = client.get(reverse("web:mail_message", args=[message.pk])).content.decode()
    assert f'data-record="{issue.reference}"' in shown
    assert 'data-outcome="created"' in shown


def test_records_of_other_accounts_are_invisible(
    bob: User, support: EmailAccount, issue: Record
) -> None:
    client = client_for(bob)
    assert issue.reference.encode() not in client.get(reverse("web:record_list")).content
    assert client.get(reverse("web:record_detail", args=[issue.pk])).status_code == 404
    response = client.post(reverse("web:record_status", args=[issue.pk]), {"status": "Closed"})
    assert response.status_code == 404
    assert issue.contact is not None
    assert client.get(reverse("web:contact_detail", args=[issue.contact.pk])).status_code == 404
    assert b"carol@" not in client.get(reverse("web:contact_list")).content


def test_read_only_share_sees_but_cannot_change(
    alice: User, bob: User, support: EmailAccount, issue: Record
) -> None:
    do_share_account(support, actor=alice, user=bob, can_read=True)
    client = client_for(bob)
    page = client.get(reverse("web:record_detail", args=[issue.pk]))
    assert page.status_code == 200
    assert b'id="status-form"' not in page.content
    response = client.post(reverse("web:record_status", args=[issue.pk]), {"status": "Closed"})
    assert response.status_code == 403
    response = client.post(
        reverse("web:record_edit", args=[issue.pk]), {"title": "Mine now", "owner": "bob"}
    )
    assert response.status_code == 403
    issue.refresh_from_db()
    assert (issue.status, issue.title) == ("Open", "Printer on fire")


def test_status_change_and_edit(alice: User, bob: User, issue: Record) -> None:
    client = client_for(alice)
    response = client.post(reverse("web:record_status", args=[issue.pk]), {"status": "Resolved"})
    assert response.status_code == 302
    issue.refresh_from_db()
    assert issue.status == "Resolved"

    refused = client.post(reverse("web:record_status", args=[issue.pk]), {"status": "Won"})
    assert refused.status_code == 422
    assert b"status_errors" in refused.content
    issue.refresh_from_db()
    assert issue.status == "Resolved"

    response = client.post(
        reverse("web:record_edit", args=[issue.pk]),
        {"title": "Printer fixed", "owner": "bob", "contact": "dave@customer.example"},
    )
    assert response.status_code == 302
    issue.refresh_from_db()
    assert issue.title == "Printer fixed"
    assert issue.owner == bob
    assert issue.contact is not None and issue.contact.email == "dave@customer.example"

    bad = client.post(
        reverse("web:record_edit", args=[issue.pk]), {"title": " ", "owner": "nobody-here"}
    )
    assert bad.status_code == 422
    assert b"owner_errors" in bad.content


def test_filters(alice: User, support: EmailAccount, issue: Record) -> None:
    lead = do_create_record(
        RecordType.objects.get(key="lead"), title="Big order", account=support, owner=alice
    )
    client = client_for(alice)

    def shown(**params: str) -> set[str]:
        content = client.get(reverse("web:record_list"), params).content.decode()
        return {r.reference for r in (issue, lead) if f'data-record="{r.reference}"' in content}

    assert shown() == {issue.reference, lead.reference}
    assert shown(type="lead") == {lead.reference}
    assert shown(type="Issue") == {issue.reference}
    assert shown(status="New") == {lead.reference}
    assert shown(owner="alice") == {issue.reference, lead.reference}
    assert shown(owner="-") == set()
    assert shown(contact="carol@customer.example") == {issue.reference}
    assert shown(q="order") == {lead.reference}
    assert shown(q=issue.reference) == {issue.reference}
    assert shown(account=str(support.pk)) == {issue.reference, lead.reference}


def test_paging(alice: User, support: EmailAccount) -> None:
    task = RecordType.objects.get(key="task")
    for n in range(55):
        do_create_record(task, title=f"Task {n}", account=support)
    client = client_for(alice)
    first = client.get(reverse("web:record_list")).content.decode()
    assert first.count('data-record="') == 50
    second = client.get(reverse("web:record_list"), {"page": "2"}).content.decode()
    assert second.count('data-record="') == 5


def test_new_record_form(
    alice: User, bob: User, support: EmailAccount, domain: EmailDomain
) -> None:
    client = client_for(alice)
    assert client.get(reverse("web:record_create")).status_code == 200
    response = client.post(
        reverse("web:record_create"),
        {
            "type": "lead",
            "title": "Call back",
            "account": str(support.pk),
            "contact": "erin@customer.example",
            "contact_name": "Erin",
            "fields": '{"budget": 1000}',
        },
    )
    assert response.status_code == 302
    record = Record.objects.get(title="Call back")
    assert record.reference.startswith("LEAD-")
    assert record.owner == alice and record.account == support
    assert record.fields == {"budget": 1000}
    assert Contact.objects.get(email="erin@customer.example").name == "Erin"

    # An account the user cannot send from is refused next to its field.
    bobs = make_account("bob@example.test", owner=bob)
    refused = client.post(
        reverse("web:record_create"),
        {"type": "lead", "title": "Sneaky", "account": str(bobs.pk), "status": "Nope"},
    )
    assert refused.status_code == 200
    assert b"account_errors" in refused.content
    assert not Record.objects.filter(title="Sneaky").exists()
    bad_status = client.post(
        reverse("web:record_create"), {"type": "lead", "title": "Sneaky", "status": "Nope"}
    )
    assert b"status_errors" in bad_status.content
    assert not Record.objects.filter(title="Sneaky").exists()


def test_contact_page_lists_its_records(alice: User, issue: Record) -> None:
    assert issue.contact is not None
    client = client_for(alice)
    assert b"carol@customer.example" in client.get(reverse("web:contact_list")).content
    page = client.get(reverse("web:contact_detail", args=[issue.contact.pk]))
    assert page.status_code == 200
    assert f'data-record="{issue.reference}"'.encode() in page.content
    response = client.post(
        reverse("web:contact_detail", args=[issue.contact.pk]),
        {"email": "carol@customer.example", "name": "Carol C."},
    )
    assert response.status_code == 302
    assert Contact.objects.get(pk=issue.contact.pk).name == "Carol C."


def test_record_types_admin(alice: User, admin: User) -> None:
    client = client_for(alice)
    assert client.get(reverse("web:record_type_list")).status_code == 403
    assert client.post(reverse("web:record_type_create"), {"name": "X"}).status_code == 403

    alice.user_permissions.add(Permission.objects.get(codename="change_recordtype"))
    client = client_for(User.objects.get(pk=alice.pk))
    assert client.get(reverse("web:record_type_list")).status_code == 200
    bad = client.post(
        reverse("web:record_type_create"),
        {"name": "Claim", "prefix": "1X", "statuses": "Open\nPaid", "closed_statuses": "Paid"},
    )
    assert bad.status_code == 422
    assert b"prefix_errors" in bad.content
    response = client.post(
        reverse("web:record_type_create"),
        {
            "name": "Claim",
            "prefix": "clm",
            "statuses": "Open\nPaid",
            "closed_statuses": "Paid",
            "active": "on",
        },
    )
    assert response.status_code == 302
    claim = RecordType.objects.get(name="Claim")
    assert (claim.prefix, claim.statuses, claim.closed_statuses) == (
        "CLM",
        ["Open", "Paid"],
        ["Paid"],
    )
    wrong_closed = client.post(
        reverse("web:record_type_edit", args=[claim.pk]),
        {"name": "Claim", "prefix": "CLM", "statuses": "Open", "closed_statuses": "Paid"},
    )
    assert wrong_closed.status_code == 422
    assert b"closed_statuses_errors" in wrong_closed.content


@pytest.mark.parametrize(
    ("code", "heading", "status", "via"),
    [
        ("de", "Vorgänge", "Offen", "Hat den Vorgang angelegt"),
        ("pl", "Rekordy", "Otwarte", "Utworzyła rekord"),
        ("ar", "السجلات", "مفتوح", "أنشأت السجل"),
        ("ja", "レコード", "未対応", "レコードを作成"),
    ],
)
def test_pages_are_translated(
    alice: User, issue: Record, code: str, heading: str, status: str, via: str
) -> None:
    client = client_for(alice)
    client.post(reverse("set_language"), {"language": code, "next": "/"})
    listing = client.get(reverse("web:record_list")).content.decode()
    assert f"<h1>{heading}</h1>" in listing
    assert status in listing
    page = client.get(reverse("web:record_detail", args=[issue.pk])).content.decode()
    assert via in page
    if code == "ar":
        assert 'dir="rtl"' in page
