"""RFC 2047 encoded words and RFC 2231 parameters, leniently.

The stdlib has both, but its decoders either raise or give up on the usual
breakage (unknown charsets in encoded words, missing base64 padding,
multibyte characters split across two words, encoded words inside quoted
strings, 8-bit bytes in parameters), and going through ``policy.default``
costs several times our header budget. These helpers are small, fast on
the common all-ASCII path, and never raise.
"""

from __future__ import annotations

import binascii
import re
from urllib.parse import unquote_to_bytes

from postroom.mail.mime.charsets import decode_header_bytes, decode_word

# charset (optionally with an RFC 2231 *language), B or Q, payload. The
# payload may contain spaces: some mailers do not encode them, and decoding
# those words anyway is what every mail client does.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _word_bytes(kind: str, payload: str) -> bytes | None:
    raw = payload.encode("utf-8", "surrogateescape")
    if kind not in "bB":
        return binascii.a2b_qp(raw, header=True)
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except binascii.Error:
        pass
    raw = _NOT_BASE64.sub(b"", raw)
    if len(raw) % 4 == 1:
        raw = raw[:-1]  # a lone trailing sextet carries no whole byte
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except binascii.Error:
        return None


def _flush(
    out: list[str], data: bytes, charset: str, hint: str | None, defects: list[str] | None
) -> None:
    got = decode_word(data, charset, hint)
    out.append(got.text)
    if got.defect and defects is not None:
        defects.append(got.defect)


def decode_words(value: str, hint: str | None = None, defects: list[str] | None = None) -> str:
    """Replace RFC 2047 encoded words in ``value`` by their text.

    Whitespace between adjacent encoded words is dropped (RFC 2047 §6.2)
    and adjacent words in the same charset are decoded together, because
    senders split UTF-8 and Shift_JIS characters across words. Words that
    cannot be decoded stay as they are.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = b""
    pending_charset = ""
    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        decoded = _word_bytes(m.group(2), m.group(3))
        if decoded is None:
            continue  # leave the broken word in the text, as written
        charset = m.group(1).split("*", 1)[0].lower()
        gap = value[pos : m.start()]
        adjacent = bool(pending_charset) and (not gap or gap.isspace())
        if adjacent and charset == pending_charset:
            pending += decoded
        else:
            if pending_charset:
                _flush(out, pending, pending_charset, hint, defects)
            if gap and not adjacent:
                out.append(gap)
            pending, pending_charset = decoded, charset
        pos = m.end()
    if pending_charset:
        _flush(out, pending, pending_charset, hint, defects)
    out.append(value[pos:])
    return "".join(out)


def unquote(value: str) -> str:
    """The content of a quoted string (backslash escapes resolved), or ``value``."""
    value = value.strip()
    if len(value) >= 2 and value[0] == '"':
        inner = value[1:-1] if value[-1] == '"' else value[1:]
        if "\\" in inner:
            inner = re.sub(r"\\(.)", r"\1", inner)
        return inner
    return value


# One parameter: name, then a quoted string (possibly unterminated) or a
# token running to the next semicolon.
_PARAM = re.compile(
    r"""\s*([^\s=;"]+)\s*(?:=\s*("(?:[^"\\]|\\.)*(?:"|$)|[^;]*))?[^;]*(?:;|$)""",
    re.S,
)
_SECTION = re.compile(r"^(.*?)\*(\d+)(\*?)$")


def parse_parameters(
    value: str, hint: str | None = None, defects: list[str] | None = None
) -> tuple[str, dict[str, str]]:
    """Split a Content-Type/Content-Disposition value into main value and parameters.

    Parameter names are lower-cased. RFC 2231 continuations (``name*0``,
    ``name*1*``) are joined and their ``charset'lang'%XX`` values decoded; an
    RFC 2231 value wins over a plain one of the same name. Encoded words in
    plain values are decoded too (Outlook and Gmail put them in quoted
    filenames). ``value`` may contain surrogate-escaped 8-bit bytes; they are
    decoded with the header fallbacks.
    """
    main, sep, rest = value.partition(";")
    main = main.strip().strip("\"'")
    params: dict[str, str] = {}
    if not sep:
        # "text/plain charset=utf-8" (missing semicolon) still names a charset.
        head, _, tail = main.partition(" ")
        if "=" in tail:
            main, rest, sep = head, tail, ";"
    main = main.lower()
    if not main.isascii():  # 8-bit garbage must not reach the caller as surrogates
        main = decode_header_bytes(_to_bytes(main)).text
    if not sep:
        return main, params
    sections: dict[str, list[tuple[int, bool, str]]] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            nxt = rest.find(";", pos)
            if nxt < 0:
                break
            pos = nxt + 1
            continue
        pos = m.end()
        name = m.group(1).lower()
        raw = m.group(2)
        if raw is None:
            continue
        raw = raw.strip()
        extended = name.endswith("*")
        sec = _SECTION.match(name)
        if sec:
            sections.setdefault(sec.group(1), []).append(
                (int(sec.group(2)), bool(sec.group(3)), unquote(raw))
            )
        elif extended:
            sections.setdefault(name[:-1], []).append((0, True, unquote(raw)))
        else:
            # First occurrence wins, as in the stdlib parser.
            params.setdefault(name, _plain_param(unquote(raw), hint, defects))
    for name, parts in sections.items():
        params[name] = _join_rfc2231(parts, hint, defects)
    for name, text in params.items():
        if "\x00" in text:
            params[name] = text.replace("\x00", "")
    return main, params


def _to_bytes(text: str) -> bytes:
    # Header text arrives as ASCII with the original 8-bit bytes
    # surrogate-escaped; anything else non-ASCII (callers that decoded
    # already) goes back as UTF-8, which the decoders try first.
    return text.encode("utf-8", "surrogateescape")


def _plain_param(value: str, hint: str | None, defects: list[str] | None) -> str:
    if not value.isascii():
        got = decode_header_bytes(_to_bytes(value), hint)
        value = got.text
        if got.defect and defects is not None:
            defects.append(got.defect + " (parameter)")
    return decode_words(value, hint, defects)


def _join_rfc2231(
    parts: list[tuple[int, bool, str]], hint: str | None, defects: list[str] | None
) -> str:
    parts.sort(key=lambda p: p[0])
    charset = ""
    data = bytearray()
    for i, (_, encoded, text) in enumerate(parts):
        if encoded:
            if i == 0 and text.count("'") >= 2:
                charset, _, text = text.split("'", 2)
            data += unquote_to_bytes(_to_bytes(text))
        else:
            data += _to_bytes(text)
    if charset:
        got = decode_word(bytes(data), charset, hint)
    else:
        got = decode_header_bytes(bytes(data), hint)
    if got.defect and defects is not None:
        defects.append(got.defect + " (RFC 2231 parameter)")
    return decode_words(got.text, hint, defects) if "=?" in got.text else got.text
