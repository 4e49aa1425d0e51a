from __future__ import annotations

from collections.abc import Callable

import pytest

from postroom.accounts.actions import do_save_account
from postroom.accounts.models import EmailAccount
from tests.conftest import database_url
from tests.servers.dovecot import Dovecot, DovecotUser

__all__ = ["database_url"]  # moved to tests/conftest.py; kept importable here


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
