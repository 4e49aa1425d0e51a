"""POP3 for the sync engine (B6): UIDL ledger, RETR, DELE.

Connection, STLS/implicit TLS and login (with the refusal of plaintext
passwords) are :mod:`postroom.mail.pop3`'s. RETR is read by our own loop
instead of ``poplib.retr``: poplib refuses lines over 2,048 bytes and real
mail has longer ones; raising ``poplib._MAXLINE`` would change every POP3
client in the process.

Deletions: RFC 1939 applies DELE only when the session ends with QUIT.
:meth:`Pop3SyncSession.quit` is that commit; leaving the ``with`` block
without it (normally or by an exception) sends RSET before QUIT, or just
drops a broken connection, so nothing is deleted by accident.
"""

from __future__ import annotations

import logging
import poplib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from postroom.mail import pop3
from postroom.mail.errors import (
    ConnectionLost,
    MailError,
    Phase,
    ProtocolError,
    TemporaryFailure,
)
from postroom.mail.types import Credentials, Endpoint

log = logging.getLogger(__name__)

# Long lines arrive in pieces of this size; only the message total is capped.
_READ_CHUNK = 64 * 1024
# Far above what mail servers accept (Gmail 50 MB, Exchange 150 MB): a guard
# against a server that never sends the terminating ".".
MAX_MESSAGE_BYTES = 512 * 1024 * 1024
_STATUS_LINE_MAX = 2048
_RESP_CODE = re.compile(r"^-ERR \[(?P<code>[A-Z0-9/-]+)\]")
_TEMPORARY_CODES = frozenset({"SYS/TEMP", "IN-USE", "LOGIN-DELAY"})


@dataclass(frozen=True)
class Pop3Stat:
    messages: int
    octets: int


class Pop3SyncSession:
    """A logged-in POP3 session; use as a context manager.

    Message numbers are valid for this session only; the unique ids from
    :meth:`uidl` are what a ledger stores.
    """

    def __init__(self, endpoint: Endpoint, credentials: Credentials) -> None:
        self.endpoint = endpoint
        self._conn = pop3.connect(endpoint)
        try:
            self._conn.login(credentials)
        except BaseException:
            self._conn.close()
            raise
        self._pop = self._conn.pop
        self._broken = False
        self._closed = False

    def __enter__(self) -> Pop3SyncSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stat(self) -> Pop3Stat:
        with self._guard("STAT"):
            messages, octets = self._pop.stat()
        return Pop3Stat(messages, octets)

    def uidl(self) -> dict[int, str]:
        """Message number -> unique id (RFC 1939 UIDL)."""
        result: dict[int, str] = {}
        with self._guard("UIDL"):
            _resp, lines, _octets = self._pop.uidl()
            for line in lines:
                number, _, unique = line.strip().partition(b" ")
                # Unique ids are 0x21-0x7E by the RFC; latin-1 keeps any byte distinct.
                result[int(number)] = unique.decode("latin-1")
        return result

    def retrieve(self, number: int) -> bytes:
        """The whole message, dot-unstuffed, line endings as the server sent them."""
        with self._guard("RETR"):
            self._pop.sock.sendall(f"RETR {number}\r\n".encode("ascii"))
            self._status_line()
            return self._multiline()

    def delete(self, number: int) -> None:
        """Mark for deletion; nothing is deleted before :meth:`quit`."""
        with self._guard("DELE"):
            self._pop.dele(number)

    def quit(self) -> None:
        """QUIT: the server now deletes what was marked, then the session ends.

        An error here (or a lost connection) leaves it open whether the
        deletions happened: the caller finds out from the next UIDL.
        """
        self._ensure_open()
        try:
            with self._guard("QUIT"):
                self._pop.quit()
        finally:
            self._closed = True
            self._pop.close()

    def close(self) -> None:
        """End the session without deleting anything (RSET, QUIT)."""
        if self._closed:
            return
        try:
            if not self._broken:
                with self._guard("RSET"):
                    self._pop.rset()
                    self._pop.quit()
        except MailError as exc:
            log.debug("POP3 RSET/QUIT failed, closing: %s", exc)
        finally:
            self._closed = True
            self._pop.close()

    # ------------------------------------------------------------ plumbing

    def _status_line(self) -> None:
        line = self._pop.file.readline(_STATUS_LINE_MAX + 1)
        if not line:
            raise self._lost("the server closed the connection")
        if len(line) > _STATUS_LINE_MAX:
            raise poplib.error_proto("status line too long")
        if not line.startswith(b"+OK"):
            raise poplib.error_proto(line.rstrip(b"\r\n"))

    def _multiline(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        at_line_start = True
        readline = self._pop.file.readline
        while True:
            piece = readline(_READ_CHUNK)
            if not piece:
                raise self._lost("the server closed the connection in the middle of a message")
            if at_line_start and piece[:1] == b".":
                if piece in (b".\r\n", b".\n"):
                    return b"".join(parts)
                piece = piece[1:]  # RFC 1939 byte-stuffing
            at_line_start = piece[-1:] == b"\n"
            total += len(piece)
            if total > MAX_MESSAGE_BYTES:
                self._broken = True
                raise ProtocolError(
                    f"message larger than {MAX_MESSAGE_BYTES} bytes", phase=Phase.COMMAND
                )
            parts.append(piece)

    def _lost(self, detail: str) -> ConnectionLost:
        self._broken = True
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        return ConnectionLost(f"{where}: {detail}", phase=Phase.COMMAND)

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError("the POP3 session is closed")
        if self._broken:
            raise ConnectionLost("the POP3 connection was lost earlier", phase=Phase.COMMAND)

    @contextmanager
    def _guard(self, command: str) -> Iterator[None]:
        """poplib/socket errors -> mail errors; transport ones mark the session broken."""
        self._ensure_open()
        try:
            yield
        except poplib.error_proto as exc:
            first = exc.args[0] if exc.args else b""
            reply = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
            if not reply.startswith("-ERR"):
                # "line too long" and the like: we lost track of the stream.
                self._broken = True
                raise ProtocolError(
                    f"unreadable reply to {command}: {reply}", phase=Phase.COMMAND
                ) from exc
            match = _RESP_CODE.match(reply)
            if match and match.group("code") in _TEMPORARY_CODES:
                raise TemporaryFailure(
                    f"{command} temporarily impossible: {reply}", server_reply=reply
                ) from exc
            raise ProtocolError(
                f"{command} failed: {reply}", phase=Phase.COMMAND, server_reply=reply
            ) from exc
        except ConnectionLost:
            self._broken = True
            raise
        except MailError:
            raise
        except TimeoutError as exc:
            raise self._lost(f"no data for {self.endpoint.timeout:g} s during {command}") from exc
        except OSError as exc:
            raise self._lost(f"connection lost during {command}: {exc}") from exc
        except ValueError as exc:  # a UIDL listing we cannot read; the reply was complete
            raise ProtocolError(
                f"unreadable reply to {command}: {exc}", phase=Phase.COMMAND
            ) from exc
        except BaseException:
            self._broken = True
            raise
