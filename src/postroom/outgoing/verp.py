"""VERP return paths (one per message) for an account's own address."""

from __future__ import annotations

from postroom.mail.mime import dsn


def verp_address(account_email: str, token: str) -> str:
    """``local+token@domain`` for the account address ``local@domain``."""
    local, _at, domain = account_email.rpartition("@")
    return dsn.verp_address(local, domain, token)


def parse_verp(address: str, account_email: str) -> str | None:
    """The token when ``address`` is a VERP form of ``account_email``, else None."""
    local, _at, domain = account_email.rpartition("@")
    try:
        return dsn.parse_verp(address, local, domain=domain)
    except ValueError:
        return None
