from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from django.conf import settings

from postroom.accounts.actions import do_save_account
from postroom.accounts.models import EmailAccount
from tests.servers.dovecot import Dovecot, DovecotUser


def database_url() -> str:
    """The URL of the test database, for postroom processes started by a test."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


@pytest.fixture
def postroom_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    return env


AccountFactory = Callable[..., EmailAccount]


@pytest.fixture
def imap_account_factory(dovecot: Dovecot) -> AccountFactory:
    def make(user: DovecotUser, *, port: int | None = None, **extra: object) -> EmailAccount:
        fields: dict[str, object] = {
            "name": user.name,
            "email": user.name,
            "incoming_protocol": "imap",
            "incoming_host": "localhost",
            "incoming_port": port or dovecot.imaps_port,
            "incoming_security": "ssl",
            "ca_cert": dovecot.ca_pem,
            "outgoing_enabled": False,
        }
        fields.update(extra)
        return do_save_account(
            EmailAccount(**fields), actor=None, password=user.password, check=False
        )

    return make
