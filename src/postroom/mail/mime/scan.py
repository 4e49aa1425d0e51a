"""Finding header blocks and header fields in raw bytes, fast and leniently.

Shared by the header fast path and by the MIME splitter. Everything works
on offsets into the original bytes, so a part of a 20 MB message is never
copied just to look at its headers.

Leniency rules (where RFC 5322 and real mail disagree):

* The header block ends at the first empty line, CRLF or bare LF.
* Lines before the first real header that are not headers (an mbox
  ``From `` line, a stray word) are skipped.
* A non-header line *after* a real header ends the block there if no
  header follows it (a message that forgot the empty line: the line is the
  body's first); with headers still to come it is junk (a continuation
  that lost its indentation) and skipped.
* A "block" without a single header line is body (a part that starts
  with its content, a file that is not a message).
* ``Name : value`` (obsolete whitespace before the colon) is a header.
"""

from __future__ import annotations

import re


def split_header_block(raw: bytes, start: int = 0, end: int | None = None) -> tuple[bytes, int]:
    """The header block of ``raw[start:end]`` and the absolute offset of its body.

    The search for the rarer separator is bounded by the commoner one, so a
    CRLF message is not scanned end to end looking for a bare-LF blank line.
    """
    if end is None:
        end = len(raw)
    nl = raw.find(b"\n", start, end)
    if nl < 0:
        return raw[start:end], end
    if nl == start or (nl == start + 1 and raw[start] == 0x0D):
        return b"", nl + 1
    if raw[nl - 1] == 0x0D:
        primary, secondary = b"\n\r\n", b"\n\n"
    else:
        primary, secondary = b"\n\n", b"\n\r\n"
    stop = raw.find(primary, start, end)
    other = raw.find(secondary, start, stop if stop >= 0 else end)
    if other >= 0 and (stop < 0 or other < stop):
        stop, primary = other, secondary
    if stop < 0:
        return raw[start:end], end
    return raw[start:stop], stop + len(primary)


# A field name (no whitespace, no colon), optional obsolete blanks, colon.
_HEADER_LINE = re.compile(rb"[^\s:]+[ \t]*:")


def _is_header_line(line: bytes) -> bool:
    return _HEADER_LINE.match(line) is not None


def _last_header_line(lines: list[bytes]) -> int:
    for index in range(len(lines) - 1, -1, -1):
        if _is_header_line(lines[index]):
            return index
    return -1


def scan_headers(
    block: bytes, wanted: re.Pattern[bytes], first_bytes: frozenset[bytes]
) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """The ``wanted`` headers of ``block`` in order, and where the body starts early.

    ``wanted`` matches a header name and its colon at the start of a line
    (group 1 = the name); ``first_bytes`` are the first bytes those names
    can start with. Returns ``(name.lower(), unfolded value)`` pairs and,
    when a non-header line follows a real header, that line's offset in
    ``block`` (the message forgot its empty line), 0 when the block holds
    no header at all, else None.

    A plain loop over ``split`` lines with a first-byte check: most of a
    real header block is Received, DKIM and ARC lines, and skipping those
    is several times cheaper than any regex over the whole block.
    """
    out: list[tuple[bytes, bytes]] = []
    lines = block.split(b"\n")
    count = len(lines)
    seen_header = False
    last_header: int | None = None  # computed on the first junk line only
    i = 0
    while i < count:
        line = lines[i]
        i += 1
        first = line[:1]
        if first in (b" ", b"\t"):
            continue  # continuation of a header we do not keep
        if first in first_bytes:
            m = wanted.match(line)
            if m is not None:
                seen_header = True
                parts = [line[m.end() :]]
                while i < count and lines[i][:1] in (b" ", b"\t"):
                    parts.append(lines[i])
                    i += 1
                value = b"".join(parts) if len(parts) > 1 else parts[0]
                if b"\r" in value:
                    value = value.replace(b"\r", b"")
                out.append((m.group(1).lower(), value.strip()))
                continue
        if _HEADER_LINE.match(line) is not None:
            seen_header = True
        elif seen_header and line.strip():
            if last_header is None:
                last_header = _last_header_line(lines)
            if last_header < i:
                return out, sum(len(x) + 1 for x in lines[: i - 1])
    if not seen_header and block.strip():
        return out, 0  # not a header in sight: it is all body
    return out, None
