"""Checks every protocol makes before a password leaves the process."""

from __future__ import annotations

from postroom.mail.errors import AuthError, AuthHint, PlaintextRefused
from postroom.mail.types import Credentials, Endpoint, Security


def check_password_encoding(credentials: Credentials) -> None:
    """A8: refuse early rather than send bytes a legacy server mangles."""
    if credentials.ascii_only and not credentials.password.isascii():
        raise AuthError(
            "the password contains non-ASCII characters but the account is set to ASCII only",
            hint=AuthHint.PASSWORD_NOT_ASCII,
        )


def check_plaintext_allowed(endpoint: Endpoint) -> None:
    """A password over an unencrypted connection needs an explicit yes."""
    if endpoint.security is Security.NONE and not endpoint.allow_plaintext_login:
        raise PlaintextRefused(
            "login over an unencrypted connection is not allowed for this account",
            by_server=False,
        )
