"""E3 API: /notifications lists and marks only the caller's own notifications."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from postroom.core.models import Notification
from postroom.core.notify import do_notify_users
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db

Api = Callable[[User], ApiClient]


def _make(user: User, key: str, title: str = "Look") -> Notification:
    [notification] = do_notify_users([user], kind="test", key=key, title=title, url="/sync/")
    return notification


def test_list_shows_only_my_notifications_newest_first(
    api_for: Api, alice: User, bob: User
) -> None:
    first = _make(alice, "a1", "First")
    second = _make(alice, "a2", "Second")
    _make(bob, "b1", "Bob's")
    response = api_for(alice).get("/notifications")
    assert response.status_code == 200
    body = response.json()
    assert [n["id"] for n in body["items"]] == [second.pk, first.pk]
    assert body["unread_count"] == 2 and body["next_cursor"] is None
    item = body["items"][0]
    assert (item["title"], item["kind"], item["url"], item["unread"], item["read_at"]) == (
        "Second",
        "test",
        "/sync/",
        True,
        None,
    )


def test_cursor_paging_and_the_unread_filter(api_for: Api, alice: User) -> None:
    made = [_make(alice, f"a{n}", f"N{n}") for n in range(5)]
    Notification.objects.filter(pk=made[0].pk).update(read_at="2026-01-01T00:00:00Z")
    api = api_for(alice)
    page = api.get("/notifications", limit=2).json()
    ids = [n["id"] for n in page["items"]]
    while page["next_cursor"]:
        page = api.get("/notifications", limit=2, cursor=page["next_cursor"]).json()
        ids += [n["id"] for n in page["items"]]
    assert ids == [n.pk for n in reversed(made)]

    unread = api.get("/notifications", unread="true").json()
    assert [n["id"] for n in unread["items"]] == [n.pk for n in reversed(made[1:])]
    read = api.get("/notifications", unread="false").json()
    assert [n["id"] for n in read["items"]] == [made[0].pk]
    assert api.get("/notifications", cursor="garbage!").status_code == 422


def test_mark_one_read(api_for: Api, alice: User, bob: User) -> None:
    mine = _make(alice, "a1")
    theirs = _make(bob, "b1")
    response = api_for(alice).post(f"/notifications/{mine.pk}/read")
    assert response.status_code == 200
    assert response.json()["unread"] is False and response.json()["read_at"]
    mine.refresh_from_db()
    assert mine.read_at is not None

    # Somebody else's is indistinguishable from a missing one, and stays unread.
    assert api_for(alice).post(f"/notifications/{theirs.pk}/read").status_code == 404
    assert api_for(alice).post("/notifications/999999/read").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_read_all_marks_only_mine(api_for: Api, alice: User, bob: User) -> None:
    _make(alice, "a1")
    _make(alice, "a2")
    theirs = _make(bob, "b1")
    response = api_for(alice).post("/notifications/read-all")
    assert response.status_code == 200 and response.json() == {"marked": 2}
    assert api_for(alice).post("/notifications/read-all").json() == {"marked": 0}
    assert api_for(alice).get("/notifications").json()["unread_count"] == 0
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert api_for(bob).get("/notifications").json()["unread_count"] == 1


def test_a_token_is_required(alice: User) -> None:
    _make(alice, "a1")
    anonymous = ApiClient(None)
    assert anonymous.get("/notifications").status_code == 401
    assert anonymous.post("/notifications/read-all").status_code == 401
    assert ApiClient("wrong-token").get("/notifications").status_code == 401
