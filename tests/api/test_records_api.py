"""/records, /contacts, /record-types, /accounts/{id}/routing and /accounts/{id}/rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.records.actions import do_create_record, do_save_routing_settings, do_set_append_to
from postroom.records.models import (
    AppendTo,
    Contact,
    Record,
    RecordType,
    RoutedMessage,
    RouteOutcome,
    Rule,
)
from tests.api.conftest import ApiClient, grant
from tests.web.conftest import make_account
from tests.web.records_mail import deliver, mail

pytestmark = pytest.mark.django_db

Api = Callable[[User], ApiClient]


@pytest.fixture
def support(alice: User, domain: EmailDomain) -> EmailAccount:
    account = make_account("support@example.test", owner=alice)
    do_set_append_to(account, RecordType.objects.get(key="issue"))
    return account


@pytest.fixture
def issue(support: EmailAccount) -> Record:
    deliver(support, mail("Printer on fire"))
    return Record.objects.get()


def test_list_get_and_timeline(
    api_for: Api, alice: User, support: EmailAccount, issue: Record
) -> None:
    client = api_for(alice)
    response = client.get("/records")
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    [item] = body["items"]
    assert item["reference"] == issue.reference
    assert item["type"] == "issue"
    assert item["status"] == "Open"
    assert item["contact"]["email"] == "carol@customer.example"
    assert item["message_count"] == 1
    assert item["account"] == support.pk

    detail = client.get(f"/records/{issue.pk}").json()
    [entry] = detail["timeline"]
    assert entry["kind"] == "received"
    assert entry["via"] == "created"
    assert entry["from"] == "carol@customer.example"
    assert entry["message"] == issue.links.get().message_id

    # A reply lands on the same record and its timeline.
    message = issue.links.get().message
    assert message is not None
    deliver(support, mail("Re: Printer on fire", in_reply_to=f"<{message.message_id}>"))
    detail = client.get(f"/records/{issue.pk}").json()
    assert [e["via"] for e in detail["timeline"]] == ["created", "reply"]
    assert detail["message_count"] == 2


def test_filters_and_cursor_pagination(api_for: Api, alice: User, support: EmailAccount) -> None:
    lead, task = RecordType.objects.get(key="lead"), RecordType.objects.get(key="task")
    for n in range(5):
        do_create_record(lead, title=f"Lead {n}", account=support)
    do_create_record(task, title="Task", account=support, owner=alice)
    client = api_for(alice)
    assert [r["title"] for r in client.get("/records", type="task").json()["items"]] == ["Task"]
    assert len(client.get("/records", type="Lead").json()["items"]) == 5
    assert [r["title"] for r in client.get("/records", owner="alice").json()["items"]] == ["Task"]
    assert len(client.get("/records", owner="-").json()["items"]) == 5
    assert [r["title"] for r in client.get("/records", q="lead 3").json()["items"]] == ["Lead 3"]
    assert client.get("/records", status="New", limit=2).json()["next_cursor"] is not None

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/records", **params).json()
        seen += [r["title"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["Task", "Lead 4", "Lead 3", "Lead 2", "Lead 1", "Lead 0"]
    bad = client.get("/records", cursor="garbage!")
    assert bad.status_code == 422
    assert "cursor" in bad.json()["errors"]


def test_create_and_patch(api_for: Api, alice: User, bob: User, support: EmailAccount) -> None:
    client = api_for(alice)
    response = client.post(
        "/records",
        {
            "type": "lead",
            "title": "Big order",
            "account": support.pk,
            "contact": "Erin@Customer.example",
            "fields": {"budget": 5},
        },
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["reference"].startswith("LEAD-")
    assert created["owner"] == "alice"
    assert created["contact"]["email"] == "erin@customer.example"
    assert created["fields"] == {"budget": 5}
    assert created["timeline"] == []

    invalid = client.post("/records", {"type": "nope", "title": "", "status": "x"})
    assert invalid.status_code == 422
    assert {"type", "title"} <= set(invalid.json()["errors"])
    bad_status = client.post("/records", {"type": "lead", "title": "T", "status": "Closed"})
    assert bad_status.status_code == 422
    assert list(bad_status.json()["errors"]) == ["status"]
    bobs = make_account("bob@example.test", owner=bob)
    not_mine = client.post("/records", {"type": "lead", "title": "T", "account": bobs.pk})
    assert not_mine.status_code == 422
    assert list(not_mine.json()["errors"]) == ["account"]

    record_id = created["id"]
    patched = client.patch(
        f"/records/{record_id}",
        {"status": "Qualified", "owner": "bob", "title": "Bigger order"},
    )
    assert patched.status_code == 200, patched.json()
    assert (patched.json()["status"], patched.json()["owner"]) == ("Qualified", "bob")
    assert patched.json()["contact"]["email"] == "erin@customer.example"  # not sent: kept
    cleared = client.patch(f"/records/{record_id}", {"contact": None, "owner": None})
    assert (cleared.json()["contact"], cleared.json()["owner"]) == (None, None)
    for data, field in (
        ({"status": "Done"}, "status"),
        ({"owner": "nobody"}, "owner"),
        ({"contact": "not-an-address"}, "contact"),
        ({"title": "  "}, "title"),
    ):
        response = client.patch(f"/records/{record_id}", data)
        assert response.status_code == 422, data
        assert list(response.json()["errors"]) == [field], data
    assert Record.objects.get(pk=record_id).title == "Bigger order"


def test_permissions(
    api_for: Api, alice: User, bob: User, support: EmailAccount, issue: Record
) -> None:
    client = api_for(bob)
    assert client.get("/records").json()["items"] == []
    assert client.get(f"/records/{issue.pk}").status_code == 404
    assert client.patch(f"/records/{issue.pk}", {"status": "Closed"}).status_code == 404
    assert issue.contact is not None
    assert client.get(f"/contacts/{issue.contact.pk}").status_code == 404
    assert client.get("/contacts").json()["items"] == []
    assert client.get(f"/accounts/{support.pk}/routing").status_code == 404
    assert client.get(f"/accounts/{support.pk}/rules").status_code == 404

    do_share_account(support, actor=alice, user=bob, can_read=True)
    assert client.get(f"/records/{issue.pk}").status_code == 200
    denied = client.patch(f"/records/{issue.pk}", {"status": "Closed"})
    assert denied.status_code == 403
    assert client.patch(f"/contacts/{issue.contact.pk}", {"name": "X"}).status_code == 403
    assert client.get(f"/accounts/{support.pk}/routing").status_code == 403
    assert put(client, f"/accounts/{support.pk}/routing", {"loop_limit": 3}).status_code == 403
    rule = {
        "name": "R",
        "conditions": [{"field": "subject", "op": "exists"}],
        "actions": [{"action": "skip"}],
    }
    assert client.post(f"/accounts/{support.pk}/rules", rule).status_code == 403
    assert not Rule.objects.exists()
    assert client.get(f"/accounts/{support.pk}/rules").status_code == 403
    issue.refresh_from_db()
    assert issue.status == "Open"

    do_share_account(support, actor=alice, user=bob, can_read=True, can_send=True)
    assert client.patch(f"/records/{issue.pk}", {"status": "Closed"}).status_code == 200


def test_contacts(
    api_for: Api, alice: User, bob: User, support: EmailAccount, issue: Record
) -> None:
    client = api_for(alice)
    listing = client.get("/contacts").json()
    assert [c["email"] for c in listing["items"]] == ["carol@customer.example"]
    assert issue.contact is not None
    detail = client.get(f"/contacts/{issue.contact.pk}").json()
    assert detail["records"] == [issue.reference]

    created = client.post(
        "/contacts", {"email": "dan@customer.example", "name": "Dan", "account": support.pk}
    )
    assert created.status_code == 201
    assert client.get(f"/contacts/{created.json()['id']}").status_code == 200
    again = client.post("/contacts", {"email": "DAN@customer.example", "name": "Daniel"})
    assert again.status_code == 200
    assert Contact.objects.get(email="dan@customer.example").name == "Daniel"
    assert client.post("/contacts", {"email": "nope"}).json()["errors"].keys() == {"email"}
    # Without an account the new contact would be invisible to its creator.
    assert list(client.post("/contacts", {"email": "x@y.example"}).json()["errors"]) == ["account"]

    renamed = client.patch(f"/contacts/{issue.contact.pk}", {"name": "Carol C."})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Carol C."
    # Someone who cannot see it cannot overwrite it either.
    assert (
        api_for(bob)
        .post("/contacts", {"email": "carol@customer.example", "name": "Evil"})
        .status_code
        == 409
    )
    assert Contact.objects.get(pk=issue.contact.pk).name == "Carol C."


def test_record_types(api_for: Api, alice: User) -> None:
    client = api_for(alice)
    keys = {t["key"] for t in client.get("/record-types").json()}
    assert {"issue", "lead", "job_applicant"} <= keys
    new = {
        "name": "Claim",
        "prefix": "CLM",
        "statuses": ["Open", "Paid"],
        "closed_statuses": ["Paid"],
    }
    assert client.post("/record-types", new).status_code == 403
    manager = api_for(grant(alice, "change_recordtype"))
    created = manager.post("/record-types", new)
    assert created.status_code == 201
    assert created.json()["key"] == "claim"
    bad = manager.post("/record-types", {**new, "name": "Other", "prefix": "1"})
    assert bad.status_code == 422 and list(bad.json()["errors"]) == ["prefix"]
    changed = manager.client.put(
        "/api/v1/record-types/claim",
        {**new, "statuses": ["Open", "Paid", "Rejected"]},
        content_type="application/json",
    )
    assert changed.status_code == 200
    assert RecordType.objects.get(key="claim").statuses == ["Open", "Paid", "Rejected"]
    assert (
        manager.client.put(
            "/api/v1/record-types/nope", new, content_type="application/json"
        ).status_code
        == 404
    )


def put(client: ApiClient, path: str, data: object) -> Any:
    return client.client.put("/api/v1" + path, data, content_type="application/json")


def test_routing_settings(api_for: Api, alice: User, support: EmailAccount) -> None:
    client = api_for(alice)
    body = client.get(f"/accounts/{support.pk}/routing").json()
    assert body["append_to"] == [{"folder": "", "record_type": "issue"}]
    assert body["loop_limit"] == 10

    response = put(
        client,
        f"/accounts/{support.pk}/routing",
        {
            "append_to": [{"folder": "Jobs", "record_type": "job_applicant"}],
            "create_contacts": True,
            "unreplied_notify": ["boss@example.test"],
            "loop_limit": 3,
        },
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["append_to"] == [{"folder": "Jobs", "record_type": "job_applicant"}]
    assert (body["create_contacts"], body["loop_limit"]) == (True, 3)
    assert body["unreplied_notify"] == ["boss@example.test"]
    # Omitted fields keep their value.
    body = put(client, f"/accounts/{support.pk}/routing", {"loop_window_minutes": 5}).json()
    assert (body["create_contacts"], body["loop_limit"], body["loop_window_minutes"]) == (
        True,
        3,
        5,
    )
    assert len(body["append_to"]) == 1

    for data, field in (
        ({"auto_reply_enabled": True, "auto_reply_text": ""}, "auto_reply_text"),
        ({"loop_limit": 0}, "loop_limit"),
        ({"unreplied_notify": ["nope"]}, "unreplied_notify"),
        ({"append_to": [{"folder": "", "record_type": "nope"}]}, "append_to[0].record_type"),
        ({"loop_limit": "many"}, "loop_limit"),
    ):
        response = put(client, f"/accounts/{support.pk}/routing", data)
        assert response.status_code == 422, data
        assert field in response.json()["errors"], data
    assert list(AppendTo.objects.filter(account=support).values_list("folder", flat=True)) == [
        "Jobs"
    ]


def test_rules(api_for: Api, alice: User, support: EmailAccount) -> None:
    client = api_for(alice)
    base = f"/accounts/{support.pk}/rules"
    rule = {
        "name": "Lists",
        "conditions": [{"field": "header", "op": "exists", "header": "List-Id"}],
        "actions": [{"action": "skip"}],
    }
    ids = []
    for name in ("A", "B", "C"):
        response = client.post(base, {**rule, "name": name})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    invalid = client.post(
        base, {**rule, "conditions": [{"field": "subject", "op": "matches", "value": "x"}]}
    )
    assert invalid.status_code == 422
    assert list(invalid.json()["errors"]) == ["conditions[0].op"]
    no_value = client.post(base, {**rule, "actions": [{"action": "label"}]})
    assert list(no_value.json()["errors"]) == ["actions[0].value"]

    moved = client.post(f"{base}/{ids[2]}/move", {"direction": "up"})
    assert [r["name"] for r in moved.json()] == ["A", "C", "B"]
    assert client.post(f"{base}/{ids[2]}/move", {"direction": "sideways"}).status_code == 422

    updated = put(
        client, f"{base}/{ids[0]}", {**rule, "name": "A2", "enabled": False, "match": "any"}
    )
    assert updated.status_code == 200
    assert Rule.objects.get(pk=ids[0]).name == "A2"
    assert client.delete(f"{base}/{ids[1]}").status_code == 204
    assert [r["name"] for r in client.get(base).json()] == ["A2", "C"]
    assert client.delete(f"{base}/{ids[1]}").status_code == 404


def test_held_release_and_reroute(
    api_for: Api, alice: User, bob: User, support: EmailAccount
) -> None:
    do_save_routing_settings(support, loop_limit=1)
    messages, report = deliver(support, mail("One"), mail("Two"), mail("Three"))
    assert (report.created, report.held) == (1, 2)
    client = api_for(alice)
    base = f"/accounts/{support.pk}/routing"
    held = client.get(f"{base}/held").json()
    assert {h["message"] for h in held} == {messages[1].pk, messages[2].pk}
    assert {h["outcome"] for h in held} == {"held"}
    assert api_for(bob).get(f"{base}/held").status_code == 404
    assert api_for(bob).post(f"{base}/held/{messages[1].pk}/release").status_code == 404

    released = client.post(f"{base}/held/{messages[1].pk}/release")
    assert released.status_code == 200
    reference = released.json()["record"]
    assert Record.objects.get(reference=reference).title == "Two"
    assert client.post(f"{base}/held/{messages[1].pk}/release").status_code == 409
    assert client.post(f"{base}/held/{messages[0].pk}/release").status_code == 409

    # Re-routing a held message routes it again under the limit: held once more.
    again = client.post(f"{base}/reroute", {"messages": [messages[2].pk]})
    assert again.status_code == 200
    assert (again.json()["routed"], again.json()["held"]) == (1, 1)
    assert RoutedMessage.objects.get(message=messages[2]).outcome == RouteOutcome.HELD
    unknown = client.post(f"{base}/reroute", {"messages": [999999]})
    assert unknown.status_code == 422 and list(unknown.json()["errors"]) == ["messages"]
