"""What the API and the CLI show of accounts and domains.

The one place that decides which fields leave the server. Passwords are
write-only: neither they nor their ciphertext are ever part of the output,
only whether one is stored. No django-ninja import here: the CLI uses it too.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from postroom.accounts.forms import AccountForm
from postroom.accounts.models import EmailAccount, EmailDomain, Right
from postroom.accounts.permissions import accounts_for
from postroom.accounts.resolve import resolve_servers

# Copied as they are: every field the shared form edits (so a field added to the
# form is shown by the API too), minus the relations spelled out below, plus the
# read-only ones.
_ACCOUNT_PLAIN_FIELDS = (
    "id",
    *(f for f in AccountForm.Meta.fields if f not in ("domain", "preset", "owner")),
    "sync_enabled",
    "is_template",
    "created_at",
    "updated_at",
)

_DOMAIN_FIELDS = (
    "id",
    "name",
    "incoming_protocol",
    "incoming_host",
    "incoming_port",
    "incoming_security",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_auth",
    "verify_cert",
    "ca_cert",
    "created_at",
    "updated_at",
)


def account_dict(account: EmailAccount, *, rights: list[str] | None = None) -> dict[str, Any]:
    """One account as the API and ``postroom account show --json`` return it.

    ``rights``: what the caller may do with it (read, send, manage).
    """
    data: dict[str, Any] = {field: getattr(account, field) for field in _ACCOUNT_PLAIN_FIELDS}
    data.update(
        domain=account.domain.name if account.domain is not None else None,
        preset=account.preset or None,
        owner=account.owner.get_username() if account.owner is not None else None,
        has_password=account.has_password,
        has_smtp_password=bool(account.smtp_password_encrypted),
        servers=asdict(resolve_servers(account)),
        rights=rights if rights is not None else [str(right) for right in Right],
    )
    return data


def domain_dict(domain: EmailDomain) -> dict[str, Any]:
    return {field: getattr(domain, field) for field in _DOMAIN_FIELDS}


def rights_by_account(user: AbstractBaseUser | None) -> dict[int, list[str]]:
    """For each account id, the rights ``user`` holds, in three queries for any list size.

    ``user`` None is the CLI's site operator, who holds every right (not listed here:
    callers default to all rights for it).
    """
    granted: dict[int, list[str]] = {}
    if user is None:
        return granted
    for right in Right:
        for pk in accounts_for(user, right).values_list("pk", flat=True):
            granted.setdefault(pk, []).append(str(right))
    return granted
