"""Address lists (From, To, Cc...) parsed without ever giving up.

``email.utils.getaddresses`` changed behaviour within 3.11 patch releases
(the "strict" parsing fix returns ``('', '')`` for whole headers it finds
malformed), and both versions drop what a human can still read. Mail from
form mailers and old MTAs has unquoted commas, missing brackets, bare names
and empty ``<>``; a sender list must still show *something*. This small
tokenizer keeps whatever is recognisable, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postroom.mail.mime.words import decode_words

_TOKEN = re.compile(
    r"""
      "(?:[^"\\]|\\.)*"?         # quoted string (possibly unterminated)
    | \((?:[^()\\]|\\.)*\)?      # comment (nesting is rare enough to ignore)
    | <[^<>]*>?                  # angle address
    | =\?[^?\s]+\?[bBqQ]\?[^?]*\?=  # an encoded word: its commas separate nothing
    | [,;:]                      # list separators and group syntax
    | (?:[^",;:()<>=]|=(?!\?))+   # anything else, up to the next encoded word
    | =                          # a lone "=?" that starts no encoded word
    | [>)]                       # strays
    """,
    re.X | re.S,
)
_NEEDS_TOKENIZER = re.compile(r'["():;\\]')
_BARE_ADDRESS = re.compile(r"""[^\s<>"(),;]+@[^\s<>"(),;]+""")


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: decoded display name and address.

    ``email`` keeps the local part as written and lower-cases the domain
    (RFC 5321: local parts may be case-sensitive, domains are not). It is
    ``""`` when the header held only a name (``"Undisclosed" <>``), and may
    lack a domain for local-only addresses from old systems.
    """

    name: str
    email: str

    def __str__(self) -> str:
        """The address as it would appear in a header, unencoded (for display and logs)."""
        if self.name and self.email:
            if any(c in self.name for c in _SPECIALS):
                quoted = self.name.replace("\\", "\\\\").replace('"', '\\"')
                return f'"{quoted}" <{self.email}>'
            return f"{self.name} <{self.email}>"
        return self.email or self.name


_SPECIALS = frozenset('(),.:;<>@[]\\"')


def normalize_email(addr: str) -> str:
    """Remove folding whitespace and lower-case the domain part."""
    addr = "".join(addr.split()).strip("'")
    local, at, domain = addr.rpartition("@")
    if not at:
        return addr
    return f"{local}@{domain.lower()}"


def parse_address_list(
    value: str, hint: str | None = None, defects: list[str] | None = None
) -> tuple[Address, ...]:
    """Parse an address-list header value (already unfolded, 8-bit decoded).

    Encoded words are decoded after splitting, so a comma inside an encoded
    display name cannot split an address. Group names are dropped; their
    members are kept.
    """
    if not _NEEDS_TOKENIZER.search(value) and ("=?" not in value or "," not in value):
        simple = _parse_simple_list(value, hint, defects)
        if simple is not None:
            return simple
    out: list[Address] = []
    entry: list[str] = []

    def push() -> None:
        if entry:
            addr = _entry_to_address(entry, hint, defects)
            if addr is not None:
                out.append(addr)
            entry.clear()

    for tok in _TOKEN.findall(value):
        if tok == ",":
            push()
        elif tok == ";":
            push()
        elif tok == ":":
            if any(t.startswith("<") for t in entry):
                entry.append(tok)
            else:
                entry.clear()  # "Group name:" — the name is not an address
        else:
            entry.append(tok)
    push()
    return tuple(out)


def _parse_simple_list(
    value: str, hint: str | None, defects: list[str] | None
) -> tuple[Address, ...] | None:
    # The shape of nearly every real header ("Name <a@b>, c@d"), parsed with
    # str methods; None sends anything unusual to the tokenizer.
    out: list[Address] = []
    for piece in value.split(","):
        piece = piece.strip()
        if not piece:
            continue
        lt = piece.find("<")
        if lt >= 0:
            gt = piece.find(">", lt)
            if gt < 0 or piece.find("<", lt + 1) >= 0 or piece[gt + 1 :].strip():
                return None
            name = piece[:lt].strip()
            if "=?" in name:
                name = decode_words(name, hint, defects)
            name = " ".join(name.split())
            addr = normalize_email(piece[lt + 1 : gt])
            if addr or name:
                out.append(Address(name=name, email=addr))
        elif " " in piece or "\t" in piece or "=?" in piece:
            return None
        else:
            out.append(Address(name="", email=normalize_email(piece)))
    return tuple(out)


def _entry_to_address(
    tokens: list[str], hint: str | None, defects: list[str] | None
) -> Address | None:
    angle = None
    name_parts: list[str] = []
    comments: list[str] = []
    for tok in tokens:
        if tok.startswith("<"):
            angle = tok  # the last one wins; earlier ones were junk
        elif tok.startswith("("):
            comments.append(tok[1:-1] if tok.endswith(")") else tok[1:])
        elif angle is None:
            name_parts.append(tok)
    if angle is not None:
        addr = angle[1:-1] if angle.endswith(">") else angle[1:]
        if addr.startswith("@") and ":" in addr:
            addr = addr.rsplit(":", 1)[1]  # obsolete source route
        name = " ".join(_unquote_name(p) for p in name_parts)
    else:
        raw = "".join(name_parts)
        m = _BARE_ADDRESS.search(raw)
        if m:
            addr = m.group(0)
            name = _unquote_name(raw[: m.start()] + raw[m.end() :])
        elif raw.strip() and len(raw.split()) == 1 and '"' not in raw:
            addr, name = raw, ""
        else:
            addr, name = "", _unquote_name(raw)
    name = name.strip()
    if not name and comments:
        name = " ".join(comments)
    if "=?" in name:
        name = decode_words(name, hint, defects)
    name = " ".join(name.split())
    addr = normalize_email(addr.replace('"', "") if addr.count('"') == 1 else addr)
    if not addr and not name:
        return None
    return Address(name=name, email=addr)


def _unquote_name(part: str) -> str:
    part = part.strip()
    if part.startswith('"'):
        inner = part[1:-1] if len(part) > 1 and part.endswith('"') else part[1:]
        return re.sub(r"\\(.)", r"\1", inner) if "\\" in inner else inner
    return part
