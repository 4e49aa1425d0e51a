"""Who may manage webhooks, and which subscriptions and accounts they may use.

Managing webhooks needs the Django permission ``webhooks.change_webhooksubscription``
(superusers hold every permission). A subscription limited to one account
delivers that account's events, so it may be made, seen and changed only by
someone who can read that account (``postroom.accounts.permissions``). A
subscription without an account delivers the events of every account, and
those of no account: only users who can read every account (superusers) may
make or see one.
"""

from __future__ import annotations

from typing import cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import accounts_for
from postroom.webhooks.models import WebhookDelivery, WebhookSubscription

UserLike = AbstractBaseUser | AnonymousUser

MANAGE_PERMISSION = "webhooks.change_webhooksubscription"


def _user(user: UserLike) -> User | AnonymousUser:
    return user if isinstance(user, AnonymousUser) else cast(User, user)


def can_manage_webhooks(user: UserLike) -> bool:
    user = _user(user)
    return bool(user.is_authenticated and user.is_active and user.has_perm(MANAGE_PERMISSION))


def may_subscribe_to_all(user: UserLike) -> bool:
    """Whether ``user`` may have a subscription to the events of every account."""
    user = _user(user)
    return bool(can_manage_webhooks(user) and user.is_superuser)


def subscribable_accounts(user: UserLike) -> QuerySet[EmailAccount]:
    if not can_manage_webhooks(user):
        return EmailAccount.objects.none()
    return accounts_for(user, Right.READ)


def may_use_account(user: UserLike, account: EmailAccount | None) -> bool:
    if account is None:
        return may_subscribe_to_all(user)
    return subscribable_accounts(user).filter(pk=account.pk).exists()


def manageable_subscriptions(user: UserLike) -> QuerySet[WebhookSubscription]:
    """The subscriptions ``user`` may see and change; every other one is "not found"."""
    if not can_manage_webhooks(user):
        return WebhookSubscription.objects.none()
    subscriptions = WebhookSubscription.objects.select_related("account")
    if may_subscribe_to_all(user):
        return subscriptions.all()
    readable = accounts_for(user, Right.READ).values("pk")
    return subscriptions.filter(account__in=readable)


def manageable_deliveries(user: UserLike) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(
        subscription__in=manageable_subscriptions(user).values("pk")
    )
