"""Who may do what with an account (A11). Every view, API call and CLI command asks here."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet

from postroom.accounts.models import AccountAccess, EmailAccount, Right

UserLike = AbstractBaseUser | AnonymousUser


def _user(user: UserLike) -> User | AnonymousUser:
    # Postroom uses Django's default user model, which has groups and permissions.
    return user if isinstance(user, AnonymousUser) else cast(User, user)

_RIGHT_FIELD = {Right.READ: "can_read", Right.SEND: "can_send", Right.MANAGE: "can_manage"}


def _grant_filter(user: UserLike, right: Right) -> Q:
    user = _user(user)
    grants = AccountAccess.objects.filter(
        Q(user_id=user.pk) | Q(group__in=user.groups.all()),
        **{_RIGHT_FIELD[right]: True},
    )
    return Q(owner_id=user.pk) | Q(pk__in=grants.values("account_id"))


def accounts_for(user: UserLike, right: Right = Right.READ) -> QuerySet[EmailAccount]:
    """Accounts on which ``user`` holds ``right``; managing implies reading and sending."""
    user = _user(user)
    if not user.is_authenticated or not user.is_active:
        return EmailAccount.objects.none()
    if user.is_superuser:
        return EmailAccount.objects.all()
    q = _grant_filter(user, right)
    if right is not Right.MANAGE:
        q |= _grant_filter(user, Right.MANAGE)
    return EmailAccount.objects.filter(q).distinct()


def visible_accounts(user: UserLike) -> QuerySet[EmailAccount]:
    """Every account the user has any right on: the only list a user ever sees."""
    user = _user(user)
    if not user.is_authenticated or not user.is_active:
        return EmailAccount.objects.none()
    if user.is_superuser:
        return EmailAccount.objects.all()
    q = Q()
    for right in Right:
        q |= _grant_filter(user, right)
    return EmailAccount.objects.filter(q).distinct()


def users_with_right(account: EmailAccount, right: Right) -> QuerySet[User]:
    """Active users holding ``right`` on ``account``, by the rules of :func:`accounts_for`
    (managing implies reading and sending; superusers hold every right), in one query."""
    fields = [_RIGHT_FIELD[right]] if right is Right.MANAGE else [_RIGHT_FIELD[right], "can_manage"]
    grant = Q()
    for name in fields:
        grant |= Q(**{name: True})
    grants = AccountAccess.objects.filter(grant, account=account)
    return (
        User.objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | Q(pk=account.owner_id)
            | Q(pk__in=grants.filter(user__isnull=False).values("user_id"))
            | Q(groups__in=grants.filter(group__isnull=False).values("group_id"))
        )
        .distinct()
    )


def has_right(user: UserLike, account: EmailAccount, right: Right) -> bool:
    return accounts_for(user, right).filter(pk=account.pk).exists()


def can_add_accounts(user: UserLike) -> bool:
    user = _user(user)
    return bool(user.is_active and user.has_perm("accounts.add_emailaccount"))


def can_manage_domains(user: UserLike) -> bool:
    user = _user(user)
    return bool(user.is_active and user.has_perm("accounts.change_emaildomain"))
