"""The suppression list (C15): addresses the queue does not send to."""

from __future__ import annotations

from collections.abc import Iterable

from postroom.mail.mime.build import ascii_domain
from postroom.outgoing.models import Suppression


def suppression_key(address: str) -> str:
    """Whole addresses, case-insensitively, with the domain in its IDNA form."""
    address = address.strip().strip("<>").strip()
    local, at, domain = address.rpartition("@")
    if at:
        try:
            address = f"{local}@{ascii_domain(domain)}"
        except ValueError:
            pass  # not a domain we can encode: compare it as written
    return address.lower()


def suppressed_among(addresses: Iterable[str]) -> dict[str, str]:
    """``{address: reason}`` for those of ``addresses`` on the list (as given)."""
    by_key: dict[str, list[str]] = {}
    for address in addresses:
        by_key.setdefault(suppression_key(address), []).append(address)
    if not by_key:
        return {}
    found: dict[str, str] = {}
    rows = Suppression.objects.filter(address__in=list(by_key)).values_list("address", "reason")
    for key, reason in rows:
        for address in by_key[key]:
            found[address] = reason or key
    return found
