from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from postroom.accounts.actions import do_save_account, do_save_domain
from postroom.accounts.models import EmailAccount, EmailDomain

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # The real hasher takes a third of a second per user on purpose; tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, *, superuser: bool = False, can_add: bool = True) -> User:
        if superuser:
            return User.objects.create_superuser(username, password=PASSWORD)
        user = User.objects.create_user(username, password=PASSWORD)
        if can_add:
            user.user_permissions.add(Permission.objects.get(codename="add_emailaccount"))
        return User.objects.get(pk=user.pk)

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


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


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
            smtp_port=587,
            smtp_security="starttls",
        ),
        actor=None,
    )


def make_account(
    email: str, *, owner: User | None, password: str = "pw", **extra: Any
) -> EmailAccount:
    """An account saved without asking any server (they do not exist)."""
    fields: dict[str, Any] = {
        "name": email,
        "email": email,
        "owner": owner,
        "incoming_protocol": "imap",
        "incoming_host": "imap.example.test",
        "incoming_port": 993,
        "incoming_security": "ssl",
        "smtp_host": "smtp.example.test",
        "smtp_port": 465,
        "smtp_security": "ssl",
    }
    fields.update(extra)
    return do_save_account(EmailAccount(**fields), actor=None, password=password, check=False)


def account_post(**overrides: Any) -> dict[str, Any]:
    """A complete, valid create-form submission for an example.test account."""
    data: dict[str, Any] = {
        "email": "new@example.test",
        "name": "",
        "incoming_enabled": "on",
        "outgoing_enabled": "on",
        "folders": "INBOX",
        "verify_cert": "on",
        "smtp_auth": "unknown",
        "password": "pw-new",
        "skip_check": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}
