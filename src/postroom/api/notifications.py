"""``/notifications`` (E3): the caller's own notifications; marking them read.

Nobody sees or marks anybody else's: every lookup is inside the token user's
notifications, so another user's id answers 404 like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from postroom.api.common import NotFound, current_user, newest_first_page
from postroom.api.schemas import ErrorOut, FieldErrorsOut
from postroom.core.models import Notification
from postroom.core.notify import (
    do_mark_all_notifications_read,
    do_mark_notification_read,
    notifications_of,
)

router = Router(tags=["notifications"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class NotificationOut(Schema):
    id: int
    kind: str = Field(
        description="account.auth_error, account.error, routing.held, thread.unreplied, …"
    )
    title: str
    body: str
    url: str = Field(description="Path of the web page to look at, if any")
    account_id: int | None
    created_at: datetime
    read_at: datetime | None
    unread: bool


class NotificationPageOut(Schema):
    items: list[NotificationOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end")
    unread_count: int = Field(description="How many of the caller's notifications are unread")


class NotificationFilters(Schema):
    unread: bool | None = Field(None, description="true: only unread; false: only read")
    cursor: str | None = Field(None, description="next_cursor of the previous page")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class MarkedOut(Schema):
    marked: int = Field(description="How many notifications changed from unread to read")


def notification_dict(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "url": notification.url,
        "account_id": notification.account_id,
        "created_at": notification.created_at,
        "read_at": notification.read_at,
        "unread": notification.read_at is None,
    }


@router.get(
    "",
    response={200: NotificationPageOut, 422: FieldErrorsOut},
    summary="List my notifications, newest first (cursor pagination)",
)
def list_notifications(request: HttpRequest, filters: Query[NotificationFilters]) -> dict[str, Any]:
    mine = notifications_of(current_user(request))
    rows = mine
    if filters.unread is not None:
        rows = rows.filter(read_at__isnull=filters.unread)
    found, next_cursor = newest_first_page(rows, filters.cursor, filters.limit)
    return {
        "items": [notification_dict(n) for n in found],
        "next_cursor": next_cursor,
        "unread_count": mine.filter(read_at__isnull=True).count(),
    }


@router.post(
    "/read-all",
    response={200: MarkedOut},
    summary="Mark every one of my notifications read",
)
def read_all(request: HttpRequest) -> dict[str, Any]:
    return {"marked": do_mark_all_notifications_read(current_user(request))}


@router.post(
    "/{notification_id}/read",
    response={200: NotificationOut, 404: ErrorOut},
    summary="Mark one of my notifications read",
)
def read_one(request: HttpRequest, notification_id: int) -> dict[str, Any]:
    notification = notifications_of(current_user(request)).filter(pk=notification_id).first()
    if notification is None:
        raise NotFound()
    return notification_dict(do_mark_notification_read(notification))
