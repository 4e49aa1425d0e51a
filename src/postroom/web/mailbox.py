"""Queries the mailbox pages share: which messages a folder holds, what a search matches.

Same meaning as the REST API's filters (``postroom.api.messages``): a folder
holds a message when a current ledger row (of the folder's present
UIDVALIDITY) puts it there, and ``q`` matches the sender's name or address or
the subject, case-insensitively. The API spells these out inline; if it
adopts these helpers, both stay in step by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Exists, F, OuterRef, Q, QuerySet

from postroom.incoming.models import FolderState, Message, MessageLocation

# Newest first, messages without a date last; the id breaks ties so pages are stable.
NEWEST_FIRST = (F("date").desc(nulls_last=True), F("pk").desc())


def in_folder(messages: QuerySet[Message], folder: str) -> QuerySet[Message]:
    """Only the messages that are in ``folder`` on the server now."""
    return messages.filter(
        Exists(
            MessageLocation.objects.filter(
                message=OuterRef("pk"), folder__name=folder, uidvalidity=F("folder__uidvalidity")
            )
        )
    )


def search(messages: QuerySet[Message], q: str) -> QuerySet[Message]:
    """Messages whose sender (name or address) or subject contains ``q``."""
    return messages.filter(
        Q(subject__icontains=q) | Q(from_name__icontains=q) | Q(from_email__icontains=q)
    )


def inbox_first(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda name: (name.upper() != "INBOX", name.casefold()))


def folder_names(account_id: int) -> list[str]:
    """The account's IMAP folders we hold state for, INBOX first."""
    return inbox_first(
        FolderState.objects.filter(account_id=account_id).values_list("name", flat=True)
    )
