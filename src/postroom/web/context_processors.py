"""Context every page gets."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from postroom.accounts.models import Right
from postroom.accounts.permissions import accounts_for
from postroom.incoming.models import SyncState


def account_alerts(request: HttpRequest) -> dict[str, Any]:
    """A18/E3: accounts that stopped because a person must act, shown on every page.

    Only to those who can fix them (the manage right), so a reader is not
    nagged about a password they cannot change.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    stopped = accounts_for(user, Right.MANAGE).filter(sync_status__state=SyncState.AUTH_ERROR)
    return {"auth_error_accounts": list(stopped.only("pk", "name")[:10])}


def unread_notifications(request: HttpRequest) -> dict[str, Any]:
    """E3: how many of the user's notifications are unread, for the badge in the navigation."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from postroom.core.notify import notifications_of

    return {"unread_notifications": notifications_of(user).filter(read_at__isnull=True).count()}
