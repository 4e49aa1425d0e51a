"""E3: the notifications page, marking read, and the unread badge; each user sees only their own."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from postroom.core.models import Notification
from postroom.core.notify import do_notify_users
from tests.web.conftest import client_for

pytestmark = pytest.mark.django_db


def _make(user: User, key: str, title: str) -> Notification:
    [notification] = do_notify_users([user], kind="test", key=key, title=title, url="/sync/")
    return notification


def test_the_page_lists_only_my_notifications_with_unread_ones_marked(
    alice: User, bob: User
) -> None:
    mine = _make(alice, "a1", "Alice needs to look")
    read = _make(alice, "a2", "Alice already saw this")
    Notification.objects.filter(pk=read.pk).update(read_at="2026-01-01T00:00:00Z")
    theirs = _make(bob, "b1", "Bob's business")

    page = client_for(alice).get("/notifications/").content.decode()
    assert "Alice needs to look" in page and "Alice already saw this" in page
    assert "Bob&#x27;s business" not in page and "Bob's business" not in page
    assert f'data-notification="{mine.pk}" class="unread"' in page
    assert f'data-notification="{read.pk}">' in page
    assert f'data-notification="{theirs.pk}"' not in page

    unread = client_for(alice).get("/notifications/?unread=1").content.decode()
    assert "Alice needs to look" in unread and "Alice already saw this" not in unread


def test_the_navigation_shows_the_unread_count(alice: User, bob: User) -> None:
    client = client_for(alice)
    assert "data-unread-count" not in client.get("/outbox/").content.decode()
    _make(alice, "a1", "One")
    _make(alice, "a2", "Two")
    _make(bob, "b1", "Not yours")
    assert 'data-unread-count="2"' in client.get("/outbox/").content.decode()


def test_mark_one_read_and_all_read(alice: User, bob: User) -> None:
    first = _make(alice, "a1", "One")
    second = _make(alice, "a2", "Two")
    theirs = _make(bob, "b1", "Bob's")
    client = client_for(alice)

    response = client.post(f"/notifications/{first.pk}/read/", {"next": "/notifications/?unread=1"})
    assert response.status_code == 302 and response["Location"] == "/notifications/?unread=1"
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at is not None and second.read_at is None

    assert client.post("/notifications/read-all/").status_code == 302
    second.refresh_from_db()
    theirs.refresh_from_db()
    assert second.read_at is not None
    assert theirs.read_at is None  # somebody else's stay unread
    assert "data-unread-count" not in client.get("/notifications/").content.decode()


def test_someone_elses_notification_is_not_found(alice: User, bob: User) -> None:
    theirs = _make(bob, "b1", "Bob's")
    response = client_for(alice).post(f"/notifications/{theirs.pk}/read/")
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_an_unsafe_next_is_ignored(alice: User) -> None:
    mine = _make(alice, "a1", "One")
    response = client_for(alice).post(
        f"/notifications/{mine.pk}/read/", {"next": "https://evil.example/"}
    )
    assert response["Location"] == "/notifications/"


def test_reading_needs_post_with_csrf_and_a_signed_in_user(alice: User) -> None:
    mine = _make(alice, "a1", "One")
    assert client_for(alice).get(f"/notifications/{mine.pk}/read/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(f"/notifications/{mine.pk}/read/").status_code == 403
    assert strict.post("/notifications/read-all/").status_code == 403
    mine.refresh_from_db()
    assert mine.read_at is None
    anonymous = Client()
    assert anonymous.get("/notifications/").status_code == 302
    assert anonymous.post("/notifications/read-all/").status_code == 302
