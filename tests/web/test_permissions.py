"""A11: a user never sees an account they have no right to; read-only cannot change it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import AccountAccess, EmailAccount, EmailDomain
from tests.web.conftest import client_for, make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def bobs_account(bob: User, domain: EmailDomain) -> EmailAccount:
    return make_account("bob-private@example.test", owner=bob)


def test_another_users_account_is_invisible(alice: User, bobs_account: EmailAccount) -> None:
    client = client_for(alice)
    listing = client.get(reverse("web:account_list"))
    assert b"bob-private@example.test" not in listing.content
    for name in (
        "web:account_detail",
        "web:account_edit",
        "web:account_delete",
        "web:account_sharing",
    ):
        assert client.get(reverse(name, args=[bobs_account.pk])).status_code == 404, name
    assert client.post(reverse("web:account_test", args=[bobs_account.pk])).status_code == 404
    assert client.post(reverse("web:account_delete", args=[bobs_account.pk])).status_code == 404
    assert EmailAccount.objects.filter(pk=bobs_account.pk).exists()
    # Nor do its events leak through the event log.
    assert b"bob-private" not in client.get(reverse("web:events")).content


def test_read_only_share_is_visible_but_not_editable(
    alice: User, bob: User, bobs_account: EmailAccount
) -> None:
    do_share_account(bobs_account, actor=bob, user=alice, can_read=True)
    client = client_for(alice)
    assert b"bob-private@example.test" in client.get(reverse("web:account_list")).content
    detail = client.get(reverse("web:account_detail", args=[bobs_account.pk]))
    assert detail.status_code == 200
    assert reverse("web:account_edit", args=[bobs_account.pk]).encode() not in detail.content
    for name in ("web:account_edit", "web:account_delete", "web:account_sharing"):
        assert client.get(reverse(name, args=[bobs_account.pk])).status_code == 403, name
        assert client.post(reverse(name, args=[bobs_account.pk]), {}).status_code == 403, name
    assert EmailAccount.objects.filter(pk=bobs_account.pk).exists()


def test_group_share_with_manage_allows_editing(
    alice: User, bob: User, bobs_account: EmailAccount
) -> None:
    team = Group.objects.create(name="team")
    alice.groups.add(team)
    do_share_account(bobs_account, actor=bob, group=team, can_read=True, can_manage=True)
    client = client_for(alice)
    assert client.get(reverse("web:account_edit", args=[bobs_account.pk])).status_code == 200


def test_owner_shares_and_unshares(alice: User, bob: User, bobs_account: EmailAccount) -> None:
    client = client_for(bob)
    url = reverse("web:account_sharing", args=[bobs_account.pk])
    response = client.post(url, {"user": alice.pk, "can_read": "on", "can_send": "on"})
    assert response.status_code == 302
    access = AccountAccess.objects.get(account=bobs_account, user=alice)
    assert access.can_read and access.can_send and not access.can_manage
    assert b"alice" in client.get(url).content

    # Neither or both of user/group, or no right at all, is refused with a message.
    page = client.post(url, {"can_read": "on"})
    assert b"Choose either a user or a group." in page.content
    page = client.post(url, {"user": alice.pk})
    assert b"Give at least one right." in page.content

    remove = reverse("web:account_unshare", args=[bobs_account.pk, access.pk])
    assert client.get(remove).status_code == 405
    assert client.post(remove).status_code == 302
    assert not AccountAccess.objects.filter(pk=access.pk).exists()


def test_filters_never_reveal_hidden_accounts(alice: User, bobs_account: EmailAccount) -> None:
    own = make_account("alice-own@example.test", owner=alice)
    client = client_for(alice)
    page = client.get(reverse("web:account_list"), {"server": "example.test"})
    assert own.email.encode() in page.content
    assert b"bob-private" not in page.content


def test_account_list_filters(admin: User, domain: EmailDomain) -> None:
    make_account("ops@example.test", owner=admin, login="ops-login", use_for_integration=True)
    make_account(
        "pop@example.test",
        owner=None,
        incoming_protocol="pop3",
        incoming_host="pop.other.test",
        incoming_port=995,
    )
    client = client_for(admin)

    def emails(**query: str) -> set[str]:
        html = client.get(reverse("web:account_list"), query).content.decode()
        return {e for e in ("ops@example.test", "pop@example.test") if e in html}

    assert emails() == {"ops@example.test", "pop@example.test"}
    assert emails(name="ops") == {"ops@example.test"}
    assert emails(owner="admin") == {"ops@example.test"}
    assert emails(address="pop@") == {"pop@example.test"}
    assert emails(server="pop.other") == {"pop@example.test"}
    assert emails(login="ops-login") == {"ops@example.test"}
    assert emails(port="995") == {"pop@example.test"}
    assert emails(protocol="pop3") == {"pop@example.test"}
    assert emails(integration="yes") == {"ops@example.test"}
    assert emails(integration="no") == {"pop@example.test"}
    # An impossible port matches nothing and says why.
    page = client.get(reverse("web:account_list"), {"port": "70000"}).content.decode()
    assert "less than or equal to 65535" in page


def test_domains_are_changed_only_by_domain_managers(alice: User, domain: EmailDomain) -> None:
    client = client_for(alice)
    assert client.get(reverse("web:domain_list")).status_code == 200
    assert client.get(reverse("web:domain_create")).status_code == 403
    assert client.post(reverse("web:domain_delete", args=[domain.pk])).status_code == 403
    assert EmailDomain.objects.filter(pk=domain.pk).exists()


def test_settings_are_for_superusers_only(alice: User, admin: User) -> None:
    assert client_for(alice).get(reverse("web:site_settings")).status_code == 403
    assert b'href="/settings/"' not in client_for(alice).get(reverse("web:account_list")).content
    assert b'href="/settings/"' in client_for(admin).get(reverse("web:account_list")).content
