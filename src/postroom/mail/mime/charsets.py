"""Charset labels to Python codecs, and decoding that never fails.

Mail in the wild carries charset labels Python does not know
(``unknown-8bit``, ``windows-874``, ``iso-8859-8-i``), labels that lie
(``gb2312`` text full of GBK characters, ``ks_c_5601-1987`` meaning
Microsoft's cp949, ``us-ascii`` with 8-bit bytes) and labels wrapped in
quotes or followed by garbage. Refusing such a message would lose mail, so
every decode here returns text, and says in a *defect* string when it had to
guess or replace characters, so the message record shows it.

Fallback order for a body part (:func:`decode_body`):

1. the declared label, cleaned and mapped through :data:`_ALIASES` (which
   maps legacy labels to their modern supersets: GB2312/GBK → gb18030,
   EUC-KR/ks_c_5601-1987 → cp949, Shift_JIS → cp932, ISO-8859-1 →
   windows-1252, ISO-2022-JP → its JIS variants), each codec strictly;
2. UTF-8, strictly (the usual truth behind a wrong or missing label;
   tried *first* under Latin-1/windows-1252/ASCII labels when the bytes
   contain UTF-8 multibyte sequences);
3. the *hint*: another charset declared elsewhere in the same message;
4. the CJK siblings of the declared family (an ISO-2022-JP label on
   Shift_JIS bytes is common);
5. the declared codec with ``errors="replace"`` if the label was known,
   otherwise windows-1252 strictly (the commonest unlabelled 8-bit text);
6. UTF-8 with ``errors="replace"``.

Header bytes (:func:`decode_header_bytes`, for RFC 6532 UTF-8 and for
illegal raw 8-bit headers) go UTF-8 → hint → windows-1252 → latin-1, so a
header always decodes without replacement characters (latin-1 maps every
byte) even when the guess is wrong.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass

# Labels that say "we do not know": they go straight to the fallbacks.
_UNKNOWN = frozenset(
    {
        "",
        "unknown",
        "unknown-8bit",
        "x-unknown",
        "x-user-defined",
        "8bit",
        "7bit",
        "binary",
        "default",
        "charset",
        "none",
        "null",
        "auto",
        "text",
        "plain",
    }
)

_CP50220 = "postroom-cp50220"  # see _decode_cp50220
_ISO2022JP = (
    "iso2022_jp",
    _CP50220,
    "iso2022_jp_ext",
    "iso2022_jp_2",
    "iso2022_jp_2004",
    "iso2022_jp_3",
)
_GB = ("gb18030",)
_KR = ("cp949",)
_SJIS = ("cp932", "shift_jis_2004")
_EUCJP = ("euc_jp", "euc_jis_2004")
_BIG5 = ("big5", "cp950", "big5hkscs")
_LATIN1 = ("cp1252", "latin-1")
_THAI = ("cp874",)

# Label → codecs to try strictly, in order. Only what Python's own alias
# table gets wrong or does not know; everything else goes to codecs.lookup.
_ALIASES: dict[str, tuple[str, ...]] = {
    # Japanese. "ISO-2022-JP" in practice includes half-width katakana (ext),
    # JIS X 0212 (-2) and the NEC row-13 symbols (2004/-3 contain them).
    **dict.fromkeys(
        (
            "iso-2022-jp",
            "iso-2022-jp-1",
            "iso-2022-jp-2",
            "iso-2022-jp-3",
            "iso-2022-jp-ext",
            "iso-2022-jp-2004",
            "iso-2022-jp-ms",
            "iso2022jp",
            "csiso2022jp",
            "jis",
            "jis7",
            "cp50220",
            "cp50221",
            "cp50222",
        ),
        _ISO2022JP,
    ),
    **dict.fromkeys(
        (
            "shift_jis",
            "shift-jis",
            "sjis",
            "s-jis",
            "ms_kanji",
            "csshiftjis",
            "windows-31j",
            "cp932",
            "ms932",
            "mskanji",
        ),
        _SJIS,
    ),
    **dict.fromkeys(("euc-jp", "eucjp", "euc_jp", "cseucpkdfmtjapanese", "ujis"), _EUCJP),
    # Chinese: GB2312 labels routinely carry GBK or GB18030 characters.
    **dict.fromkeys(
        (
            "gb2312",
            "gb_2312",
            "gb_2312-80",
            "gbk",
            "cp936",
            "ms936",
            "windows-936",
            "euc-cn",
            "euccn",
            "csgb2312",
            "chinese",
            "iso-ir-58",
            "gb18030",
            "gb-18030",
        ),
        _GB,
    ),
    **dict.fromkeys(("big5", "big-5", "cn-big5", "csbig5", "cp950", "big5-hkscs"), _BIG5),
    # Korean: Outlook's ks_c_5601-1987 is Unified Hangul Code (cp949), a
    # superset of EUC-KR; Python maps the label to plain euc_kr.
    **dict.fromkeys(
        (
            "ks_c_5601-1987",
            "ks_c_5601",
            "ks_c_5601-1989",
            "ksc5601",
            "ksc_5601",
            "ks-c-5601",
            "csksc56011987",
            "iso-ir-149",
            "korean",
            "euc-kr",
            "euckr",
            "cseuckr",
            "cp949",
            "uhc",
        ),
        _KR,
    ),
    # Thai: windows-874 is unknown to Python under that name; cp874 is a
    # superset of TIS-620 and ISO-8859-11.
    **dict.fromkeys(("windows-874", "tis-620", "tis620", "iso-8859-11", "iso8859-11"), _THAI),
    # Hebrew/Arabic "-i"/"-e" only state the text direction; the bytes map
    # exactly as in the base charset.
    "iso-8859-8-i": ("iso8859_8",),
    "iso-8859-8-e": ("iso8859_8",),
    "iso_8859-8-i": ("iso8859_8",),
    "iso-8859-6-i": ("iso8859_6",),
    "iso-8859-6-e": ("iso8859_6",),
    # Latin-1 as browsers read it: the 0x80-0x9F range is windows-1252
    # punctuation far more often than C1 controls.
    **dict.fromkeys(
        ("iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "cp819", "ibm819"),
        _LATIN1,
    ),
    "iso-8859-9": ("cp1254", "iso8859_9"),
    "latin5": ("cp1254", "iso8859_9"),
    "utf8": ("utf-8",),
    "utf-8": ("utf-8",),
    "x-utf8": ("utf-8",),
    "unicode-1-1-utf-8": ("utf-8",),
    "us-ascii": ("ascii",),
    "ascii": ("ascii",),
    "macintosh": ("mac_roman",),
    "mac": ("mac_roman",),
}

# The same tables keyed by the name codecs.lookup() returns, so that labels
# Python already knows (``ks_c_5601-1987`` → euc_kr) still get the superset.
_BY_CODEC: dict[str, tuple[str, ...]] = {
    "euc_kr": _KR,
    "cp949": _KR,
    "johab": ("johab",),
    "gb2312": _GB,
    "gbk": _GB,
    "gb18030": _GB,
    "shift_jis": _SJIS,
    "cp932": _SJIS,
    "euc_jp": _EUCJP,
    "big5": _BIG5,
    "cp950": _BIG5,
    "iso2022_jp": _ISO2022JP,
    "iso2022_jp_1": _ISO2022JP,
    "iso2022_jp_2": _ISO2022JP,
    "iso2022_jp_3": _ISO2022JP,
    "iso2022_jp_ext": _ISO2022JP,
    "iso2022_jp_2004": _ISO2022JP,
    "iso8859-1": _LATIN1,
    "tis-620": _THAI,
    "iso8859_11": _THAI,
    "iso8859-9": ("cp1254", "iso8859_9"),
}

# Labels under which UTF-8 content is common enough to check for first.
_SINGLE_BYTE_LATIN = frozenset({_LATIN1, ("cp1252",), ("ascii",)})

# Families for step 4 of the fallback order.
_SIBLINGS: dict[tuple[str, ...], tuple[str, ...]] = {
    _ISO2022JP: _SJIS + _EUCJP,
    _SJIS: _EUCJP,
    _EUCJP: _SJIS,
    _GB: _BIG5,
    _BIG5: _GB,
}

# Python codecs that are not character sets a sender could mean.
_NOT_CHARSETS = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "charmap", "mbcs"}
)

# Codecs whose encoded form is 7-bit but still needs decoding, so the
# "pure ASCII is ASCII" shortcut must not apply.
_STATEFUL_PREFIXES = ("iso2022", "utf-7", "utf_7", "hz", "utf-16", "utf_16", "utf-32", "utf_32")

_SURROGATE = re.compile("[\ud800-\udfff]")
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")
_LABEL_JUNK = re.compile(r"[^a-z0-9_.:+-].*", re.S)
_WINDOWS = re.compile(r"(?:x-)?(?:windows|win|cp|ms|ansi)[-_ ]?(\d{3,5})")
_ISO8859 = re.compile(r"(?:iso)?[-_ ]?8859[-_ ]?(\d{1,2})(?::\d+)?(?:-[ie])?")


@dataclass(frozen=True, slots=True)
class Decoded:
    """Text decoded from bytes, the codec that did it, and what went wrong."""

    text: str
    codec: str
    defect: str | None = None

    def __post_init__(self) -> None:
        # NUL is legal in decoded text but not in PostgreSQL text columns
        # (nor in most UIs); it never carries meaning in mail.
        if self.codec == "utf-7" and _SURROGATE.search(self.text):
            # UTF-7 can encode half a surrogate pair; such text cannot be
            # stored or sent anywhere as UTF-8.
            object.__setattr__(self, "text", _SURROGATE.sub("\ufffd", self.text))
        if "\x00" in self.text:
            object.__setattr__(self, "text", self.text.replace("\x00", "\ufffd"))
            note = "NUL characters replaced with U+FFFD"
            object.__setattr__(self, "defect", f"{self.defect}; {note}" if self.defect else note)


def clean_label(label: str | None) -> str:
    """The canonical, lower-case form of a charset label as found in mail.

    Strips quotes, whitespace, a repeated ``charset=``, an RFC 2231
    ``*language`` suffix and anything after the first character that cannot
    belong to a charset name (``utf-8; format=flowed`` → ``utf-8``).
    """
    if not label:
        return ""
    s = label.strip().strip("\"'").strip().lower()
    if s.startswith("charset="):
        s = s[8:].strip("\"' ")
    s = s.split("*", 1)[0]
    return _LABEL_JUNK.sub("", s)


@functools.lru_cache(maxsize=512)
def resolve(label: str | None) -> tuple[str, ...] | None:
    """Codecs to try, in order, for a charset label; None if it means "unknown".

    Cached: a mailbox uses a handful of labels millions of times.
    """
    name = clean_label(label)
    if name in _UNKNOWN:
        return None
    for candidate in (name, name[2:] if name.startswith("x-") else None):
        if not candidate:
            continue
        if candidate in _ALIASES:
            return _ALIASES[candidate]
        m = _WINDOWS.fullmatch(candidate)
        if m:
            candidate = "cp" + m.group(1)
        else:
            m = _ISO8859.fullmatch(candidate)
            if m:
                candidate = "iso-8859-" + m.group(1)
                if candidate in _ALIASES:
                    return _ALIASES[candidate]
        codec = _lookup(candidate)
        if codec is not None:
            return _BY_CODEC.get(codec, (codec,))
    return None


def _lookup(name: str) -> str | None:
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # Python registers base64, rot13, zlib... as codecs too; a mail label
    # naming one of those (or a codec that interprets escapes) is garbage.
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


_JIS_ESCAPE = re.compile(rb"\x1b(\$@|\$B|\(B|\(J|\(I|\$\(D|\$\(O|\$\(Q|\$\(P)")


def _decode_cp50220(data: bytes) -> str:
    """ISO-2022-JP as Windows writes it (cp50220/cp50221).

    Outlook's ISO-2022-JP puts the NEC and IBM extension rows (①, №, ㈱)
    in the JIS X 0208 set, which Python's strict iso2022_jp codecs reject.
    Converting each JIS pair to Shift_JIS and decoding with cp932 reads
    them the way the sender's machine wrote them.
    """
    out = bytearray()
    mode = b"(B"
    pos = 0
    for m in _JIS_ESCAPE.finditer(data):
        out += _jis_chunk(data[pos : m.start()], mode)
        mode = m.group(1)
        pos = m.end()
    out += _jis_chunk(data[pos:], mode)
    return out.decode("cp932")


def _jis_chunk(chunk: bytes, mode: bytes) -> bytes:
    if mode in (b"(B", b"(J"):
        if not chunk.isascii():
            raise UnicodeDecodeError("cp50220", chunk, 0, len(chunk), "8-bit byte in ISO-2022-JP")
        return chunk
    if mode == b"(I":  # half-width katakana: JIS 0x21-0x5F = Shift_JIS 0xA1-0xDF
        return bytes(b | 0x80 for b in chunk)
    if mode not in (b"$@", b"$B"):
        raise UnicodeDecodeError("cp50220", chunk, 0, len(chunk), "JIS set not in cp932")
    out = bytearray()
    i = 0
    while i < len(chunk):
        c1 = chunk[i]
        if c1 in (0x0A, 0x0D):  # a line break left in two-byte mode
            out.append(c1)
            i += 1
            continue
        c2 = chunk[i + 1] if i + 1 < len(chunk) else 0
        if not (0x21 <= c1 <= 0x7E and 0x21 <= c2 <= 0x7E):
            raise UnicodeDecodeError("cp50220", chunk, i, i + 2, "not a JIS X 0208 pair")
        s1 = ((c1 - 0x21) >> 1) + 0x81
        if s1 > 0x9F:
            s1 += 0x40
        s2 = c2 + 0x1F + (c2 >= 0x60) if c1 & 1 else c2 + 0x7E
        out += bytes((s1, s2))
        i += 2
    return bytes(out)


def _decode(data: bytes, codec: str, errors: str = "strict") -> str:
    if codec == _CP50220:
        try:
            return _decode_cp50220(data)
        except UnicodeDecodeError:
            if errors == "strict":
                raise
            return data.decode("iso2022_jp", errors)
    return data.decode(codec, errors)


def _try(data: bytes, codecs_: tuple[str, ...]) -> tuple[str, str] | None:
    for codec in codecs_:
        try:
            return _decode(data, codec), codec
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _ascii_is_enough(data: bytes, chain: tuple[str, ...] | None) -> bool:
    if not data.isascii():
        return False
    if chain is None:
        # Unlabelled 7-bit data may still be ISO-2022-JP (old Japanese mail
        # often omits the label); its escape sequences give it away.
        return b"\x1b$" not in data and b"\x1b(" not in data
    return not chain[0].startswith(_STATEFUL_PREFIXES)


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def decode_body(data: bytes, declared: str | None, *, hint: str | None = None) -> Decoded:
    """Decode body bytes following the module's documented fallback order.

    Never raises. ``defect`` is set when anything beyond the declared
    charset (or its superset) was needed.
    """
    chain = resolve(declared)
    if _ascii_is_enough(data, chain):
        return Decoded(data.decode("ascii"), "ascii")
    if chain is None and data.isascii():
        chain = _ISO2022JP
    what = f"charset {clean_label(declared)!r}" if declared else "no charset"
    if chain in _SINGLE_BYTE_LATIN and _UTF8_MULTIBYTE.search(data):
        # UTF-8 sent under a Latin label (a webmail or list gateway that
        # re-encoded without relabelling). Legacy Latin text almost never
        # happens to be valid UTF-8 with multibyte sequences in it.
        got = _try(data, ("utf-8",))
        if got is not None:
            return Decoded(
                _strip_bom(got[0]), "utf-8", f"{what}: content is UTF-8, decoded as utf-8"
            )
    if chain is not None:
        got = _try(data, chain)
        if got is not None:
            return Decoded(_strip_bom(got[0]), got[1])
    if chain is None or "utf-8" not in chain:
        got = _try(data, ("utf-8",))
        if got is not None:
            return Decoded(_strip_bom(got[0]), "utf-8", f"{what}: decoded as utf-8")
    hint_chain = resolve(hint)
    if hint_chain is not None and hint_chain != chain:
        got = _try(data, hint_chain)
        if got is not None:
            return Decoded(
                got[0],
                got[1],
                f"{what}: decoded as {got[1]} (charset used elsewhere in the message)",
            )
    if chain is not None and chain[0] == "utf-8" and not _UTF8_MULTIBYTE.search(data):
        # Labelled UTF-8 without a single valid UTF-8 sequence: certainly a
        # legacy 8-bit charset, and windows-1252 is by far the likeliest.
        got = _try(data, ("cp1252",))
        if got is not None:
            return Decoded(got[0], "cp1252", f"{what}: not UTF-8 at all, decoded as cp1252")
    if chain is not None:
        siblings = _SIBLINGS.get(chain)
        if siblings:
            got = _try(data, siblings)
            if got is not None:
                return Decoded(got[0], got[1], f"{what}: decoded as {got[1]}")
        return Decoded(
            _strip_bom(_decode(data, chain[0], "replace")),
            chain[0],
            f"{what}: invalid bytes replaced with U+FFFD",
        )
    got = _try(data, ("cp1252",))
    if got is not None:
        return Decoded(got[0], "cp1252", f"{what}: 8-bit text decoded as cp1252")
    return Decoded(
        data.decode("utf-8", "replace"), "utf-8", f"{what}: invalid bytes replaced with U+FFFD"
    )


def decode_header_bytes(data: bytes, hint: str | None = None) -> Decoded:
    """Decode a raw header value: UTF-8 (RFC 6532), hint, cp1252, latin-1.

    Never raises and never produces U+FFFD: latin-1 maps every byte, and a
    readable wrong guess is better in a subject than a row of boxes.
    """
    if data.isascii():
        if b"\x1b$" in data:
            got = _try(data, _ISO2022JP)
            if got is not None:
                return Decoded(got[0], got[1], f"raw ISO-2022-JP in header decoded as {got[1]}")
        return Decoded(data.decode("ascii"), "ascii")
    try:
        return Decoded(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    hint_chain = resolve(hint)
    if hint_chain is not None:
        got = _try(data, hint_chain)
        if got is not None:
            return Decoded(got[0], got[1], f"8-bit header decoded as {got[1]} (message charset)")
    got = _try(data, ("cp1252",))
    if got is not None:
        return Decoded(got[0], "cp1252", "8-bit header decoded as cp1252")
    return Decoded(data.decode("latin-1"), "latin-1", "8-bit header decoded as latin-1")


def decode_word(data: bytes, declared: str, hint: str | None = None) -> Decoded:
    """Decode the payload of one RFC 2047 encoded word or RFC 2231 value.

    The declared charset first (with its supersets); if that fails, the
    header fallbacks, so a word never turns into replacement characters
    merely because its label was wrong.
    """
    chain = resolve(declared)
    if chain is not None:
        got = _try(data, chain)
        if got is not None:
            return Decoded(got[0], got[1])
    fallback = decode_header_bytes(data, hint)
    label = clean_label(declared)
    return Decoded(
        fallback.text,
        fallback.codec,
        f"encoded word in charset {label!r} decoded as {fallback.codec}",
    )
