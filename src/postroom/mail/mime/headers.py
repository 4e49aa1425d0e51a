"""The fast path: top-level headers only, before a message counts as stored.

Sync must be able to store, thread and index a message long before its
body is decoded, and it runs this on every message fetched, so it is
written for speed: it splits the header block at the first empty line
itself, unfolds lines with bytes operations, and decodes only the dozen
headers we keep. Nothing here builds an ``email.message.Message``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz

from postroom.mail.mime.addresses import Address, parse_address_list
from postroom.mail.mime.charsets import decode_header_bytes
from postroom.mail.mime.scan import scan_headers, split_header_block
from postroom.mail.mime.words import decode_words, parse_parameters

# Headers kept. Recipient lists and References are concatenated across
# repeats (broken mailers emit two To: lines, and every recipient should
# be findable); the others keep their first occurrence, as the stdlib does.
_SINGLE_HEADERS = frozenset(
    {
        b"message-id",
        b"in-reply-to",
        b"subject",
        b"date",
        b"content-type",
        b"from",
        b"sender",
        b"reply-to",
    }
)
_MULTI_HEADERS = frozenset({b"to", b"cc", b"references"})

# Header names we keep, matched at the start of a line (case-insensitive),
# allowing the obsolete whitespace before the colon (RFC 5322 §4.5).
_WANTED_NAME = re.compile(
    rb"(message-id|in-reply-to|references|subject|date|content-type|from|sender|reply-to|to|cc)"
    rb"[ \t]*:",
    re.I,
)
_WANTED_FIRST = frozenset(bytes([c]) for c in b"mMiIrRsSdDcCfFtT")

# The date format of nearly all mail; anything else goes to parsedate_tz.
_RFC5322_DATE = re.compile(
    r"(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"\s+([+-]\d{4})(?:\s*\(.*\))?\s*$"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_MSGID = re.compile(r"<\s*([^<>]*?)\s*>")
_WS = re.compile(r"\s+")

# Reply and forward prefixes in the languages our users' correspondents
# write in, with optional counters ("Re[2]:", "AW(3):"). Full-width colon
# for CJK clients.
_SUBJECT_PREFIX = re.compile(
    r"""\s*(?:
        (?:re|fwd?|aw|wg|odp|pd|sv|vs|antw|tr|rif|r|enc|res|ynt|ilt|vl|
           απ|σχετ|отв|пересл|回复|回覆|答复|转发|轉寄|返信|転送|답장|전달)
        \s*(?:\[\d+\]|\(\d+\))?\s*[:：]
      |\[fwd?:[^\]]*\]
    )\s*""",
    re.I | re.X,
)
_SUBJECT_SUFFIX = re.compile(r"\s*\((?:fwd|fw)\)\s*$", re.I)


@dataclass(frozen=True, slots=True)
class MessageHeaders:
    """The top-level headers Postroom stores, threads and searches on.

    All text is decoded (RFC 2047, RFC 6532, 8-bit fallbacks). Message-IDs
    have their angle brackets stripped. ``defects`` lists what had to be
    guessed while decoding.
    """

    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    subject: str = ""
    from_: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    date: datetime | None = None
    content_type: str = "text/plain"
    charset: str | None = None
    defects: tuple[str, ...] = field(default=())

    @property
    def normalized_subject(self) -> str:
        """The subject without reply/forward prefixes, for subject threading."""
        return normalize_subject(self.subject)

    @property
    def likely_has_attachments(self) -> bool:
        """A cheap guess for list views before the body is parsed."""
        return self.content_type in ("multipart/mixed", "multipart/related") or not (
            self.content_type.startswith(("text/", "multipart/"))
        )

    def thread_key_candidates(self) -> tuple[str, ...]:
        """Message-IDs this message answers, nearest first.

        In-Reply-To, then References from last to first. A threader looks
        these up among known messages and joins the first thread it finds;
        when none is known it may fall back to ``normalized_subject``.
        """
        seen: dict[str, None] = {}
        if self.in_reply_to:
            seen[self.in_reply_to] = None
        for ref in reversed(self.references):
            seen.setdefault(ref, None)
        if self.message_id:
            seen.pop(self.message_id, None)  # some clients list themselves
        return tuple(seen)


def normalize_subject(subject: str) -> str:
    """Strip reply/forward prefixes (Re:, Fwd:, AW:, WG:, Odp:, 返信:...)
    and list-tag noise between them, repeatedly; collapse whitespace."""
    s = " ".join(subject.split())
    while True:
        m = _SUBJECT_PREFIX.match(s)
        if m is None or m.end() == 0:
            # "[list] Re: topic" is the same thread as "[list] topic".
            if s.startswith("["):
                close = s.find("]")
                if 0 < close and _SUBJECT_PREFIX.match(s, close + 1):
                    tag = s[: close + 1]
                    rest = _SUBJECT_PREFIX.sub("", s[close + 1 :].lstrip(), count=1)
                    s = f"{tag} {rest}".strip()
                    continue
            break
        s = s[m.end() :]
    return _SUBJECT_SUFFIX.sub("", s).strip()


def normalize_msgid(value: str | None) -> str | None:
    """The first Message-ID in ``value`` without brackets, or None.

    Accepts bare IDs without brackets (``In-Reply-To: someone@example``)
    and removes whitespace left inside brackets by folding.
    """
    if not value:
        return None
    m = _MSGID.search(value)
    if m:
        ident = "".join(m.group(1).split())
        return ident or None
    token = value.strip().split()
    if token and "@" in token[0]:
        return token[0].strip("<>,;\"'") or None
    return None


def parse_msgid_list(value: str) -> tuple[str, ...]:
    """All Message-IDs in a References header, in order, without repeats."""
    ids = ["".join(m.group(1).split()) for m in _MSGID.finditer(value)]
    if not ids:
        ids = [t.strip(",;\"'") for t in value.split() if "@" in t]
    return tuple(dict.fromkeys(i for i in ids if i))


def parse_date(value: str | None) -> datetime | None:
    """An aware datetime, or None for missing or hopeless dates.

    RFC 5322 dates through ``parsedate_tz`` (which tolerates a lot); "-0000"
    and a missing zone are taken as UTC; ISO 8601 as a last try. Dates out
    of datetime's range (year 0, day 32, hour 59) are None, not an error.
    """
    if not value:
        return None
    value = value.strip()
    m = _RFC5322_DATE.match(value)
    if m:
        day, mon, year, hour, minute, second, zone = m.groups()
        month = _MONTHS.get(mon.lower())
        if month is not None:
            sign = -1 if zone[0] == "-" else 1
            offset = sign * (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60)
            try:
                return datetime(
                    int(year),
                    month,
                    int(day),
                    int(hour),
                    int(minute),
                    int(second or 0),
                    tzinfo=UTC if offset == 0 else timezone(timedelta(seconds=offset)),
                )
            except (ValueError, OverflowError):
                return None
    try:
        parts = parsedate_tz(value)
    except (ValueError, IndexError, TypeError, OverflowError):
        parts = None
    if parts is not None:
        year, month, day, hour, minute, second = parts[:6]
        offset = parts[9] or 0
        try:
            tz = UTC if offset == 0 else timezone(timedelta(seconds=offset))
            return datetime(year, month, day, hour, minute, second, tzinfo=tz)
        except (ValueError, OverflowError):
            return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_headers(raw: bytes) -> MessageHeaders:
    """Parse only the header block of a raw message. Never raises.

    Header text is decoded with :func:`postroom.mail.mime.charsets.decode_header_bytes`
    (UTF-8, then the charset the message's Content-Type names, then
    windows-1252, then latin-1) and then RFC 2047 encoded words.
    """
    if raw[:1] in (b"\r", b"\n"):
        raw = raw.lstrip(b"\r\n")  # stray blank lines before the headers
    block, _ = split_header_block(raw)
    return headers_from_block(block)


def headers_from_block(block: bytes) -> MessageHeaders:
    """:func:`parse_headers` for an already separated header block."""
    found: dict[bytes, bytes] = {}
    for name, value in scan_headers(block, _WANTED_NAME, _WANTED_FIRST)[0]:
        if name in _SINGLE_HEADERS:
            found.setdefault(name, value)
        elif name in _MULTI_HEADERS:
            found[name] = found[name] + b", " + value if name in found else value

    defects: list[str] = []
    ctype_raw = found.get(b"content-type")
    content_type, charset = "text/plain", None
    if ctype_raw is not None:
        main, params = parse_parameters(ctype_raw.decode("ascii", "surrogateescape"))
        if _MIME_TYPE.fullmatch(main):
            content_type = main
        charset = params.get("charset") or None

    def text(name: bytes) -> str | None:
        raw_value = found.get(name)
        if raw_value is None:
            return None
        got = decode_header_bytes(raw_value, charset)
        if got.defect:
            defects.append(f"{name.decode()}: {got.defect}")
        return got.text

    def addresses(name: bytes) -> tuple[Address, ...]:
        value = text(name)
        return parse_address_list(value, charset, defects) if value else ()

    subject = text(b"subject") or ""
    if "=?" in subject:
        subject = decode_words(subject, charset, defects)
    references = text(b"references")
    return MessageHeaders(
        message_id=normalize_msgid(text(b"message-id")),
        in_reply_to=normalize_msgid(text(b"in-reply-to")),
        references=parse_msgid_list(references) if references else (),
        subject=_WS.sub(" ", subject).strip(),
        from_=addresses(b"from"),
        to=addresses(b"to"),
        cc=addresses(b"cc"),
        reply_to=addresses(b"reply-to"),
        sender=addresses(b"sender"),
        date=parse_date(text(b"date")),
        content_type=content_type,
        charset=charset,
        defects=tuple(defects),
    )
