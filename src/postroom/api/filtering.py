"""A15: filtering an account list by name, owner, address, servers, logins, ports, protocol
and the integration flag.

Servers, ports and protocols are matched on what the account really uses
(its own settings, else its domain's, else its preset's), because that is
what a user sees and searches for; presets are data files, not rows, so that
part is done in Python on the already permission-filtered list.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from postroom.accounts.models import EmailAccount
from postroom.accounts.resolve import resolve_servers


def _contains(needle: str, *haystack: str | None) -> bool:
    needle = needle.casefold()
    return any(needle in (value or "").casefold() for value in haystack)


def filter_accounts(
    accounts: QuerySet[EmailAccount],
    *,
    name: str | None = None,
    owner: str | None = None,
    email: str | None = None,
    host: str | None = None,
    login: str | None = None,
    port: int | None = None,
    protocol: str | None = None,
    integration: bool | None = None,
) -> list[EmailAccount]:
    qs = accounts.select_related("domain", "owner")
    if name:
        qs = qs.filter(name__icontains=name)
    if owner:
        qs = qs.filter(owner__username__icontains=owner)
    if email:
        qs = qs.filter(email__icontains=email)
    if integration is not None:
        qs = qs.filter(use_for_integration=integration)
    result: Iterable[EmailAccount] = qs
    if login:
        result = [a for a in result if _contains(login, a.effective_login, a.effective_smtp_login)]
    if host or port is not None or protocol:
        result = [a for a in result if _matches_servers(a, host=host, port=port, protocol=protocol)]
    return list(result)


def _matches_servers(
    account: EmailAccount, *, host: str | None, port: int | None, protocol: str | None
) -> bool:
    # Host and port match a side even while it is switched off: "which accounts
    # point at this server" must find them all. A protocol means a working side.
    servers = resolve_servers(account)
    if host and not _contains(host, servers.incoming_host, servers.smtp_host):
        return False
    if port is not None and port not in (servers.incoming_port, servers.smtp_port):
        return False
    if protocol:
        wanted = protocol.strip().lower()
        if wanted == "smtp":
            return account.outgoing_enabled
        return account.incoming_enabled and servers.incoming_protocol == wanted
    return True
