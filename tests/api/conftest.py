from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from postroom.accounts.actions import do_save_domain
from postroom.accounts.models import EmailDomain
from postroom.core.actions import do_create_api_token


class ApiClient:
    """Django's test client speaking JSON with a bearer token.

    CSRF checks are on, as for a real client: a token-authenticated API must
    not need a CSRF cookie.
    """

    def __init__(self, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = Client(enforce_csrf_checks=True, headers=headers)

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get("/api/v1" + path, params)

    def post(self, path: str, data: Any = None) -> Any:
        return self.client.post("/api/v1" + path, data or {}, content_type="application/json")

    def patch(self, path: str, data: Any) -> Any:
        return self.client.patch("/api/v1" + path, data, content_type="application/json")

    def delete(self, path: str) -> Any:
        return self.client.delete("/api/v1" + path)


def grant(user: User, *codenames: str) -> User:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    # has_perm caches per instance; a fresh one sees the new permissions.
    return User.objects.get(pk=user.pk)


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, *, superuser: bool = False, can_add: bool = True) -> User:
        # No password: hashing one costs about a second, and tokens need none.
        if superuser:
            return User.objects.create_superuser(username)
        user = User.objects.create_user(username)
        return grant(user, "add_emailaccount") if can_add else user

    return make


@pytest.fixture
def api_for() -> Callable[[User], ApiClient]:
    def make(user: User) -> ApiClient:
        _token, raw = do_create_api_token(user, "test")
        return ApiClient(raw)

    return make


@pytest.fixture
def admin(make_user: Callable[..., User]) -> User:
    return make_user("admin", superuser=True)


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob")


@pytest.fixture
def domain(db: None) -> EmailDomain:
    """example.test with servers nobody listens on: tests that save use skip_check."""
    return do_save_domain(
        EmailDomain(
            name="example.test",
            incoming_protocol="imap",
            incoming_host="imap.example.test",
            incoming_port=993,
            incoming_security="ssl",
            smtp_host="smtp.example.test",
            smtp_port=465,
            smtp_security="ssl",
        ),
        actor=None,
    )
