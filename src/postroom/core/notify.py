"""E3: tell the people responsible for an account about something that needs them.

One in-app notification per person and ``key`` (so a repeated cause does not
repeat the notification); see ``postroom.core.models.Notification``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from postroom.core.models import Notification

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from postroom.accounts.models import EmailAccount


def account_people(account: EmailAccount) -> list[User]:
    """The owner and everyone who may manage the account; superusers when there is nobody."""
    from postroom.accounts.models import Right
    from postroom.accounts.permissions import accounts_for

    users = get_user_model().objects.filter(is_active=True)
    people = [u for u in users if accounts_for(u, Right.MANAGE).filter(pk=account.pk).exists()]
    # Superusers can manage everything; they are the fallback, not the audience.
    named = [u for u in people if not u.is_superuser or u.pk == account.owner_id]
    return named or people


def notify_users(
    users: list[User],
    *,
    kind: str,
    key: str,
    title: str,
    body: str = "",
    url: str = "",
    account: EmailAccount | None = None,
) -> list[Notification]:
    """Create the notification for each user that does not have it yet; returns the new ones."""
    created: list[Notification] = []
    for user in users:
        try:
            with transaction.atomic():
                created.append(
                    Notification.objects.create(
                        user=user,
                        account=account,
                        kind=kind,
                        key=key[:200],
                        title=title[:300],
                        body=body,
                        url=url[:500],
                    )
                )
        except IntegrityError:
            continue  # already told about this one
    return created


def notify_account_people(
    account: EmailAccount, *, kind: str, key: str, title: str, body: str = "", url: str = ""
) -> list[Notification]:
    return notify_users(
        account_people(account),
        kind=kind,
        key=key,
        title=title,
        body=body,
        url=url,
        account=account,
    )
