"""Replies and forwards (D5): subject, threading headers, quoting, recipients.

Given the parent message's headers and text, :func:`draft` works out what a
reply, a reply-all or a forward starts with; the caller lets a person edit
it (or not, through the API) and queues it. Words a reader sees (the
attribution line, the labels of the forwarded block) come from the caller,
translated into the sender's language; the English defaults are for tests
and logs.

Rules:

* Subject: a reply is "Re: " plus the subject without its leading reply
  prefixes (Re:, RE:, AW:, SV:, Antw:, Re[2]: ... so "AW: Re: x" becomes
  "Re: x", never "Re: AW: Re: x"); a forward is "Fwd: " plus the subject
  without its leading forward prefixes (Fwd:, Fw:, WG:, TR: ...).
* Threading (RFC 5322 section 3.6.4): In-Reply-To is the parent's
  Message-ID; References is the parent's References (or, without them, its
  single In-Reply-To) followed by its Message-ID, at most
  :data:`MAX_REFERENCES` kept: the root and the newest ones. A forward
  carries them too, as Gmail's do.
* Recipients: a reply goes to the parent's Reply-To, else its From; when
  those are all our own addresses (answering mail we sent), to the parent's
  To. Reply-all adds the parent's To and Cc as Cc. Our own addresses, in
  any plus-variant (support+ISSUE-4@ is support@), and duplicates are left
  out. A forward has no recipients.

Nothing here imports Django.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from datetime import datetime
from enum import StrEnum

from postroom.mail.mime.addresses import Address
from postroom.mail.mime.headers import MessageHeaders, parse_headers

__all__ = [
    "MAX_REFERENCES",
    "ForwardLabels",
    "ReplyDraft",
    "ReplyMode",
    "ReplyParent",
    "address_key",
    "draft",
    "forward_block",
    "forward_html",
    "forward_subject",
    "quote_html",
    "quote_text",
    "recipients",
    "reply_subject",
    "threading",
]

MAX_REFERENCES = 32


class ReplyMode(StrEnum):
    REPLY = "reply"
    REPLY_ALL = "reply_all"
    FORWARD = "forward"


_COUNTER = r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*"
_REPLY_PREFIX = re.compile(
    r"\s*(?:re|aw|sv|vs|antw|odp|r|rif|res|ynt|απ|σχετ|отв|回复|回覆|答复|返信|답장)" + _COUNTER,
    re.I,
)
_FORWARD_PREFIX = re.compile(
    r"\s*(?:fwd?|wg|tr|enc|pd|rv|vl|ilt|пересл|转发|轉寄|転送|전달)" + _COUNTER, re.I
)


def _strip_prefixes(subject: str, prefix: re.Pattern[str]) -> str:
    s = " ".join(subject.split())
    while True:
        match = prefix.match(s)
        if match is None or match.end() == 0:
            return s
        s = s[match.end() :]


def reply_subject(subject: str) -> str:
    """ "Re: " once: existing reply prefixes (Re:, RE:, AW:, SV:, Re[2]: ...) are replaced."""
    rest = _strip_prefixes(subject, _REPLY_PREFIX)
    return f"Re: {rest}" if rest else "Re:"


def forward_subject(subject: str) -> str:
    """ "Fwd: " once: existing forward prefixes (Fwd:, Fw:, WG:, TR: ...) are replaced."""
    rest = _strip_prefixes(subject, _FORWARD_PREFIX)
    return f"Fwd: {rest}" if rest else "Fwd:"


def threading(
    message_id: str | None, references: Sequence[str], in_reply_to: str | None = None
) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) of an answer to the message with these headers.

    Ids are without angle brackets. ``in_reply_to`` is the parent's own
    In-Reply-To, used as the chain when it has no References.
    """
    chain = [r for r in references if r]
    if not chain and in_reply_to:
        chain = [in_reply_to]
    if message_id:
        chain.append(message_id)
    unique = list(dict.fromkeys(chain))
    if len(unique) > MAX_REFERENCES:
        unique = [unique[0], *unique[-(MAX_REFERENCES - 1) :]]
    return (message_id or None), tuple(unique)


def _lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    return text.split("\n") if text else []


def quote_text(text: str, attribution: str) -> str:
    """The attribution line, then every line of ``text`` quoted with "> " (">" before ">")."""
    quoted = [
        ">" if not line.strip() else (">" + line if line.startswith(">") else "> " + line)
        for line in _lines(text)
    ]
    return "\n".join([attribution, *quoted]) + "\n"


def quote_html(attribution: str, html: str | None, text: str) -> str:
    """An HTML quote: the attribution and a cited block of ``html`` (already sanitised)
    or, without it, of ``text`` (escaped)."""
    body = html or (
        '<div style="white-space: pre-wrap">' + html_lib.escape("\n".join(_lines(text))) + "</div>"
    )
    return (
        f"<p>{html_lib.escape(attribution)}</p>\n"
        f'<blockquote type="cite" style="margin:0 0 0 .8ex;border-left:1px solid #ccc;'
        f'padding-left:1ex">{body}</blockquote>\n'
    )


@dataclass(frozen=True)
class ForwardLabels:
    """The words of a forwarded block, in the reader's language."""

    heading: str = "---------- Forwarded message ----------"
    from_: str = "From"
    date: str = "Date"
    subject: str = "Subject"
    to: str = "To"
    cc: str = "Cc"


def _joined(addresses: Iterable[Address]) -> str:
    return ", ".join(str(a) for a in addresses if a.email or a.name)


@dataclass(frozen=True)
class ReplyParent:
    """What a reply or forward needs of the message it answers."""

    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    subject: str = ""
    from_: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    date: datetime | None = None
    text: str = ""
    html: str | None = None

    @classmethod
    def from_headers(
        cls, headers: MessageHeaders, text: str, html: str | None = None
    ) -> ReplyParent:
        return cls(
            message_id=headers.message_id,
            in_reply_to=headers.in_reply_to,
            references=headers.references,
            subject=headers.subject,
            from_=headers.from_,
            reply_to=headers.reply_to,
            to=headers.to,
            cc=headers.cc,
            date=headers.date,
            text=text,
            html=html,
        )

    @classmethod
    def from_raw(cls, raw: bytes, text: str, html: str | None = None) -> ReplyParent:
        """The parent from its raw bytes (headers) and its extracted text."""
        return cls.from_headers(parse_headers(raw), text, html)

    @property
    def sender_name(self) -> str:
        """Who wrote it, for the attribution line: the From name, else its address."""
        first = self.from_[0] if self.from_ else None
        return (first.name or first.email) if first else ""


def forward_block(parent: ReplyParent, date_text: str, labels: ForwardLabels) -> str:
    """The "Forwarded message" block: the original's headers, then its text."""
    lines = [labels.heading, f"{labels.from_}: {_joined(parent.from_)}"]
    if date_text:
        lines.append(f"{labels.date}: {date_text}")
    lines.append(f"{labels.subject}: {parent.subject}")
    if parent.to:
        lines.append(f"{labels.to}: {_joined(parent.to)}")
    if parent.cc:
        lines.append(f"{labels.cc}: {_joined(parent.cc)}")
    lines.append("")
    lines.extend(_lines(parent.text))
    return "\n".join(lines) + "\n"


def forward_html(parent: ReplyParent, date_text: str, labels: ForwardLabels) -> str:
    """The forwarded block for an HTML body: the headers, then the original
    HTML (already sanitised) or its text."""
    head = forward_block(dataclass_replace(parent, text=""), date_text, labels).rstrip("\n")
    body = parent.html or (
        '<div style="white-space: pre-wrap">'
        + html_lib.escape("\n".join(_lines(parent.text)))
        + "</div>"
    )
    return f'<div style="white-space: pre-wrap">{html_lib.escape(head)}</div>\n{body}\n'


def address_key(address: str) -> str:
    """An address compared as mail servers deliver it: lower case, without +tag."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return domain
    return f"{local.split('+', 1)[0]}@{domain}"


def recipients(
    parent: ReplyParent, mode: ReplyMode, own_addresses: Collection[str]
) -> tuple[list[str], list[str]]:
    """(To, Cc) of a reply, as ``Name <addr>`` strings; ([], []) for a forward."""
    if mode is ReplyMode.FORWARD:
        return [], []
    own = {address_key(a) for a in own_addresses}
    seen: set[str] = set()

    def keep(addresses: Iterable[Address]) -> list[str]:
        out = []
        for address in addresses:
            if "@" not in address.email:
                continue
            key = address_key(address.email)
            if key in own or key in seen:
                continue
            seen.add(key)
            # A decoded name may hold line breaks (encoded words); a header may not.
            out.append(str(Address(" ".join(address.name.split()), address.email)))
        return out

    targets = parent.reply_to or parent.from_
    to = keep(targets)
    answering_ourselves = not to and any(
        address_key(a.email) in own for a in targets if "@" in a.email
    )
    if answering_ourselves:
        # Mail we sent (a Sent copy): answer the people it went to, as mail clients do.
        to = keep(parent.to)
        cc = keep(parent.cc) if mode is ReplyMode.REPLY_ALL else []
        return to, cc
    cc = keep([*parent.to, *parent.cc]) if mode is ReplyMode.REPLY_ALL else []
    return to, cc


@dataclass(frozen=True)
class ReplyDraft:
    """What a reply or forward starts as: the compose form's initial values."""

    mode: ReplyMode
    subject: str
    to: list[str]
    cc: list[str]
    in_reply_to: str | None
    references: tuple[str, ...]
    # The quoted parent (reply) or the forwarded block (forward), to go under the new text.
    quoted: str
    quoted_html: str = field(default="", repr=False)


def draft(
    parent: ReplyParent,
    mode: ReplyMode,
    *,
    own_addresses: Collection[str],
    attribution: str,
    date_text: str = "",
    labels: ForwardLabels | None = None,
) -> ReplyDraft:
    """The start of a reply, reply-all or forward of ``parent``.

    ``attribution``: the line above a reply's quote ("On 3 May 2026, Dana
    wrote:"), already in the reader's language; ``date_text``: the parent's
    date as the forwarded block shows it; ``labels``: that block's words.
    """
    in_reply_to, references = threading(parent.message_id, parent.references, parent.in_reply_to)
    to, cc = recipients(parent, mode, own_addresses)
    if mode is ReplyMode.FORWARD:
        labels = labels or ForwardLabels()
        return ReplyDraft(
            mode=mode,
            subject=forward_subject(parent.subject),
            to=to,
            cc=cc,
            in_reply_to=in_reply_to,
            references=references,
            quoted=forward_block(parent, date_text, labels),
            quoted_html=forward_html(parent, date_text, labels),
        )
    return ReplyDraft(
        mode=mode,
        subject=reply_subject(parent.subject),
        to=to,
        cc=cc,
        in_reply_to=in_reply_to,
        references=references,
        quoted=quote_text(parent.text, attribution),
        quoted_html=quote_html(attribution, parent.html, parent.text),
    )
