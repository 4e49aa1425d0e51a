"""Any top-level header of a raw message, decoded, for rules and loop checks.

:func:`postroom.mail.mime.parse_headers` keeps only the fields Postroom
stores; routing also needs Auto-Submitted, List-Id, Precedence, Delivered-To
and whatever header a user's rule names.
"""

from __future__ import annotations

import re

from postroom.mail.mime.charsets import decode_header_bytes
from postroom.mail.mime.scan import scan_headers, split_header_block
from postroom.mail.mime.words import decode_words

_ANY_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_ANY_FIRST = frozenset(bytes([c]) for c in range(0x21, 0x7F) if c != 0x3A)


def header_fields(raw: bytes) -> dict[str, list[str]]:
    """Every top-level header: lower-case name -> decoded values in order. Never raises."""
    if raw[:1] in (b"\r", b"\n"):
        raw = raw.lstrip(b"\r\n")
    block, _ = split_header_block(raw)
    fields: dict[str, list[str]] = {}
    for name, value in scan_headers(block, _ANY_NAME, _ANY_FIRST)[0]:
        text = decode_header_bytes(value).text
        if "=?" in text:
            text = decode_words(text)
        fields.setdefault(name.decode("ascii", "replace"), []).append(" ".join(text.split()))
    return fields
