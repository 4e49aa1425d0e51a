"""Sending: one SMTP transaction per message for all its recipients, on a reused connection.

:class:`SmtpSender` keeps one connection to one account's server (opened with
:func:`postroom.mail.smtp.connect` and ``SmtpConnection.login``) and sends
each message in a single transaction: ``MAIL FROM``, one ``RCPT TO`` per
recipient, ``DATA`` only when at least one recipient was accepted. What the
server said about every recipient comes back in a :class:`SendResult`:

* a recipient refused at ``RCPT`` does not fail the others; 4xx is
  temporary, 5xx permanent;
* a refused ``MAIL FROM`` applies to every recipient, as does a refused
  ``DATA`` (before or after the body) to every recipient accepted so far;
* an address that cannot be written for this server (a non-ASCII local part
  without the server's SMTPUTF8, a control character) fails that recipient
  permanently without a code; the sender or the message itself needing
  SMTPUTF8 raises :class:`AddressNotSendable`.

Connection-level failures raise :class:`~postroom.mail.errors.MailError`
with ``temporary`` set (network errors, timeouts and 4xx greetings are
temporary; authentication errors are whatever ``login`` raised, normally
permanent, and the caller decides what that means for the account). A
failure after the whole body went out but before the server's answer raises
:class:`DeliveryUncertain`: the server may have taken the message, so a
retry may deliver it twice. That is the only window for duplicates.

Reuse: before a reused connection carries a transaction it is checked with
``RSET``. When the server offers PIPELINING the ``RSET`` travels in the same
write as ``MAIL``/``RCPT``/``DATA`` and costs no round trip; otherwise it is
sent when the connection has been idle for ``check_after`` seconds or the
last transaction did not end cleanly. A connection found dead at that point
(closed, reset, or a ``421`` the server sent when it timed us out) is
replaced and the transaction restarted once: nothing of it had reached the
server. After any protocol error or exception mid-transaction the connection
is dropped, so a half-finished transaction never poisons the next one.

Not thread-safe: one sender per worker thread.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from postroom.mail.errors import (
    ConnectionLost,
    MailError,
    Phase,
    ProtocolError,
    SMTPRejected,
)
from postroom.mail.mime.build import ascii_domain
from postroom.mail.smtp import SmtpConnection, _smtp_errors, _text, connect
from postroom.mail.types import Credentials, Endpoint

log = logging.getLogger(__name__)

__all__ = [
    "AddressNotSendable",
    "DeliveryUncertain",
    "RecipientResult",
    "SendResult",
    "SmtpSender",
]


class AddressNotSendable(SMTPRejected):
    """An address (or the message) cannot be expressed for this server.

    Raised before anything is sent when the envelope sender or the message
    headers need SMTPUTF8 (RFC 6531) and the server does not offer it, or the
    sender address is unusable (control characters, invalid domain). Never
    temporary: the same server refuses the same way next time.
    """


class DeliveryUncertain(ConnectionLost):
    """The connection failed after the message body was sent, before the reply.

    The server may or may not have accepted the message; retrying may
    deliver it twice (RFC 5321 §6.1 accepts this risk over losing mail).
    Temporary, like any lost connection.
    """


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What happened to one recipient of a transaction.

    ``accepted`` means the server took responsibility for the message for
    this recipient (its final reply to ``DATA`` was 2xx). ``code``/``reply``
    are the reply that decided it (the ``DATA`` reply for accepted
    recipients, else the refusing reply), ``reply`` written as the server
    sent it with its code ("550 5.1.1 User unknown"). ``code`` is None when
    the recipient was refused locally without asking the server.
    ``temporary`` is True for 4xx: retrying later can help.
    """

    address: str
    accepted: bool
    code: int | None
    reply: str
    temporary: bool


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one transaction: one entry per recipient, in the order given.

    ``data_code``/``data_reply`` are the server's final reply to ``DATA``
    (after the body, or to the ``DATA`` command itself when it refused it),
    None/"" when ``DATA`` was never sent.
    """

    recipients: tuple[RecipientResult, ...]
    data_code: int | None
    data_reply: str

    @property
    def accepted(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients if r.accepted)

    @property
    def all_accepted(self) -> bool:
        return all(r.accepted for r in self.recipients)


# Control characters and angle brackets would break (or inject into) the command line.
_UNSAFE_ADDRESS = re.compile(r"[\x00-\x1f\x7f<>]")
_EOL = re.compile(rb"\r\n|\r|\n")
_CHUNK = 1 << 20  # bytes of message body per write


class _Stale(Exception):
    """The reused connection was dead before the transaction reached the server."""

    def __init__(self, cause: MailError | None, reply: str = "") -> None:
        super().__init__(reply or str(cause))
        self.cause = cause
        self.reply = reply


@dataclass(slots=True)
class _Envelope:
    mail_from: str  # as written on the wire
    rcpt: list[tuple[str, str | None]]  # (address as given, wire form or None if unsendable)
    refused_locally: dict[str, str]  # address -> why
    smtputf8: bool
    eight_bit: bool


class SmtpSender:
    """One reusable SMTP connection for one account; see the module docstring.

    The connection opens lazily on the first :meth:`send`. ``check_after``
    is the idle time (seconds) after which a non-pipelining server's
    connection is checked with ``RSET`` before reuse. ``data_timeout`` bounds
    the wait for the reply to the message body (servers scan content then;
    RFC 5321 §4.5.3.2.6 suggests 10 minutes), default the larger of the
    endpoint's timeout and 120 s: giving up too early there is what makes
    duplicates.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: Credentials | None,
        *,
        local_hostname: str | None = None,
        check_after: float = 1.0,
        data_timeout: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self.local_hostname = local_hostname
        self.check_after = check_after
        self.data_timeout = max(endpoint.timeout, 120.0) if data_timeout is None else data_timeout
        self.transactions = 0  # transactions that reached the server's final DATA reply
        self.connections = 0  # connections opened (and logged in)
        self._conn: SmtpConnection | None = None
        self._last_used = 0.0
        self._dirty = False  # the last transaction may have left state behind

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        """QUIT and close; the next :meth:`send` reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _drop(self) -> None:
        """Close without QUIT: the session state is unknown or broken."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.smtp.close()
            except OSError as exc:
                log.debug("closing the SMTP socket failed: %s", exc)

    def _open(self) -> SmtpConnection:
        conn = connect(self.endpoint, self.local_hostname)
        try:
            if self.credentials is not None:
                conn.login(self.credentials)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._dirty = False
        self.connections += 1
        return conn

    # ------------------------------------------------------------------ sending

    def send(self, mail_from: str, rcpt_to: Sequence[str], raw: bytes) -> SendResult:
        """Send ``raw`` to every address of ``rcpt_to`` in one transaction.

        ``mail_from`` may be ``""`` or ``"<>"`` (the null sender of bounces). ``raw`` is
        the complete message; bare LF or CR line ends are sent as CRLF and
        lines starting with a dot are dot-stuffed here.
        """
        if isinstance(rcpt_to, str):
            rcpt_to = (rcpt_to,)
        if not rcpt_to:
            raise ValueError("send() needs at least one recipient")
        data = _wire_data(raw)
        eight_bit = not raw.isascii()
        utf8_headers = eight_bit and not _header_block(raw).isascii()
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._conn or self._open()
            try:
                envelope = self._envelope(conn, mail_from, rcpt_to, eight_bit, utf8_headers)
                return self._transaction(conn, envelope, data, reused)
            except _Stale as stale:
                self._drop()
                log.debug("reused SMTP connection was dead (%s); reconnecting", stale)
                if attempt == 2:  # a brand-new connection cannot be stale
                    raise AssertionError("stale fresh connection") from stale.cause
            except AddressNotSendable:
                raise  # nothing was sent; the connection is fine
            except BaseException:
                self._drop()
                raise
            finally:
                self._last_used = time.monotonic()
        raise AssertionError("unreachable")

    def _envelope(
        self,
        conn: SmtpConnection,
        mail_from: str,
        rcpt_to: Sequence[str],
        eight_bit: bool,
        utf8_headers: bool,
    ) -> _Envelope:
        server_utf8 = conn.smtp.has_extn("smtputf8")
        host = self.endpoint.host
        if utf8_headers and not server_utf8:
            raise AddressNotSendable(
                f"the message has UTF-8 headers (internationalised addresses) and {host} "
                "does not offer SMTPUTF8",
                server_reply="",
                address=mail_from,
            )
        null = mail_from in ("", "<>")  # the null reverse-path of bounces
        sender, why = ("", None) if null else _wire_address(mail_from, server_utf8, host)
        if why is not None:
            raise AddressNotSendable(
                f"sender <{mail_from}>: {why}", server_reply="", address=mail_from
            )
        rcpt: list[tuple[str, str | None]] = []
        refused: dict[str, str] = {}
        smtputf8 = utf8_headers or not sender.isascii()
        for address in rcpt_to:
            wire, why = _wire_address(address, server_utf8, host)
            if why is not None:
                refused[address] = f"<{address}>: {why}"
                rcpt.append((address, None))
            else:
                smtputf8 = smtputf8 or not wire.isascii()
                rcpt.append((address, wire))
        return _Envelope(sender, rcpt, refused, smtputf8, eight_bit)

    def _mail_command(self, conn: SmtpConnection, envelope: _Envelope, size: int) -> bytes:
        smtp = conn.smtp
        params = ""
        if "size" in smtp.esmtp_features:
            params += f" SIZE={size}"
        if envelope.eight_bit and "8bitmime" in smtp.esmtp_features:
            params += " BODY=8BITMIME"
        if envelope.smtputf8:
            params += " SMTPUTF8"
        return f"MAIL FROM:<{envelope.mail_from}>{params}\r\n".encode()

    def _transaction(
        self, conn: SmtpConnection, envelope: _Envelope, data: bytes, reused: bool
    ) -> SendResult:
        smtp = conn.smtp
        wires = [wire for _, wire in envelope.rcpt if wire is not None]
        if not wires:
            # Every recipient was refused locally: nothing to ask the server.
            return _result(envelope, [], None, None)
        pipelining = "pipelining" in smtp.esmtp_features
        check = reused and (
            pipelining or self._dirty or time.monotonic() - self._last_used > self.check_after
        )
        mail_command = self._mail_command(conn, envelope, len(data))
        rcpt_commands = [f"RCPT TO:<{wire}>\r\n".encode() for wire in wires]
        if pipelining:
            opening = (b"RSET\r\n" if check else b"") + mail_command
            opening += b"".join(rcpt_commands) + b"DATA\r\n"
        else:
            opening = b"RSET\r\n" if check else mail_command
        mail = self._open_transaction(conn, opening, mail_command, check, pipelining, reused)
        self._dirty = True  # until the transaction ends cleanly
        mail_ok = mail[0] // 100 == 2
        with _smtp_errors(self.endpoint, Phase.COMMAND):
            data_cmd: tuple[int, str] | None = None
            if pipelining:
                rcpt_replies = _read_replies(conn, len(wires), mail if mail[0] == 421 else None)
                if rcpt_replies[-1][0] != 421:
                    data_cmd = _read(conn)
            else:
                rcpt_replies = []
                if mail_ok:
                    for command in rcpt_commands:
                        if rcpt_replies and rcpt_replies[-1][0] == 421:
                            rcpt_replies.append(rcpt_replies[-1])  # the server has gone
                            continue
                        smtp.send(command)
                        rcpt_replies.append(_read(conn))
                if any(code // 100 == 2 for code, _ in rcpt_replies) and (
                    rcpt_replies[-1][0] != 421
                ):
                    smtp.send(b"DATA\r\n")
                    data_cmd = _read(conn)
            any_accepted = mail_ok and any(code // 100 == 2 for code, _ in rcpt_replies)
            if data_cmd is not None and data_cmd[0] == 354 and not any_accepted:
                # A non-conforming server said 354 with nothing to deliver: end the empty
                # message at once (RFC 2920 §3.1) and ignore its reply.
                smtp.send(b".\r\n")
                _read(conn)
                data_cmd = None
        closing = mail[0] == 421 or any(code == 421 for code, _ in rcpt_replies)
        if not mail_ok:
            return self._finish(_result(envelope, [], None, mail), closing)
        if not any_accepted:
            return self._finish(_result(envelope, rcpt_replies, None, None), closing)
        if data_cmd is None:  # accepted, then the server closed (421) before DATA
            return self._finish(_result(envelope, rcpt_replies, rcpt_replies[-1], None), True)
        if data_cmd[0] != 354:
            if data_cmd[0] // 100 == 2:
                raise _protocol_error(f"DATA answered {data_cmd[1]!r} instead of 354")
            # DATA itself refused: it decides for everyone accepted so far.
            result = _result(envelope, rcpt_replies, data_cmd, None)
            return self._finish(result, closing or data_cmd[0] == 421)

        final = self._send_body(conn, data)
        self.transactions += 1
        if final[0] == 421:
            self._drop()
        else:
            self._dirty = False
        return _result(envelope, rcpt_replies, final, None)

    def _open_transaction(
        self,
        conn: SmtpConnection,
        opening: bytes,
        mail_command: bytes,
        check: bool,
        pipelining: bool,
        reused: bool,
    ) -> tuple[int, str]:
        """Send the opening write, read the RSET (if any) and MAIL replies.

        On a reused connection, a connection found dead here (closed, reset, or
        a 421 left by a server that timed us out) has carried nothing of this
        transaction: :class:`_Stale` tells :meth:`send` to reconnect and retry.
        """
        try:
            with _smtp_errors(self.endpoint, Phase.COMMAND):
                conn.smtp.send(opening)
                if check:
                    code, reply = _read(conn)
                    if code != 250:
                        raise _Stale(None, reply)
                    if not pipelining:
                        conn.smtp.send(mail_command)
                mail = _read(conn)
        except ConnectionLost as exc:
            if reused:
                raise _Stale(exc) from exc
            raise
        if reused and not check and mail[0] == 421:
            raise _Stale(None, mail[1])
        return mail

    def _send_body(self, conn: SmtpConnection, data: bytes) -> tuple[int, str]:
        smtp = conn.smtp
        sock = smtp.sock
        assert sock is not None
        with _smtp_errors(self.endpoint, Phase.COMMAND):
            if len(data) <= _CHUNK:
                smtp.send(data)
            else:
                # A socket timeout bounds a whole sendall(); in chunks, a big message on a
                # slow link is bounded per chunk instead of failing as a whole.
                view = memoryview(data)
                for start in range(0, len(data), _CHUNK):
                    smtp.send(view[start : start + _CHUNK])
        slow = self.data_timeout > self.endpoint.timeout
        try:
            with _smtp_errors(self.endpoint, Phase.COMMAND):
                if slow:
                    sock.settimeout(self.data_timeout)
                reply = _read(conn)
                if slow:
                    sock.settimeout(self.endpoint.timeout)
                return reply
        except MailError as exc:
            raise DeliveryUncertain(
                f"{self.endpoint.host}:{self.endpoint.port}: no reply after the message "
                f"body ({exc.detail}); the server may have accepted it",
                phase=Phase.COMMAND,
            ) from exc

    def _finish(self, result: SendResult, closing: bool) -> SendResult:
        """End of a transaction that never reached the body; 421: the server is leaving."""
        if closing:
            self._drop()
        return result


def _read(conn: SmtpConnection) -> tuple[int, str]:
    """One reply as (code, "code text"); a reply that is not SMTP raises ProtocolError."""
    code, text = conn.smtp.getreply()
    if not 200 <= code < 600:
        raise _protocol_error(f"unexpected SMTP reply {code} {_text(text)!r}")
    lines = _text(text).split("\n")
    return code, "\n".join(f"{code} {line}".rstrip() for line in lines)


def _read_replies(
    conn: SmtpConnection, count: int, gone: tuple[int, str] | None
) -> list[tuple[int, str]]:
    """``count`` pipelined replies; after a 421 the server has closed, the rest are that 421."""
    out: list[tuple[int, str]] = []
    for _ in range(count):
        if gone is None:
            reply = _read(conn)
            if reply[0] == 421:
                gone = reply
            out.append(reply)
        else:
            out.append(gone)
    return out


def _protocol_error(detail: str) -> ProtocolError:
    error = ProtocolError(detail, phase=Phase.COMMAND)
    error.temporary = True  # a confused server or a garbled line; worth another try later
    return error


def _result(
    envelope: _Envelope,
    rcpt_replies: list[tuple[int, str]],
    final: tuple[int, str] | None,
    everyone: tuple[int, str] | None,
) -> SendResult:
    """Per-recipient results, in the order the recipients were given.

    ``rcpt_replies``: the RCPT replies, in order, for the recipients sent to the
    server. ``final``: the DATA reply (to the command or after the body), which
    decides for recipients accepted at RCPT. ``everyone``: a refused MAIL FROM,
    which decides for all.
    """
    out: list[RecipientResult] = []
    replies = iter(rcpt_replies)
    for address, wire in envelope.rcpt:
        if wire is None:
            why = envelope.refused_locally[address]
            out.append(RecipientResult(address, False, None, why, False))
            continue
        if everyone is not None:
            code, reply = everyone
        else:
            code, reply = next(replies)
            if final is not None and code // 100 == 2:
                code, reply = final
        accepted = everyone is None and final is not None and code // 100 == 2
        out.append(RecipientResult(address, accepted, code, reply, code // 100 == 4))
    return SendResult(tuple(out), final[0] if final else None, final[1] if final else "")


def _wire_address(address: str, server_utf8: bool, host: str) -> tuple[str, str | None]:
    """The address as written in MAIL/RCPT, or ("", why) when it cannot be.

    Non-ASCII domains become IDNA (every server takes those); a non-ASCII
    local part needs the server's SMTPUTF8.
    """
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if not address or _UNSAFE_ADDRESS.search(address):
        return "", "not a valid address"
    if address.isascii():
        return address, None
    local, at, domain = address.rpartition("@")
    if not at:
        return "", "not a valid address"
    try:
        domain = ascii_domain(domain)
    except ValueError as exc:
        return "", f"invalid domain ({exc})"
    if not local.isascii() and not server_utf8:
        return "", f"the address needs SMTPUTF8, which {host} does not offer"
    return f"{local}@{domain}", None


def _wire_data(raw: bytes) -> bytes:
    """The DATA payload: CRLF line ends, dot-stuffed, with the final ``.`` line."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        # Bare LF/CR: normalise, or a server may read line ends differently from us.
        raw = _EOL.sub(b"\r\n", raw)
    if raw.startswith(b".") or b"\n." in raw:
        raw = (b"." if raw.startswith(b".") else b"") + raw.replace(b"\n.", b"\n..")
    if raw and not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


def _header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[:end]
