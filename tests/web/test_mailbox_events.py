"""E1: the event log's filters (account, kind, level, text) on top of the permission filter."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.core.actions import do_log_event
from postroom.core.models import Event, EventLevel
from tests.web.conftest import client_for, make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def accounts(alice: User, bob: User, domain: EmailDomain) -> dict[str, EmailAccount]:
    found = {
        "a1": make_account("alice-one@example.test", owner=alice),
        "a2": make_account("alice-two@example.test", owner=alice),
        "b": make_account("bob-only@example.test", owner=bob),
    }
    Event.objects.all().delete()  # only what the tests log below
    for key, account in found.items():
        do_log_event(kind="sync.completed", account=account, message=f"{key} synced fine")
        do_log_event(
            kind="sync.failed",
            level=EventLevel.ERROR,
            account=account,
            message=f"{key} connection refused",
        )
        do_log_event(kind="message.flags", account=account, message=f"{key} flags changed")
    return found


def shown(user: User, **params: str) -> list[str]:
    response = client_for(user).get(reverse("web:events"), params)
    assert response.status_code == 200
    html = response.content.decode()
    return sorted(re.findall(r"<td>((?:a1|a2|b) [^<]+)</td>", html))


def test_filters(alice: User, accounts: dict[str, EmailAccount]) -> None:
    everything = shown(alice)
    assert len(everything) == 6 and not any(e.startswith("b ") for e in everything)
    assert shown(alice, account=str(accounts["a2"].pk)) == [
        "a2 connection refused",
        "a2 flags changed",
        "a2 synced fine",
    ]
    # Kind is a prefix: "sync" finds every sync.* event.
    assert shown(alice, kind="sync") == [
        "a1 connection refused",
        "a1 synced fine",
        "a2 connection refused",
        "a2 synced fine",
    ]
    assert shown(alice, kind="sync.failed", account=str(accounts["a1"].pk)) == [
        "a1 connection refused"
    ]
    assert shown(alice, level="error") == ["a1 connection refused", "a2 connection refused"]
    assert shown(alice, q="FLAGS") == ["a1 flags changed", "a2 flags changed"]
    assert shown(alice, level="info", kind="message") == ["a1 flags changed", "a2 flags changed"]


def test_filters_never_widen_what_a_user_sees(
    alice: User, admin: User, accounts: dict[str, EmailAccount]
) -> None:
    # Bob's account is not a valid choice for alice: nothing, rather than everything.
    response = client_for(alice).get(reverse("web:events"), {"account": accounts["b"].pk})
    html = response.content.decode()
    assert "bob-only" not in html and "b connection refused" not in html
    assert "No events match." in html
    assert shown(alice, kind="sync.failed") == ["a1 connection refused", "a2 connection refused"]
    # The account choices are alice's own.
    page = client_for(alice).get(reverse("web:events")).content.decode()
    assert "alice-one@example.test" in page and "bob-only@example.test" not in page
    # An admin sees and filters everyone's.
    assert shown(admin, account=str(accounts["b"].pk), level="error") == ["b connection refused"]
