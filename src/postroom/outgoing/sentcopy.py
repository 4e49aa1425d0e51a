"""C11: file a copy of sent mail in the account's Sent folder by IMAP APPEND.

The copy is the very bytes that were sent (same Message-ID, same SHA-256),
flagged ``\\Seen``. When incoming sync later fetches the Sent folder it finds
a blob it already holds and stores the message once. The folder is the one
named in the account, else the one the server marks ``\\Sent`` (RFC 6154),
else a folder literally called "Sent".

A thin helper over :mod:`postroom.mail.imap` (connect, login) and its
IMAPClient, because the sync session has no APPEND; it keeps one logged-in
connection per account and drops it after any error.
"""

from __future__ import annotations

import imaplib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount, IncomingProtocol
from postroom.accounts.resolve import incoming_check, resolve_servers
from postroom.mail import imap, net
from postroom.mail.errors import ConnectionLost, MailError, Phase, ProtocolError
from postroom.mail.types import Endpoint

log = logging.getLogger(__name__)

SEEN = "\\Seen"


class SentCopyImpossible(MailError):
    """This account cannot file copies (no IMAP, no Sent folder); retrying will not help."""

    temporary = False


@dataclass
class _Open:
    stamp: object  # the account's updated_at: new settings, new connection
    connection: imap.ImapConnection
    folder: str


def _guarded(endpoint: Endpoint, command: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        with net.translated(endpoint, Phase.COMMAND):
            return call(*args, **kwargs)
    except imaplib.IMAP4.abort as exc:
        raise ConnectionLost(
            f"IMAP connection lost during {command}: {exc}", phase=Phase.COMMAND
        ) from exc
    except imaplib.IMAP4.error as exc:
        reply = str(exc)
        error = ProtocolError(
            f"{command} refused: {reply}", phase=Phase.COMMAND, server_reply=reply
        )
        # [TRYCREATE] and the like need a person; quota and "in use" pass.
        error.temporary = any(code in reply.upper() for code in ("UNAVAILABLE", "INUSE", "LIMIT"))
        raise error from exc


def find_sent_folder(connection: imap.ImapConnection, configured: str = "") -> str:
    """The configured folder (which must exist), else SPECIAL-USE \\Sent, else "Sent"."""
    client = connection.client
    endpoint = connection.endpoint
    if configured:
        if not connection.folder_exists(configured):
            raise SentCopyImpossible(
                _("The Sent folder %(f)s does not exist on the server.") % {"f": configured}
            )
        return configured
    listed = _guarded(endpoint, "LIST", client.list_folders)
    for flags, _delimiter, name in listed:
        if any((f.decode() if isinstance(f, bytes) else str(f)).upper() == "\\SENT" for f in flags):
            return str(name)
    for _flags, _delimiter, name in listed:
        if str(name).lower() in ("sent", "inbox.sent", "sent items", "sent messages"):
            return str(name)
    raise SentCopyImpossible(
        _("The server marks no folder as Sent; name the Sent folder in the account settings.")
    )


class SentCopier:
    """Keeps one IMAP connection per account and appends copies through it."""

    def __init__(self) -> None:
        self._open: dict[int, _Open] = {}

    def _connection(self, account: EmailAccount) -> _Open:
        current = self._open.get(account.pk)
        if current is not None and current.stamp == account.updated_at:
            return current
        self.drop(account.pk)
        servers = resolve_servers(account)
        if (servers.incoming_protocol or "imap") != IncomingProtocol.IMAP or not (
            servers.incoming_host and servers.incoming_port and servers.incoming_security
        ):
            raise SentCopyImpossible(
                _("Copies to the Sent folder need an IMAP server for this account.")
            )
        check = incoming_check(account)
        connection = imap.connect(check.endpoint)
        try:
            connection.login(check.credentials)
            folder = find_sent_folder(connection, account.sent_folder)
        except BaseException:
            connection.close()
            raise
        opened = _Open(account.updated_at, connection, folder)
        self._open[account.pk] = opened
        return opened

    def append(self, account: EmailAccount, raw: bytes, when: datetime | None = None) -> str:
        """APPEND ``raw`` with ``\\Seen`` to the account's Sent folder; returns the folder."""
        opened = self._connection(account)
        try:
            _guarded(
                opened.connection.endpoint,
                "APPEND",
                opened.connection.client.append,
                opened.folder,
                raw,
                flags=(SEEN,),
                msg_time=when,
            )
        except MailError:
            self.drop(account.pk)
            raise
        return opened.folder

    def drop(self, account_id: int) -> None:
        opened = self._open.pop(account_id, None)
        if opened is not None:
            opened.connection.close()

    def close(self) -> None:
        for account_id in list(self._open):
            self.drop(account_id)
