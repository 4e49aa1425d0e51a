"""Building outgoing messages: checked input in, the exact bytes to send out.

:func:`build_message` validates everything a caller passes (addresses,
header values, charset, Message-ID, attachments) and raises
:class:`InvalidMessage` naming the field before anything is built, then
builds the MIME structure with the stdlib :class:`email.message.EmailMessage`
(``policy.SMTP``, or ``policy.SMTPUTF8`` when an address needs it).

Header fields are encoded with the stdlib's RFC 2047 encoder
(:class:`email.header.Header`) in the message's charset, so an ISO-2022-JP
or ISO-8859-x message gets encoded words in that charset too (the policy
API would always use UTF-8), and written with ``set_raw`` so the policy's
folder cannot turn long ASCII tokens (URLs in List-Unsubscribe) into
encoded words. Bodies are 7bit when they can be, otherwise
quoted-printable (mostly-ASCII text) or base64, never 8bit, so the message
passes relays without 8BITMIME.

Internationalised addresses (C4): a non-ASCII domain is written in its IDNA
form (:func:`ascii_domain`); a non-ASCII local part stays UTF-8, which makes
the message need SMTPUTF8 (``BuiltMessage.needs_smtputf8``).

Bcc recipients are in ``envelope_recipients`` and never in the headers.
"""

from __future__ import annotations

import codecs
import email.policy
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import Header
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime

__all__ = [
    "BuiltMessage",
    "InvalidMessage",
    "OutgoingAttachment",
    "OutgoingMessage",
    "ascii_domain",
    "build_message",
]


class InvalidMessage(ValueError):
    """The caller's input cannot become a message; ``field`` says where, ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes = field(repr=False)


AttachmentSpec = OutgoingAttachment | tuple[str, str, bytes]


@dataclass(frozen=True)
class OutgoingMessage:
    """What a caller wants sent. Address fields take ``addr`` or ``Name <addr>``.

    ``to``/``cc``/``bcc``/``reply_to`` take one address string or a sequence of
    them (one address per string). ``charset`` is the charset of the text
    parts and of the encoded words in the headers: ``utf-8`` by default,
    ``iso-2022-jp``, ``iso-8859-1``... on request. ``date`` must be
    timezone-aware (default: now, UTC). ``message_id`` with or without angle
    brackets; one is generated when absent. ``extra_headers`` may not set
    the fields above or MIME structure fields.
    """

    from_address: str
    subject: str = ""
    text: str = ""
    from_name: str = ""
    to: Sequence[str] | str = ()
    cc: Sequence[str] | str = ()
    bcc: Sequence[str] | str = ()
    sender: str | None = None
    reply_to: Sequence[str] | str = ()
    html: str | None = None
    attachments: Sequence[AttachmentSpec] = ()
    charset: str = "utf-8"
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None
    date: datetime | None = None
    # Threading (RFC 5322 §3.6.4): the parent's Message-ID and the chain to it.
    in_reply_to: str | None = None
    references: Sequence[str] = ()


@dataclass(frozen=True)
class BuiltMessage:
    """The bytes to send (CRLF line ends) and what the envelope needs.

    ``message_id`` is the Message-ID header value, with angle brackets.
    ``envelope_from`` is the Sender address if given, else the From address
    (IDNA domain). ``envelope_recipients`` are To, Cc and Bcc without
    duplicates, in that order.
    """

    raw: bytes = field(repr=False)
    message_id: str
    envelope_from: str
    envelope_recipients: tuple[str, ...]
    needs_smtputf8: bool


@dataclass(frozen=True, slots=True)
class _Mailbox:
    name: str
    local: str
    domain: str  # ASCII (IDNA) form, or a domain literal

    @property
    def addr_spec(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        return f"{self.local}@{self.domain.lower()}"


# RFC 5322 atext, plus any non-ASCII character (RFC 6531 UTF8-non-ascii).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+"
_DOT_ATOM = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_QUOTED_LOCAL = re.compile(r'"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"')
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOMAIN_LITERAL = re.compile(r"\[[!-Z^-~]*\]")
_LABEL_DOTS = re.compile(r"[.\u3002\uff0e\uff61]")
# IDNA2003 maps these away ("faß" -> "fass", another domain); IDNA2008 keeps them.
_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab is folding whitespace; the rest is not
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_MIME_TYPE = re.compile(r"([A-Za-z0-9!#$&^_.+-]+)/([A-Za-z0-9!#$&^_.+-]+)")
_MSGID = re.compile(r"[!-;=?-~]+@[!-;=?-Z^-~]+|[!-;=?-~]+@\[[!-Z^-~]*\]")
_NEEDS_QUOTES = re.compile(r'[][\\()<>@,:;".]')
_RESERVED = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
    }
)
_MAX_LINE = 998  # RFC 5322 §2.1.1


def ascii_domain(domain: str) -> str:
    """The domain as it can go on the wire: ASCII labels kept, others IDNA-encoded.

    Labels go through IDNA 2003 (nameprep and punycode, in the stdlib), except
    labels with the four IDNA 2008 "deviation" characters (ß, final sigma,
    ZWJ, ZWNJ), which IDNA 2003 maps to another domain; those are encoded
    non-transitionally (NFC, lower case, punycode) as browsers do today.
    Raises ValueError for empty or over-long labels and unencodable names.
    """
    if domain.isascii():
        return domain
    out: list[str] = []
    for label in _LABEL_DOTS.split(domain):
        if not label:
            raise ValueError(f"empty label in {domain!r}")
        if label.isascii():
            out.append(label)
            continue
        try:
            if _DEVIATIONS.intersection(label):
                folded = unicodedata.normalize("NFC", label.lower())
                encoded = "xn--" + folded.encode("punycode").decode("ascii")
            else:
                encoded = label.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"{label!r} cannot be IDNA-encoded") from exc
        if len(encoded) > 63:
            raise ValueError(f"label {label!r} is too long once encoded")
        out.append(encoded)
    return ".".join(out)


def _check_text(field_name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidMessage(field_name, f"must be text, not {type(value).__name__}")
    bad = _CONTROL.search(value)
    if bad:
        what = {"\r": "a carriage return", "\n": "a line feed"}.get(
            bad.group(), "a control character"
        )
        raise InvalidMessage(field_name, f"contains {what} ({bad.group()!r}); headers cannot")
    return value


def _parse_mailbox(field_name: str, value: str) -> _Mailbox:
    """One ``addr`` or ``Name <addr>`` (name optionally quoted); strict."""
    value = _check_text(field_name, value).strip()
    name = ""
    addr = value
    if value.endswith(">"):
        lt = value.rfind("<")
        if lt < 0:
            raise InvalidMessage(field_name, f"{value!r} is not an address")
        addr = value[lt + 1 : -1].strip()
        name = value[:lt].strip()
        if name.startswith('"'):
            if len(name) < 2 or not _QUOTED_LOCAL.fullmatch(name):
                raise InvalidMessage(field_name, f"unbalanced quotes in the name of {value!r}")
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
        elif "<" in name or ">" in name or '"' in name:
            raise InvalidMessage(field_name, f"{value!r} is not an address")
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise InvalidMessage(field_name, f"{addr!r} is not an address (no local part or domain)")
    if not (_DOT_ATOM.fullmatch(local) or _QUOTED_LOCAL.fullmatch(local)):
        raise InvalidMessage(field_name, f"{addr!r}: the part before @ is not valid")
    if len(local.encode()) > 64:
        raise InvalidMessage(field_name, f"{addr!r}: the part before @ is longer than 64 bytes")
    if domain.startswith("["):
        if not _DOMAIN_LITERAL.fullmatch(domain):
            raise InvalidMessage(field_name, f"{addr!r}: invalid address literal")
    else:
        try:
            domain = ascii_domain(domain)
        except ValueError as exc:
            raise InvalidMessage(field_name, f"{addr!r}: invalid domain ({exc})") from exc
        if not all(_LDH_LABEL.fullmatch(label) for label in domain.split(".")):
            raise InvalidMessage(field_name, f"{addr!r}: invalid domain")
    if len(local.encode()) + 1 + len(domain) > 254:
        raise InvalidMessage(field_name, f"{addr!r} is too long")
    return _Mailbox(" ".join(name.split()), local, domain)


def _mailboxes(field_name: str, values: Sequence[str] | str) -> list[_Mailbox]:
    if isinstance(values, str):
        values = (values,)
    return [_parse_mailbox(f"{field_name}[{i}]", v) for i, v in enumerate(values)]


def _encode_text(field_name: str, value: str, charset: str, header_name: str) -> str:
    """RFC 2047 encoding in ``charset`` (nothing to encode for ASCII), folded at spaces."""
    encoding = "us-ascii" if value.isascii() else charset
    try:
        return Header(value, encoding, header_name=header_name).encode(
            splitchars=" ", linesep="\r\n"
        )
    except UnicodeEncodeError as exc:
        char = value[exc.start : exc.end]
        raise InvalidMessage(field_name, f"{char!r} cannot be written in {charset}") from exc


def _format_mailbox(field_name: str, box: _Mailbox, charset: str) -> str:
    if not box.name:
        return box.addr_spec
    if not box.name.isascii():
        name = _encode_text(field_name, box.name, charset, "To")
    elif _NEEDS_QUOTES.search(box.name):
        name = '"' + box.name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        name = box.name
    # Folding whitespace may go between the name and <addr>: keep lines near 78.
    last = name.rsplit("\r\n", 1)[-1]
    fold = "\r\n " if len(last) + len(box.addr_spec) + 3 > 76 else " "
    return f"{name}{fold}<{box.addr_spec}>"


def _address_list(header_name: str, formatted: list[str]) -> str:
    """Join mailboxes, folding between them to keep lines near 78 characters."""
    out = ""
    line = len(header_name) + 2
    for i, item in enumerate(formatted):
        first = item.split("\r\n", 1)[0]
        if i and line + 2 + len(first) > 78:
            out += ",\r\n " + item
            line = 1 + len(item.rsplit("\r\n", 1)[-1])
        else:
            out += (", " if i else "") + item
            line = (line + 2 if i else line) + len(first)
            if "\r\n" in item:
                line = len(item.rsplit("\r\n", 1)[-1])
    return out


def _check_charset(value: str) -> str:
    charset = value.strip().lower()
    try:
        info = codecs.lookup(charset)
    except LookupError as exc:
        raise InvalidMessage("charset", f"unknown charset {value!r}") from exc
    if info.name.startswith(("utf-16", "utf-32")) or not getattr(info, "_is_text_encoding", True):
        raise InvalidMessage("charset", f"{value!r} cannot be used for mail")
    return charset


def _text_cte(field_name: str, text: str, charset: str) -> str:
    try:
        data = text.encode(charset)
    except UnicodeEncodeError as exc:
        char = text[exc.start : exc.end]
        raise InvalidMessage(field_name, f"{char!r} cannot be written in {charset}") from exc
    short = all(len(line) <= _MAX_LINE for line in data.splitlines())
    if data.isascii():  # ASCII, and every ISO-2022 text
        return "7bit" if short else "quoted-printable"
    high = len(data) - len(data.decode("latin-1").encode("ascii", "ignore"))
    return "quoted-printable" if high * 4 < len(data) else "base64"


def _message_id(value: str | None, from_box: _Mailbox) -> str:
    if value is None:
        domain = from_box.domain
        return f"<{secrets.token_urlsafe(18)}@{domain}>"
    return _ident("message_id", value)


def _ident(where: str, value: str) -> str:
    ident = _check_text(where, value).strip()
    if ident.startswith("<") and ident.endswith(">"):
        ident = ident[1:-1]
    if not _MSGID.fullmatch(ident):
        raise InvalidMessage(where, f"{value!r} is not a Message-ID (left@right, ASCII)")
    return f"<{ident}>"


# Enough to thread in every client we know; the oldest (the root) is kept first.
MAX_REFERENCES = 32


def _references(values: Sequence[str]) -> str:
    idents = [_ident(f"references[{i}]", v) for i, v in enumerate(values)]
    if len(idents) > MAX_REFERENCES:
        idents = [idents[0], *idents[-(MAX_REFERENCES - 1) :]]
    # One id per folded line keeps every line under the limit however many there are.
    return "\r\n ".join(idents)


def _attachment(index: int, spec: AttachmentSpec) -> OutgoingAttachment:
    where = f"attachments[{index}]"
    item = spec if isinstance(spec, OutgoingAttachment) else OutgoingAttachment(*spec)
    _check_text(f"{where}.filename", item.filename)
    _check_text(f"{where}.content_type", item.content_type)
    if not _MIME_TYPE.fullmatch(item.content_type.strip()):
        raise InvalidMessage(f"{where}.content_type", f"{item.content_type!r} is not type/subtype")
    if item.content_type.strip().lower().startswith("multipart/"):
        raise InvalidMessage(
            f"{where}.content_type", "a multipart type cannot be attached as bytes"
        )
    if not isinstance(item.data, bytes | bytearray | memoryview):
        raise InvalidMessage(f"{where}.data", "must be bytes")
    return item


def build_message(spec: OutgoingMessage) -> BuiltMessage:
    """Validate ``spec`` and build the message; raises :class:`InvalidMessage`."""
    charset = _check_charset(spec.charset)
    from_name = _check_text("from_name", spec.from_name).strip()
    from_box = _parse_mailbox("from_address", spec.from_address)
    if from_name:
        from_box = _Mailbox(" ".join(from_name.split()), from_box.local, from_box.domain)
    sender = _parse_mailbox("sender", spec.sender) if spec.sender else None
    reply_to = _mailboxes("reply_to", spec.reply_to)
    to = _mailboxes("to", spec.to)
    cc = _mailboxes("cc", spec.cc)
    bcc = _mailboxes("bcc", spec.bcc)
    if not (to or cc or bcc):
        raise InvalidMessage("to", "no recipients (to, cc and bcc are all empty)")
    subject = _check_text("subject", spec.subject)
    if not isinstance(spec.text, str):
        raise InvalidMessage("text", "must be text")
    if spec.html is not None and not isinstance(spec.html, str):
        raise InvalidMessage("html", "must be text")
    text_cte = _text_cte("text", spec.text, charset)
    html_cte = _text_cte("html", spec.html, charset) if spec.html is not None else None
    attachments = [_attachment(i, a) for i, a in enumerate(spec.attachments)]
    date = spec.date or datetime.now(UTC)
    if date.tzinfo is None or date.utcoffset() is None:
        raise InvalidMessage("date", "must be timezone-aware")
    message_id = _message_id(spec.message_id, from_box)

    headers: list[tuple[str, str]] = [
        ("Date", format_datetime(date)),
        ("From", _format_mailbox("from_name", from_box, charset)),
    ]
    if sender is not None:
        headers.append(("Sender", _format_mailbox("sender", sender, charset)))
    for name, field_name, boxes in (
        ("Reply-To", "reply_to", reply_to),
        ("To", "to", to),
        ("Cc", "cc", cc),
    ):
        if boxes:
            formatted = [
                _format_mailbox(f"{field_name}[{i}]", b, charset) for i, b in enumerate(boxes)
            ]
            headers.append((name, _address_list(name, formatted)))
    if not (to or cc):
        headers.append(("To", "undisclosed-recipients:;"))
    headers.append(("Subject", _encode_text("subject", subject, charset, "Subject")))
    headers.append(("Message-ID", message_id))
    if spec.in_reply_to:
        headers.append(("In-Reply-To", _ident("in_reply_to", spec.in_reply_to)))
    if spec.references:
        headers.append(("References", _references(spec.references)))
    for name, value in spec.extra_headers.items():
        headers.append(_extra_header(name, value, charset))

    everyone = [from_box, *([sender] if sender else []), *reply_to, *to, *cc, *bcc]
    needs_smtputf8 = any(not box.local.isascii() for box in everyone)
    policy = email.policy.SMTPUTF8 if needs_smtputf8 else email.policy.SMTP
    msg = EmailMessage(policy=policy)
    for name, value in headers:
        msg.set_raw(name, value)
    msg.set_content(spec.text, subtype="plain", charset=charset, cte=text_cte)
    if spec.html is not None:
        msg.add_alternative(spec.html, subtype="html", charset=charset, cte=html_cte)
    for item in attachments:
        maintype, subtype = item.content_type.strip().lower().split("/")
        data = bytes(item.data)
        cte = "base64"
        if maintype == "message":  # RFC 2046 §5.2: no base64 for message/*
            cte = "7bit" if data.isascii() else "8bit"
        msg.add_attachment(data, maintype, subtype, cte=cte, filename=item.filename)
    for part in msg.iter_parts() if msg.is_multipart() else ():
        _strip_mime_version(part)
    raw = msg.as_bytes(policy=policy.clone(refold_source="none"))

    recipients: dict[str, str] = {}
    for box in (*to, *cc, *bcc):
        recipients.setdefault(box.key, box.addr_spec)
    return BuiltMessage(
        raw=raw,
        message_id=message_id,
        envelope_from=(sender or from_box).addr_spec,
        envelope_recipients=tuple(recipients.values()),
        needs_smtputf8=needs_smtputf8,
    )


def _strip_mime_version(part: MIMEPart) -> None:
    # add_alternative/add_attachment make their parts as EmailMessage, which adds
    # MIME-Version to each; it belongs in the top-level header only (RFC 2045 §4).
    del part["MIME-Version"]
    for sub in part.iter_parts():
        _strip_mime_version(sub)


def _extra_header(name: object, value: object, charset: str) -> tuple[str, str]:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise InvalidMessage("extra_headers", f"{name!r} is not a header name")
    where = f"extra_headers[{name!r}]"
    if name.lower() in _RESERVED:
        raise InvalidMessage(where, "set by its own field of the message, not as an extra header")
    text = _check_text(where, value).strip()
    encoded = _encode_text(where, text, charset, name)
    if any(len(line) > _MAX_LINE for line in encoded.split("\r\n")):
        raise InvalidMessage(where, f"a line is longer than {_MAX_LINE} characters")
    return name, encoded
