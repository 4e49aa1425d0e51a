"""Delivery status notifications (bounces) and VERP return paths.

:func:`parse_dsn` reads an RFC 3464 report (``multipart/report;
report-type=delivery-status``, also its RFC 6533 ``message/global-*``
variants) into a :class:`DeliveryReport`: the original Message-ID (from the
returned message or headers) and Original-Envelope-Id, and per recipient the
action, status, diagnostic and whether it is a hard bounce. The commonest
non-standard bounces (qmail's QSBMF, Exim's plain-text bounce and delay
warning, anything else announcing ``X-Failed-Recipients``) are read on a
best-effort basis; anything else, and every report we cannot tie to a
recipient, gives None — a caller must never mark a recipient bounced on a
guess.

:func:`verp_address`/:func:`parse_verp` put a per-message token into the
return path (``bounces+TOKEN@example.com``) so a bounce can be matched by
the address it was sent to (:attr:`DeliveryReport.addressed_to`) even when
it quotes nothing of the original message.

Message-IDs are returned as header values, with angle brackets, like
``BuiltMessage.message_id``.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import quopri
import re
from dataclasses import dataclass
from email.message import Message

from postroom.mail.mime.build import ascii_domain
from postroom.mail.mime.headers import normalize_msgid, parse_headers

__all__ = [
    "DeliveryReport",
    "RecipientReport",
    "parse_dsn",
    "parse_verp",
    "verp_address",
]

ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """One recipient of a delivery report.

    ``status`` is the RFC 3463 code ("5.1.1"), derived from the diagnostic
    when the report lacks it, ``""`` if unknown. ``diagnostic`` is the
    Diagnostic-Code text without its type ("550 5.1.1 User unknown").
    ``hard`` is True when the action is ``failed`` with a 5.x.x status: the
    address should not be tried again.
    """

    final_recipient: str
    original_recipient: str | None
    action: str
    status: str
    diagnostic: str
    remote_mta: str | None
    hard: bool


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A parsed bounce or delay/success notification.

    ``addressed_to`` lists the addresses the report itself was delivered to
    (Delivered-To, X-Original-To, Envelope-To, To), where a VERP token is
    found. ``source`` is ``"rfc3464"``, ``"qmail"``, ``"exim"`` or ``"text"``.
    """

    recipients: tuple[RecipientReport, ...]
    original_message_id: str | None
    original_envelope_id: str | None
    reporting_mta: str | None
    addressed_to: tuple[str, ...]
    source: str


# Not inside an IP address ("host 10.5.1.1"); a sentence's full stop may follow.
_STATUS = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
_BASIC_CODE = re.compile(r"(?<![\d.])([245])\d\d(?=[ -])")
_UTF8_XTEXT = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
_ADDRESS = re.compile(r"[^\s<>\"(),;:]+@[^\s<>\"(),;:]+")
_MSGID_LINE = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_RETURNED_MARKERS = (
    b"below this line is a copy of the message",
    b"this is a copy of the message",
    b"original message follows",
    b"undelivered message follows",
    b"original message headers",
)
_BOUNCE_SENDERS = re.compile(r"mailer-daemon|postmaster|mail delivery", re.I)
_ADDRESS_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "to")


def parse_dsn(raw: bytes) -> DeliveryReport | None:
    """A :class:`DeliveryReport` for a bounce, or None when ``raw`` is not one we can read."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    addressed_to = _addressed_to(msg)
    status_part = _delivery_status_part(msg)
    if status_part is not None:
        report = _from_rfc3464(msg, status_part, addressed_to)
        if report is not None:
            return report
    return _from_text(msg, raw, addressed_to)


# ---------------------------------------------------------------- RFC 3464


def _delivery_status_part(msg: Message) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() in (
            "message/delivery-status",
            "message/global-delivery-status",
        ):
            return part
    return None


def _from_rfc3464(
    msg: Message, part: Message, addressed_to: tuple[str, ...]
) -> DeliveryReport | None:
    blocks = _status_blocks(part)
    per_message: dict[str, str] = {}
    recipients: list[RecipientReport] = []
    for block in blocks:
        if "final-recipient" in block or "original-recipient" in block:
            recipient = _recipient(block)
            if recipient is not None:
                recipients.append(recipient)
        elif not per_message and not recipients:
            per_message = block
    if not recipients:
        return None
    envid = per_message.get("original-envelope-id", "").strip() or None
    return DeliveryReport(
        recipients=tuple(recipients),
        original_message_id=_returned_message_id(msg, part),
        original_envelope_id=envid,
        reporting_mta=_typed_value(per_message.get("reporting-mta", "")) or None,
        addressed_to=addressed_to,
        source="rfc3464",
    )


def _status_blocks(part: Message) -> list[dict[str, str]]:
    payload = part.get_payload()
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if isinstance(payload, list):
        if cte not in ("base64", "quoted-printable"):
            # The stdlib parses message/delivery-status into one Message per block.
            return [
                {name.lower(): _unfold(str(value)) for name, value in block.items()}
                for block in payload
                if isinstance(block, Message)
            ]
        # Encoded (rare, but some gateways do it): the stdlib parsed the encoded text
        # as if it were the fields; put it back together and decode it.
        encoded = "".join(b.as_string() for b in payload if isinstance(b, Message))
        data = _decode_transfer(encoded.encode("ascii", "replace"), cte)
    else:
        decoded = part.get_payload(decode=True)
        if isinstance(decoded, bytes):
            data = decoded
        else:
            data = str(payload).encode("utf-8", "surrogateescape")
    return _parse_blocks(data.decode("utf-8", "replace"))


def _decode_transfer(data: bytes, cte: str) -> bytes:
    try:
        if cte == "base64":
            return binascii.a2b_base64(data)
        return quopri.decodestring(data)
    except binascii.Error:
        return data


def _parse_blocks(text: str) -> list[dict[str, str]]:
    """Header-like blocks separated by blank lines (RFC 3464 §2.1), lenient."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, ""
        elif line[0] in " \t" and last:
            current[last] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            last = name.strip().lower()
            current.setdefault(last, value.strip())
    if current:
        blocks.append(current)
    return blocks


def _recipient(block: dict[str, str]) -> RecipientReport | None:
    final = _address_value(block.get("final-recipient", "")) or _address_value(
        block.get("original-recipient", "")
    )
    if not final:
        return None
    original = _address_value(block.get("original-recipient", "")) or None
    diagnostic = _typed_value(block.get("diagnostic-code", ""))
    status = _status(block.get("status", "")) or _status(diagnostic)
    action = block.get("action", "").strip().lower().split(" ", 1)[0]
    if action not in ACTIONS:
        action = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[:1], "failed")
    return _report(final, original, action, status, diagnostic, block.get("remote-mta"))


def _report(
    final: str,
    original: str | None,
    action: str,
    status: str,
    diagnostic: str,
    remote_mta: str | None,
) -> RecipientReport:
    return RecipientReport(
        final_recipient=final,
        original_recipient=original,
        action=action,
        status=status,
        diagnostic=diagnostic,
        remote_mta=_typed_value(remote_mta) or None if remote_mta else None,
        hard=action == "failed" and status.startswith("5."),
    )


def _status(text: str) -> str:
    """An RFC 3463 code in ``text``, else one derived from a basic SMTP code."""
    match = _STATUS.search(text)
    if match:
        return ".".join(match.groups())
    basic = _BASIC_CODE.search(text)
    return f"{basic.group(1)}.0.0" if basic else ""


def _typed_value(value: str) -> str:
    """``"smtp; 550 ..."`` -> ``"550 ..."``; ``"dns; mx.example"`` -> ``"mx.example"``."""
    value = _unfold(value)
    kind, sep, rest = value.partition(";")
    if sep and kind.strip() and " " not in kind.strip():
        return rest.strip()
    return value.strip()


def _address_value(value: str) -> str:
    """``"rfc822; <a@b>"`` -> ``"a@b"``; RFC 6533 ``utf-8;`` values are unescaped."""
    kind, sep, rest = _unfold(value).partition(";")
    address = (rest if sep else kind).strip().strip("<>").strip()
    if sep and kind.strip().lower() == "utf-8":
        address = _UTF8_XTEXT.sub(lambda m: chr(int(m.group(1), 16)), address)
    return address


def _unfold(value: str) -> str:
    return " ".join(value.split())


def _returned_message_id(msg: Message, status_part: Message | None) -> str | None:
    """The Message-ID of the returned message or headers, never of the report itself."""
    for part in msg.walk():
        if part is msg or part is status_part:
            continue
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                ident = normalize_msgid(str(inner[0].get("message-id", "")))
                if ident:
                    return f"<{ident}>"
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                ident = parse_headers(data).message_id
                if ident:
                    return f"<{ident}>"
        elif ctype in ("text/rfc822-headers", "text/global-headers"):
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                ident = parse_headers(data).message_id
                if ident:
                    return f"<{ident}>"
    return None


# ---------------------------------------------------------------- non-standard


def _from_text(msg: Message, raw: bytes, addressed_to: tuple[str, ...]) -> DeliveryReport | None:
    text = _first_text(msg)
    if text is None:
        return None
    if "This is the qmail-send program" in text:
        recipients, source = _qmail(text), "qmail"
    elif "created automatically by mail delivery software" in text:
        recipients, source = _exim(text), "exim"
    else:
        recipients, source = _x_failed_recipients(msg, text), "text"
    if not recipients:
        return None
    return DeliveryReport(
        recipients=tuple(recipients),
        original_message_id=_returned_message_id(msg, None) or _quoted_message_id(raw, msg),
        original_envelope_id=None,
        reporting_mta=None,
        addressed_to=addressed_to,
        source=source,
    )


def _first_text(msg: Message) -> str | None:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return data.decode(part.get_content_charset() or "utf-8", "replace")
            return None
        if part.get_content_type() in ("message/rfc822", "message/global"):
            return None  # the returned message's text is not the bounce's
    return None


_QMAIL_RECIPIENT = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:\s*$", re.M)


def _qmail(text: str) -> list[RecipientReport]:
    """qmail's QSBMF: ``<addr>:`` then reason lines; only permanent failures are sent."""
    body = text.split("--- Below this line is a copy of the message.", 1)[0]
    matches = list(_QMAIL_RECIPIENT.finditer(body))
    out: list[RecipientReport] = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        reason = _unfold(body[match.end() : end])
        qmail_code = re.search(r"\(#([245]\.\d{1,3}\.\d{1,3})\)", reason)
        status = qmail_code.group(1) if qmail_code else _status(reason) or "5.0.0"
        out.append(_report(match.group(1), None, "failed", status, reason, None))
    return out


_EXIM_SECTION = re.compile(
    r"(?:address\(es\) failed:|(?:address|addresses) to which (?:the message|delivery) has not "
    r"yet been (?:made|delivered) (?:is|are):|has not yet been delivered is:|"
    r"address\(es\) (?:to which|not yet delivered)[^\n]*:)\s*\n",
    re.I,
)


def _exim(text: str) -> list[RecipientReport]:
    """Exim's text bounce and delay warning: addresses indented by two, reasons by four."""
    delayed = "has not yet been delivered" in text
    section = _EXIM_SECTION.search(text)
    if section is None:
        return []
    out: list[RecipientReport] = []
    address: str | None = None
    reason: list[str] = []

    def flush() -> None:
        if address is None:
            return
        why = _unfold(" ".join(reason))
        status = _status(why) or ("4.0.0" if delayed else "5.0.0")
        action = "delayed" if delayed else "failed"
        out.append(_report(address, None, action, status, why, None))

    for line in text[section.end() :].replace("\r\n", "\n").split("\n"):
        if line.startswith("------") or (line and not line.startswith(" ")):
            break
        if line.startswith("    ") and address is not None:
            reason.append(line.strip())
        elif line.startswith("  ") and line.strip():
            flush()
            found = _ADDRESS.search(line)
            address, reason = (found.group(0).strip("<>") if found else None), []
    flush()
    return out


def _x_failed_recipients(msg: Message, text: str) -> list[RecipientReport]:
    """Any other bounce that names its failed recipients in X-Failed-Recipients."""
    header = msg.get("x-failed-recipients")
    if not header or not _looks_like_bounce(msg):
        return []
    status = _status(text) or "5.0.0"
    if not status.startswith(("4.", "5.")):
        status = "5.0.0"
    diagnostic = ""
    line = re.search(r"^.*\b[45]\d\d[ -].*$", text, re.M)
    if line:
        diagnostic = _unfold(line.group(0))
    return [
        _report(address, None, "failed", status, diagnostic, None)
        for address in _ADDRESS.findall(_unfold(str(header)))
    ]


def _looks_like_bounce(msg: Message) -> bool:
    return msg.get("return-path", "").strip() in ("<>", "") and bool(
        _BOUNCE_SENDERS.search(str(msg.get("from", "")))
    )


def _quoted_message_id(raw: bytes, msg: Message) -> str | None:
    """A Message-ID header line in the returned copy pasted into a text bounce."""
    lower = raw.lower()
    for marker in _RETURNED_MARKERS:
        at = lower.find(marker)
        if at >= 0:
            match = _MSGID_LINE.search(raw, at)
            if match:
                ident = normalize_msgid(match.group(1).decode("utf-8", "replace"))
                own = normalize_msgid(str(msg.get("message-id", "")))
                if ident and ident != own:
                    return f"<{ident}>"
    return None


def _addressed_to(msg: Message) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for name in _ADDRESS_HEADERS:
        for value in msg.get_all(name, []):
            for address in _ADDRESS.findall(str(value)):
                found.setdefault(address.strip("<>"), None)
    return tuple(found)


# ---------------------------------------------------------------- VERP

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]*")
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def verp_address(bounce_local: str, domain: str, token: str, *, separator: str = "+") -> str:
    """``bounce_local`` + separator + ``token`` @ ``domain``, checked.

    The token may hold letters, digits and ``. _ = -``; use lower case (some
    MTAs fold local parts to lower case). The server must deliver
    ``bounce_local+anything`` to ``bounce_local`` (Postfix
    ``recipient_delimiter = +``, Exim ``local_part_suffix``).
    """
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"VERP token {token!r} may only hold letters, digits and . _ = -")
    if not _LOCAL.fullmatch(bounce_local) or separator not in "+-=":
        raise ValueError(f"invalid bounce address {bounce_local!r} or separator {separator!r}")
    local = f"{bounce_local}{separator}{token}"
    if len(local) > 64:
        raise ValueError(f"the VERP local part {local!r} is longer than 64 characters")
    return f"{local}@{ascii_domain(domain)}"


def parse_verp(
    address: str, bounce_local: str, *, separator: str = "+", domain: str | None = None
) -> str | None:
    """The token of a VERP address made by :func:`verp_address`, or None.

    ``bounce_local`` (and ``domain``, when given) compare case-insensitively;
    the token is returned as written.
    """
    address = address.strip().strip("<>").strip()
    local, at, addr_domain = address.rpartition("@")
    if not at:
        return None
    if domain is not None and addr_domain.lower() != ascii_domain(domain).lower():
        return None
    prefix = f"{bounce_local}{separator}"
    if not local.lower().startswith(prefix.lower()):
        return None
    token = local[len(prefix) :]
    return token if _TOKEN.fullmatch(token) else None
