"""users_with_right answers in one query what has_right answers per user."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailDomain, Right
from postroom.accounts.permissions import has_right, users_with_right
from tests.web.conftest import domain, make_account

pytestmark = pytest.mark.django_db
__all__ = ["domain"]


def test_users_with_right_matches_has_right_for_every_kind_of_grant(domain: EmailDomain) -> None:
    owner = User.objects.create_user("owner")
    account = make_account("shared@example.test", owner=owner)
    reader, sender, manager, member, stranger = (
        User.objects.create_user(n) for n in ("reader", "sender", "manager", "member", "stranger")
    )
    boss = User.objects.create_superuser("boss")
    gone = User.objects.create_user("gone", is_active=False)
    team = Group.objects.create(name="team")
    member.groups.add(team)
    do_share_account(account, actor=None, user=reader)
    do_share_account(account, actor=None, user=sender, can_send=True)
    do_share_account(account, actor=None, user=manager, can_manage=True)
    do_share_account(account, actor=None, user=gone, can_manage=True)
    do_share_account(account, actor=None, group=team, can_send=True)
    everyone = [owner, reader, sender, manager, member, stranger, boss, gone]
    for right in Right:
        expected = {u.username for u in everyone if has_right(u, account, right)}
        assert {u.username for u in users_with_right(account, right)} == expected, right
    assert {u.username for u in users_with_right(account, Right.MANAGE)} == {
        "owner",
        "manager",
        "boss",
    }
