"""IMAP for the sync engine: typed folder state, UID searches, batched FETCH, IDLE.

Built on :mod:`postroom.mail.imap` (connect, STARTTLS, login) and IMAPClient
(LIST, SEARCH parsing), but the sync-critical commands are issued at imaplib
level so that we control exactly what goes on the wire, and FETCH replies are
read by a small parser of ours (IMAPClient's cost a third of our CPU):

* FETCH uses ``BODY.PEEK[]`` only, so syncing never sets ``\\Seen`` (B3).
* UID sets are compressed (``1:200``), and further FETCH commands are kept in
  flight (pipelining): the server produces the next batches while the caller
  stores the current one. Batches are bounded by count *and* bytes, and only
  one batch is parsed in memory at a time; the rest waits in socket buffers.
  (Measured: as fast as a prefetching thread on loopback, and with a 50 ms
  round trip 1.2-1.5x one-command-at-a-time; see
  tests/sync_protocol/bench_fetch.py.)
* Queries about "now" (new UIDs, flags, expunges) send NOOP first: Dovecot
  answers a command from the session's view as of the previous command.
* Every socket read is bounded by ``endpoint.timeout``. Anything that breaks
  the transport mid-session (EOF, reset, timeout, TLS record error, ``BYE``,
  garbled reply) becomes :class:`~postroom.mail.errors.ConnectionLost`: one
  temporary error the caller answers by reconnecting and resuming from its
  own state. After it the session is unusable; only :meth:`close` is.

The session is not thread-safe. While a :meth:`ImapSyncSession.fetch`
iterator is open, other methods raise ``RuntimeError`` (the connection is busy
with FETCH responses); finish or close the iterator first.
"""

from __future__ import annotations

import bisect
import imaplib
import logging
import re
import selectors
import ssl
import time
from collections import deque
from collections.abc import Collection, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from imapclient.response_parser import parse_message_list

from postroom.mail import imap
from postroom.mail.errors import (
    ConnectionLost,
    FolderMissing,
    MailError,
    Phase,
    ProtocolError,
    TemporaryFailure,
)
from postroom.mail.types import Credentials, Endpoint

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 200
# Upper bound for one FETCH batch in memory; a single larger message still
# comes alone (imaplib reads a literal whole).
DEFAULT_MAX_BATCH_BYTES = 32 * 1024 * 1024
# FETCH commands in flight beyond the one being read (see fetch()). With 2
# the pipeline stays full up to ~50 ms round trips at 200 x 13 KB batches,
# and stays under Dovecot's queue of 4 commands per client.
PIPELINE_DEPTH = 2
# RFC 2177: servers may drop an IDLE after 30 min; many NATs forget sooner.
MAX_IDLE_SECONDS = 25 * 60
# UIDs per command when a caller hands us arbitrary sets (flags, expunges):
# keeps command lines well under Dovecot's 64 KB limit even when sparse.
_UIDS_PER_COMMAND = 2000

_SPECIAL_USE = {
    f.upper(): f
    for f in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}
_NOT_SELECTABLE = frozenset({"\\NOSELECT", "\\NONEXISTENT"})
# Untagged responses that mean "the selected folder changed".
_CHANGE_RESPONSES = ("EXISTS", "RECENT", "EXPUNGE", "FETCH", "VANISHED")
_TEMPORARY_CODES = frozenset({"UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG", "OVERQUOTA"})
_RESP_CODE = re.compile(r"\[(?P<code>[A-Z0-9-]+)[^\]]*\]")
# A flag as STORE sends it: "\Seen" or a keyword atom (RFC 3501 flag-keyword).
_FLAG = re.compile(r"^\\?[^\x00-\x20\x7f-\U0010ffff(){%*\"\\\]]+$")
# Above any UID (they are 32-bit): a bisect key that sorts after (uid, x).
_NO_UID = 2**63

Flags = frozenset[str]


@dataclass(frozen=True)
class FolderInfo:
    name: str  # decoded from modified UTF-7
    delimiter: str | None
    flags: Flags
    special_use: str | None  # "\\Sent", "\\Archive", ... (RFC 6154)

    @property
    def selectable(self) -> bool:
        return not ({f.upper() for f in self.flags} & _NOT_SELECTABLE)


@dataclass(frozen=True)
class FolderStatus:
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None  # None: no CONDSTORE, or the folder says NOMODSEQ
    exists: int
    readonly: bool


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    flags: Flags  # without \Recent, which is per session and not a user flag
    internaldate: datetime | None  # aware, UTC
    size: int  # RFC822.SIZE as the server reports it
    raw: bytes = field(repr=False)
    modseq: int | None


class ImapSyncSession:
    """A logged-in IMAP session for syncing; use as a context manager.

    ``qresync=False`` skips ENABLE QRESYNC (CONDSTORE is still enabled when
    offered) for servers whose QRESYNC is known to be broken.
    """

    def __init__(
        self, endpoint: Endpoint, credentials: Credentials, *, qresync: bool = True
    ) -> None:
        self.endpoint = endpoint
        self._conn = imap.connect(endpoint)
        self._client: Any = self._conn.client  # IMAPClient (untyped)
        self._imap: Any = self._client._imap  # its imaplib.IMAP4
        self._broken = False
        self._busy = False
        self._closed = False
        self._changes_pending = False
        self._selected: FolderStatus | None = None
        self.condstore = False
        self.qresync = False
        self._condstore_via_select = False
        try:
            self._conn.login(credentials)
            # IMAPClient sets imaplib's debug level to 5, which makes imaplib
            # repr() every literal (whole messages) for its logger: about a
            # quarter of our CPU in a bulk fetch, and mail text in debug logs.
            self._imap.debug = 0
            self.capabilities: frozenset[str] = self._conn.capabilities()
            self._enable(qresync)
        except BaseException:
            self._conn.close()
            raise

    def __enter__(self) -> ImapSyncSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Log out; just drop the socket when the connection is broken or a
        fetch() iterator was left open (no point reading its answers)."""
        if self._closed:
            return
        self._closed = True
        if self._broken or self._busy:
            try:
                self._client.shutdown()
            except OSError as exc:
                log.debug("IMAP shutdown failed: %s", exc)
        else:
            self._conn.close()

    @property
    def selected(self) -> FolderStatus | None:
        return self._selected

    # ------------------------------------------------------------ folders

    def list_folders(self) -> list[FolderInfo]:
        self._ready()
        with self._guard("LIST"):
            if {"SPECIAL-USE", "LIST-EXTENDED"} <= self.capabilities:
                # RFC 6154 lets servers omit special-use flags from plain LIST.
                data = self._client._raw_command_untagged(
                    b"LIST", [b'""', b'"*"', b"RETURN", b"(SPECIAL-USE)"], uid=False
                )
                listed = self._client._proc_folder_list(data)
            else:
                listed = self._client.list_folders()
        self._note_unsolicited()
        folders = []
        for raw_flags, delimiter, name in listed:
            flags = frozenset(_text(f) for f in raw_flags)
            special = next(
                (_SPECIAL_USE[f.upper()] for f in flags if f.upper() in _SPECIAL_USE), None
            )
            folders.append(
                FolderInfo(
                    name=str(name),
                    delimiter=_text(delimiter) if delimiter is not None else None,
                    flags=flags,
                    special_use=special,
                )
            )
        return folders

    def select(self, folder: str, readonly: bool = True) -> FolderStatus:
        """SELECT (or EXAMINE when ``readonly``) with CONDSTORE when offered.

        ``highestmodseq`` is the point to pass to :meth:`changed_flags_since`
        and :meth:`expunged_since` next time: record it only after this
        sync's changes are stored.
        """
        self._ready()
        self._selected = None
        mailbox = self._client._normalise_folder(folder)
        if isinstance(mailbox, str):
            mailbox = mailbox.encode("ascii")
        if self._condstore_via_select:
            mailbox += b" (CONDSTORE)"
        with self._guard("SELECT"):
            typ, data = self._imap.select(mailbox, readonly)
            if typ != "OK":
                reply = _text(data[0]) if data and data[0] is not None else ""
                if "NONEXISTENT" in reply or "doesn't exist" in reply.lower():
                    raise FolderMissing(f"folder {folder!r} does not exist: {reply}", folder=folder)
                raise _command_error("SELECT", reply)
            response = self._client._process_select_response(self._imap.untagged_responses)
            self._imap.untagged_responses.clear()
        self._changes_pending = False
        if b"UIDVALIDITY" not in response:
            raise ProtocolError(f"SELECT {folder!r} gave no UIDVALIDITY", phase=Phase.COMMAND)
        uidnext = response.get(b"UIDNEXT")
        if uidnext is None:
            uidnext = self._uidnext_fallback()
        self._selected = FolderStatus(
            name=folder,
            uidvalidity=int(response[b"UIDVALIDITY"]),
            uidnext=int(uidnext),
            highestmodseq=int(response[b"HIGHESTMODSEQ"])
            if self.condstore and b"HIGHESTMODSEQ" in response
            else None,
            exists=int(response.get(b"EXISTS", 0)),
            readonly=readonly or b"READ-WRITE" not in response,
        )
        return self._selected

    def refresh_selected(self, folder: str) -> FolderStatus:
        """What :meth:`select` would say of ``folder``, without a new SELECT
        when the folder is already selected read-only on this session.

        Dovecot reopens the whole mailbox on every SELECT (60-140 ms at
        20,000 messages on a busy machine), which sat on the new-mail path of
        every IDLE wake-up. For the selected folder a STATUS gives the same
        figures, after a NOOP; they are used as lower bounds only (anything
        newer shows up at the next NOOP, which :meth:`uids_after` and the
        flag queries send).
        Selects anyway when the folder is another one, read-write, or its
        UIDVALIDITY or HIGHESTMODSEQ cannot be confirmed. Unlike
        :meth:`select`, change notifications already received stay pending.
        """
        current = self._selected
        if current is None or current.name != folder or not current.readonly:
            return self.select(folder)
        # Dovecot answers STATUS on the selected folder from the session's
        # view as of the previous command: NOOP first (cheap after IDLE
        # reported the change, since that already updated the view).
        self._refresh()
        items = [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"]
        if current.highestmodseq is not None:
            items.append(b"HIGHESTMODSEQ")
        with self._guard("STATUS"):
            response = self._client.folder_status(folder, items)
        self._note_unsolicited()
        uidvalidity = response.get(b"UIDVALIDITY")
        uidnext = response.get(b"UIDNEXT")
        modseq = response.get(b"HIGHESTMODSEQ")
        if (
            uidvalidity is None
            or int(uidvalidity) != current.uidvalidity
            or uidnext is None
            or (current.highestmodseq is not None and modseq is None)
        ):
            return self.select(folder)
        self._selected = FolderStatus(
            name=folder,
            uidvalidity=current.uidvalidity,
            uidnext=max(int(uidnext), current.uidnext),
            highestmodseq=max(int(modseq), current.highestmodseq)
            if modseq is not None and current.highestmodseq is not None
            else None,
            exists=int(response.get(b"MESSAGES", current.exists)),
            readonly=True,
        )
        return self._selected

    def _uidnext_fallback(self) -> int:
        # UIDNEXT is required in SELECT replies, but the highest UID + 1 is
        # a safe stand-in: we only use it as a lower bound for new mail.
        uids = self._uid_search(b"UID", b"*")
        return max(uids) + 1 if uids else 1

    # ------------------------------------------------------------ searching

    def uids_after(self, last_uid: int, *, unseen_only: bool = False) -> list[int]:
        """UIDs greater than ``last_uid``, ascending.

        ``n+1:*`` includes the highest UID even when it is <= n ("*" is the
        largest UID in use, and ranges are unordered), so we filter.
        """
        self._refresh()
        criteria = [b"UID", f"{last_uid + 1}:*".encode()]
        if unseen_only:
            criteria.append(b"UNSEEN")
        return [uid for uid in self._uid_search(*criteria) if uid > last_uid]

    def newest_uids(self, count: int, *, unseen_only: bool = False) -> list[int]:
        """The ``count`` highest UIDs (B4 initial sync count), ascending."""
        if count <= 0:
            return []
        self._refresh()
        uids = self._uid_search(b"UNSEEN" if unseen_only else b"ALL")
        return uids[-count:]

    def _uid_search(self, *criteria: bytes) -> list[int]:
        self._ready()
        with self._guard("UID SEARCH"):
            data = self._client._raw_command_untagged(b"SEARCH", list(criteria))
            uids = sorted(int(uid) for uid in parse_message_list(data))
        self._note_unsolicited()
        return uids

    # ------------------------------------------------------------ fetching

    def fetch(
        self,
        uids: Iterable[int],
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ) -> Generator[list[FetchedMessage], None, None]:
        """Fetch whole messages in ascending UID order, one batch per item.

        Batches hold at most ``batch_size`` messages and, unless a single
        message is larger, ``max_batch_bytes``. UIDs that no longer exist are
        silently absent. The next batch is requested before the current one
        is handed over, so the server works while the caller stores; memory
        is one parsed batch plus what the socket buffers hold.

        Closing the iterator early reads the answers still due, so the
        session stays usable.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._ready()
        ordered = sorted(set(uids))
        batches = self._plan_batches(ordered, batch_size, max_batch_bytes) if ordered else []
        return self._fetch_batches(batches, PIPELINE_DEPTH)

    def _plan_batches(self, ordered: list[int], batch_size: int, max_bytes: int) -> list[list[int]]:
        # Sizes of the few large messages only: one SEARCH finds them, so the
        # common case costs a single round trip and keeps UID order.
        threshold = max(1, max_bytes // batch_size)
        wanted = set(ordered)
        large = [
            uid
            for uid in self._uid_search(
                b"UID", f"{ordered[0]}:{ordered[-1]}".encode(), b"LARGER", str(threshold).encode()
            )
            if uid in wanted
        ]
        sizes: dict[int, int] = {}
        for chunk in _chunks(large, _UIDS_PER_COMMAND):
            for data in self._fetch_items(_uid_set(chunk), b"(UID RFC822.SIZE)"):
                sizes[int(data["UID"])] = int(data.get("RFC822.SIZE", threshold))
        batches: list[list[int]] = []
        current: list[int] = []
        used = 0
        for uid in ordered:
            weight = sizes.get(uid, threshold)
            if current and (len(current) >= batch_size or used + weight > max_bytes):
                batches.append(current)
                current, used = [], 0
            current.append(uid)
            used += weight
        if current:
            batches.append(current)
        return batches

    def _fetch_batches(
        self, batches: list[list[int]], depth: int
    ) -> Generator[list[FetchedMessage], None, None]:
        items = (
            "(UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODY.PEEK[])"
            if self.condstore
            else "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"
        )
        todo = iter(batches)
        in_flight: deque[tuple[Any, list[int]]] = deque()
        # Arrivals for a later batch (a server may interleave pipelined
        # commands) wait here for their own batch.
        early: dict[int, FetchedMessage] = {}

        def send_next() -> None:
            batch = next(todo, None)
            if batch is not None:
                with self._guard("UID FETCH"):
                    tag = self._imap._command("UID", "FETCH", _uid_set(batch), items)
                in_flight.append((tag, batch))

        self._busy = True
        try:
            for _ in range(depth + 1):
                send_next()
            while in_flight:
                tag, batch = in_flight.popleft()
                for message in self._complete_fetch(tag):
                    early[message.uid] = message
                send_next()
                yield [early.pop(uid) for uid in batch if uid in early]
        except GeneratorExit:
            # The caller stopped early: read what is still due so the
            # connection can carry the next command.
            for tag, _batch in in_flight:
                if self._broken:
                    break
                try:
                    self._complete_fetch(tag)
                except MailError as exc:
                    log.debug("draining FETCH after early close failed: %s", exc)
            raise
        except BaseException:
            # Answers to later batches may still be on their way.
            self._broken = self._broken or bool(in_flight)
            raise
        finally:
            self._busy = False

    def _complete_fetch(self, tag: Any) -> list[FetchedMessage]:
        with self._guard("UID FETCH"):
            typ, data = self._imap._command_complete("FETCH", tag)
            raw = self._imap.untagged_responses.pop("FETCH", [])
            if typ != "OK" and "EXPUNGEISSUED" not in _text(data[0] or b""):
                raise _command_error("UID FETCH", _text(data[0] or b""))
            parsed = _parse_fetch(raw)
        messages = []
        for values in parsed:
            body = values.get("BODY[]")
            uid = values.get("UID")
            if uid is None or body is None:
                self._changes_pending = True  # a flag change pushed by the server
                continue
            if not isinstance(body, bytes):  # NIL or "" for an empty message
                body = body.encode("latin-1") if isinstance(body, str) else b""
            date = values.get("INTERNALDATE")
            messages.append(
                FetchedMessage(
                    uid=int(uid),
                    flags=_flags(values.get("FLAGS", ())),
                    internaldate=_internaldate(date) if isinstance(date, str) else None,
                    size=int(values.get("RFC822.SIZE", len(body))),
                    raw=body,
                    modseq=_modseq(values),
                )
            )
        self._note_unsolicited()
        return messages

    def _fetch_items(
        self, uid_set: str, items: bytes, modifiers: bytes | None = None
    ) -> list[dict[str, Any]]:
        """A small UID FETCH (no bodies): entries that carry a UID."""
        self._ready()
        with self._guard("UID FETCH"):
            tag = self._imap._command("UID", "FETCH", uid_set, items, modifiers)
            typ, data = self._imap._command_complete("FETCH", tag)
            raw = self._imap.untagged_responses.pop("FETCH", [])
            if typ != "OK" and "EXPUNGEISSUED" not in _text(data[0] or b""):
                raise _command_error("UID FETCH", _text(data[0] or b""))
            parsed = _parse_fetch(raw)
        return [values for values in parsed if "UID" in values]

    # ------------------------------------------------------------ flags and expunges

    def changed_flags_since(self, modseq: int) -> dict[int, Flags]:
        """Flags of messages changed after ``modseq`` (CONDSTORE CHANGEDSINCE)."""
        self._require_modseq()
        self._refresh()
        changed: dict[int, Flags] = {}
        for values in self._fetch_items("1:*", b"(UID FLAGS)", f"(CHANGEDSINCE {modseq})".encode()):
            changed[int(values["UID"])] = _flags(values.get("FLAGS", ()))
        self._note_unsolicited()
        return changed

    def flags_for(self, uids: Collection[int]) -> dict[int, Flags]:
        """Current flags of ``uids`` (pass a ``range`` for a window): the
        bounded refresh for servers without CONDSTORE. Missing UIDs are absent."""
        self._refresh()
        result: dict[int, Flags] = {}
        for uid_set in _uid_sets(uids):
            for values in self._fetch_items(uid_set, b"(UID FLAGS)"):
                result[int(values["UID"])] = _flags(values.get("FLAGS", ()))
        self._note_unsolicited()
        return result

    def expunged_since(self, known_uids: Collection[int], modseq: int | None = None) -> set[int]:
        """Which of ``known_uids`` are gone from the selected folder.

        With QRESYNC and the ``modseq`` of the last sync (same UIDVALIDITY),
        the server lists them (VANISHED EARLIER); otherwise every known UID
        is checked with UID SEARCH, in chunks.
        """
        self._refresh()
        gone: set[int] = set()
        use_vanished = (
            modseq is not None
            and self.qresync
            and self._require_selected().highestmodseq is not None
        )
        for uid_set in _uid_sets(known_uids):
            wanted = _parse_uid_set(uid_set)
            if use_vanished:
                self._fetch_items(uid_set, b"(UID)", f"(CHANGEDSINCE {modseq} VANISHED)".encode())
                vanished = self._imap.untagged_responses.pop("VANISHED", [])
                ranges = [r for line in vanished for r in _parse_uid_set(_vanished_set(line))]
                gone.update(uid for uid in _iter_ranges(wanted) if _in_ranges(uid, ranges))
            else:
                present = set(self._uid_search(b"UID", uid_set.encode()))
                gone.update(uid for uid in _iter_ranges(wanted) if uid not in present)
        self._note_unsolicited()
        return gone

    def add_flags(self, uids: Collection[int], flags: Iterable[str]) -> None:
        self._store(uids, b"+FLAGS.SILENT", flags)

    def remove_flags(self, uids: Collection[int], flags: Iterable[str]) -> None:
        self._store(uids, b"-FLAGS.SILENT", flags)

    def _store(self, uids: Collection[int], action: bytes, flags: Iterable[str]) -> None:
        flag_list = list(flags)
        for flag in flag_list:
            if not _FLAG.match(flag):
                raise ValueError(f"not an IMAP flag: {flag!r}")
        if self._require_selected().readonly:
            raise RuntimeError("the folder is selected read-only; select(folder, readonly=False)")
        encoded = ("(" + " ".join(flag_list) + ")").encode("ascii")
        for uid_set in _uid_sets(uids):
            with self._guard("UID STORE"):
                self._client._raw_command_untagged(
                    b"STORE", [uid_set.encode(), action, encoded], response_name="FETCH"
                )
            # FETCH echoes of our own change are not news; anything else is.
            self._imap.untagged_responses.pop("FETCH", None)
            self._note_unsolicited()

    def move(self, uids: Collection[int], folder: str) -> None:
        """Move ``uids`` of the selected folder to ``folder`` (MOVE, or COPY + delete).

        Without MOVE (RFC 6851) the fallback expunges only these UIDs when the
        server has UIDPLUS; without UIDPLUS it leaves them marked \\Deleted
        rather than expunging other messages someone else marked.
        """
        if self._require_selected().readonly:
            raise RuntimeError("the folder is selected read-only; select(folder, readonly=False)")
        wanted = sorted(uids)
        if not wanted:
            return
        with self._guard("UID MOVE"):
            if "MOVE" in self.capabilities:
                self._client.move(wanted, folder)
            else:
                self._client.copy(wanted, folder)
                self._client.add_flags(wanted, [b"\\Deleted"], silent=True)
                if "UIDPLUS" in self.capabilities:
                    self._client.uid_expunge(wanted)
        self._note_unsolicited()

    # ------------------------------------------------------------ waiting

    @property
    def supports_idle(self) -> bool:
        return "IDLE" in self.capabilities

    def idle_wait(self, timeout: float) -> bool:
        """Wait in IDLE until the selected folder changes or ``timeout`` passes.

        True when the server reported new, expunged or changed messages
        (or had already done so in a reply to an earlier command: then
        without entering IDLE). Always leaves IDLE before returning; call
        again to keep waiting (``timeout`` is capped at 25 minutes, under
        the 29 minutes RFC 2177 allows).
        """
        self._require_selected()
        if not self.supports_idle:
            raise RuntimeError("the server does not offer IDLE; poll with noop()")
        if self._take_changes():
            return True
        deadline = time.monotonic() + min(timeout, MAX_IDLE_SECONDS)
        self._broken = True  # until IDLE is left cleanly
        with self._guard("IDLE"):
            tag = self._imap._command("IDLE")
            while self._imap._get_response() is not None:  # None: "+ idling"
                if self._imap.tagged_commands.get(tag):
                    _typ, data = self._imap.tagged_commands.pop(tag)
                    self._broken = False
                    raise _command_error("IDLE", _text(data[0] or b""))
            changed = self._take_changes()
            while not changed:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait_readable(remaining):
                    break
                self._imap._get_response()
                changed = self._take_changes()
            self._imap.send(b"DONE\r\n")
            typ, data = self._imap._get_tagged_response(tag)
            changed = self._take_changes() or changed
        self._broken = False
        if typ != "OK":
            raise _command_error("IDLE", _text(data[0] or b""))
        return changed

    def noop(self) -> bool:
        """NOOP (also a keepalive); True when the server reported changes
        since the last check."""
        self._ready()
        with self._guard("NOOP"):
            tag = self._imap._command("NOOP")
            self._imap._command_complete("NOOP", tag)
        return self._take_changes()

    def _refresh(self) -> None:
        """NOOP before a query about "now": Dovecot answers a command from the
        session's view as of the previous one, so mail appended or expunged
        by others since would be missed until the next command."""
        self._require_selected()
        with self._guard("NOOP"):
            tag = self._imap._command("NOOP")
            self._imap._command_complete("NOOP", tag)
        self._note_unsolicited()

    def _wait_readable(self, timeout: float) -> bool:
        """Data to read within ``timeout``? Looks into the buffers first:
        bytes already in imaplib's reader or in OpenSSL never wake a poll."""
        sock = self._imap.sock
        sock.setblocking(False)
        try:
            buffered = self._imap.file.peek(1)
        except (ssl.SSLWantReadError, BlockingIOError):
            buffered = b""
        finally:
            sock.settimeout(self.endpoint.timeout)
        if buffered:
            return True
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            return bool(selector.select(timeout))

    # ------------------------------------------------------------ plumbing

    def _enable(self, qresync: bool) -> None:
        caps = self.capabilities
        wanted = (
            "QRESYNC"
            if qresync and "QRESYNC" in caps
            else "CONDSTORE"
            if "CONDSTORE" in caps
            else None
        )
        if wanted is None:
            return
        if "ENABLE" not in caps:
            # RFC 7162: CONDSTORE also works per SELECT; QRESYNC needs ENABLE.
            self.condstore = self._condstore_via_select = "CONDSTORE" in caps
            return
        with self._guard("ENABLE"):
            enabled = {_text(c).upper() for c in self._client.enable(wanted)}
        self.qresync = "QRESYNC" in enabled
        self.condstore = self.qresync or "CONDSTORE" in enabled

    def _ready(self) -> None:
        if self._closed:
            raise RuntimeError("the IMAP session is closed")
        if self._busy:
            raise RuntimeError("a fetch() iterator is still open on this session")
        if self._broken:
            raise ConnectionLost("the IMAP connection was lost earlier", phase=Phase.COMMAND)

    def _require_selected(self) -> FolderStatus:
        self._ready()
        if self._selected is None:
            raise RuntimeError("no folder selected")
        return self._selected

    def _require_modseq(self) -> None:
        if not self.condstore or self._require_selected().highestmodseq is None:
            raise RuntimeError("no CONDSTORE for this folder; use flags_for()")

    def _note_unsolicited(self) -> None:
        """Remember change notifications that came with other replies, so the
        next idle_wait() does not sleep through them."""
        responses = self._imap.untagged_responses
        if "BYE" in responses:
            self._broken = True
            raise ConnectionLost(
                f"the server ended the session: {_text(responses['BYE'][-1] or b'')}",
                phase=Phase.COMMAND,
            )
        for name in _CHANGE_RESPONSES:
            if responses.pop(name, None) is not None:
                self._changes_pending = True

    def _take_changes(self) -> bool:
        self._note_unsolicited()
        self._imap.untagged_responses.clear()
        changed, self._changes_pending = self._changes_pending, False
        return changed

    @contextmanager
    def _guard(self, command: str) -> Iterator[None]:
        """imaplib/IMAPClient/socket errors -> mail errors; transport ones
        mark the session broken."""
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        try:
            yield
        except imaplib.IMAP4.abort as exc:
            self._broken = True
            raise ConnectionLost(
                f"{where}: connection broken during {command}: {exc}", phase=Phase.COMMAND
            ) from exc
        except imaplib.IMAP4.error as exc:
            raise _command_error(command, _text(exc.args[0] if exc.args else b"")) from exc
        except TimeoutError as exc:
            self._broken = True
            raise ConnectionLost(
                f"{where}: no data for {self.endpoint.timeout:g} s during {command}",
                phase=Phase.COMMAND,
            ) from exc
        except OSError as exc:
            self._broken = True
            raise ConnectionLost(
                f"{where}: connection lost during {command}: {exc}", phase=Phase.COMMAND
            ) from exc
        except ValueError as exc:  # IMAPClient's parsers, on replies they cannot read
            raise ProtocolError(
                f"unreadable reply to {command}: {exc}", phase=Phase.COMMAND
            ) from exc
        except ConnectionLost:  # from imap._IMAP4 on EOF
            self._broken = True
            raise
        except MailError:  # raised by us on a complete reply: the connection is fine
            raise
        except BaseException:
            # KeyboardInterrupt and the like: we may be mid-response, so the
            # connection cannot be reused.
            self._broken = True
            raise


# ---------------------------------------------------------------- helpers


def _command_error(command: str, reply: str) -> MailError:
    match = _RESP_CODE.search(reply)
    if match and match.group("code") in _TEMPORARY_CODES:
        return TemporaryFailure(f"{command} temporarily impossible: {reply}", server_reply=reply)
    return ProtocolError(f"{command} failed: {reply}", phase=Phase.COMMAND, server_reply=reply)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _flags(raw: Iterable[Any]) -> Flags:
    # IMAPClient turns numeric keyword atoms into ints; keep them as text.
    return frozenset(t for t in (_text(f) for f in raw) if t.upper() != "\\RECENT")


def _modseq(values: dict[str, Any]) -> int | None:
    value = values.get("MODSEQ")
    if isinstance(value, list) and value:
        return int(value[0])
    return None


# One token of a FETCH response: ( ) "quoted" {literal} or an atom, which may
# carry a section and partial: BODY[HEADER.FIELDS (FROM)]<0>.
_TOKEN = re.compile(
    rb' *(?:(?P<open>\()|(?P<close>\))|"(?P<quoted>(?:[^"\\]|\\.)*)"'
    rb"|\{(?P<literal>\d+)\}$|(?P<atom>[^ ()\"{\[]+(?:\[[^\]]*\])?(?:<\d+>)?))"
)
_UNESCAPE = re.compile(rb"\\(.)")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}


def _parse_fetch(raw: list[Any]) -> list[dict[str, Any]]:
    """imaplib's FETCH data -> one dict per response, keys upper-case text.

    IMAPClient's parser lexes byte by byte and cost about a third of the
    client's CPU in bulk fetches; this reads the same grammar with a regex.
    Values: atoms bytes (NIL None), quoted strings str, literals bytes,
    lists lists.
    imaplib stores a response as (text, literal) tuples followed by the
    trailing text, or as plain bytes when it has no literal.
    """
    responses: list[dict[str, Any]] = []
    parts: list[tuple[bytes, bytes | None]] = []
    for item in raw:
        if isinstance(item, tuple):
            parts.append((item[0], item[1]))
            continue
        if item is None:
            continue
        parts.append((item, None))
        responses.append(_parse_response(parts))
        parts = []
    if parts:
        raise ValueError("FETCH response ends inside a literal")
    return responses


def _parse_response(parts: list[tuple[bytes, bytes | None]]) -> dict[str, Any]:
    stack: list[list[Any]] = [[]]
    for text, literal in parts:
        pos, end = 0, len(text)
        while pos < end:
            match = _TOKEN.match(text, pos)
            if match is None:
                if not text[pos:].strip():
                    break
                raise ValueError(f"unexpected FETCH data: {text[pos : pos + 40]!r}")
            pos = match.end()
            kind = match.lastgroup
            if kind == "open":
                stack.append([])
            elif kind == "close":
                if len(stack) < 2:
                    raise ValueError("unbalanced ) in FETCH response")
                done = stack.pop()
                stack[-1].append(done)
            elif kind == "quoted":
                stack[-1].append(
                    _UNESCAPE.sub(rb"\1", match.group("quoted")).decode("utf-8", "replace")
                )
            elif kind == "literal":
                if literal is None or int(match.group("literal")) != len(literal):
                    raise ValueError("FETCH literal does not match its announced size")
                stack[-1].append(literal)
                literal = None
            else:
                atom = match.group("atom")
                stack[-1].append(None if atom.upper() == b"NIL" else atom)
    top = stack[0]
    if len(stack) != 1 or len(top) != 2 or not isinstance(top[1], list) or len(top[1]) % 2:
        raise ValueError("malformed FETCH response")
    items = top[1]
    values: dict[str, Any] = {"SEQ": int(top[0])}
    for index in range(0, len(items), 2):
        key = items[index]
        if not isinstance(key, bytes):
            raise ValueError("malformed FETCH item name")
        values[key.decode("ascii", "replace").upper()] = items[index + 1]
    return values


def _internaldate(text: str) -> datetime:
    """ "06-Jan-2025 10:01:00 +0100" (day may be space-padded) -> aware UTC."""
    day, month, rest = text.strip().split("-", 2)
    year, clock, zone = rest.split(" ")
    hour, minute, second = (int(x) for x in clock.split(":"))
    offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * (-1 if zone[0] == "-" else 1)
    local = datetime(int(year), _MONTHS[month.upper()], int(day), hour, minute, second)
    return (local - timedelta(minutes=offset)).replace(tzinfo=UTC)


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _uid_set(uids: Iterable[int]) -> str:
    """Ascending unique UIDs as an IMAP set: [1,2,3,7,9,10] -> "1:3,7,9:10"."""
    parts: list[str] = []
    start = prev = -1
    for uid in uids:
        if uid == prev + 1:
            prev = uid
            continue
        if start >= 0:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    if start >= 0:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def _uid_sets(uids: Collection[int]) -> Iterator[str]:
    """UID sets of bounded length covering ``uids`` (a step-1 range in one)."""
    if isinstance(uids, range) and uids.step == 1:
        if len(uids):
            yield f"{uids.start}:{uids.stop - 1}" if len(uids) > 1 else str(uids.start)
        return
    for chunk in _chunks(sorted(set(uids)), _UIDS_PER_COMMAND):
        yield _uid_set(chunk)


def _parse_uid_set(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in text.split(","):
        if not part:
            continue
        low, _, high = part.partition(":")
        a, b = int(low), int(high or low)
        ranges.append((min(a, b), max(a, b)))
    return sorted(ranges)


def _iter_ranges(ranges: list[tuple[int, int]]) -> Iterator[int]:
    for low, high in ranges:
        yield from range(low, high + 1)


def _in_ranges(uid: int, ranges: list[tuple[int, int]]) -> bool:
    index = bisect.bisect_right(ranges, (uid, _NO_UID)) - 1
    return index >= 0 and ranges[index][0] <= uid <= ranges[index][1]


def _vanished_set(line: Any) -> str:
    # "* VANISHED (EARLIER) 1:3,5" arrives as b"(EARLIER) 1:3,5".
    text = _text(line).strip()
    if text.upper().startswith("(EARLIER)"):
        text = text[len("(EARLIER)") :]
    return text.strip()
