"""The full extraction: bodies, attachments and defects of one message.

The MIME tree is split here, with ``bytes.find`` on the original bytes,
instead of by ``email.parser``: the stdlib's feedparser walks every line of
every part in Python (a 60 KB attachment is a thousand iterations) and its
``compat32`` accessors re-decode payloads behind our back. Working on
offsets into the raw message also means a forwarded ``message/rfc822``
part is stored byte for byte as it arrived.

Boundary lines follow the stdlib's (and RFC 2046's) rule: ``--boundary``
at the start of a line, optionally ``--``, optional spaces, end of line.
Everything else is decoded with this package's lenient helpers: part
headers, transfer encodings under their misspelt names (``7-bit``,
``quoted-printable;``, ``x-uuencode``) and text with the charset fallbacks
of :mod:`postroom.mail.mime.charsets`. Whatever had to be repaired or
guessed is written to ``defects``, so the stored record says how far to
trust the result.
"""

from __future__ import annotations

import binascii
import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from postroom.mail.mime.charsets import decode_body, decode_header_bytes, resolve
from postroom.mail.mime.errors import MimeParseError
from postroom.mail.mime.headers import MessageHeaders, headers_from_block
from postroom.mail.mime.scan import scan_headers, split_header_block
from postroom.mail.mime.text import html_to_text
from postroom.mail.mime.words import parse_parameters

# Deeper nesting than this is an attack or a loop, not a message.
_MAX_DEPTH = 64
_BODY_TYPES = ("text/plain", "text/html")
# Alternatives that repeat the body in a form we do not show.
_REDUNDANT_ALTERNATIVES = frozenset(
    {
        "text/plain",
        "text/html",
        "text/enriched",
        "text/richtext",
        "text/watch-html",
        "text/x-amp-html",
    }
)
_CID_REF = re.compile(r"""cid:([^"'\s)>]+)""", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")

Disposition = Literal["attachment", "inline"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """One non-body part of a message.

    ``size`` is the decoded size in bytes. When it exceeds the caller's
    limit, ``payload`` is None and ``dropped`` is True: the record keeps
    what was there without storing it. ``filename`` is decoded and reduced
    to a bare name (no directories, no control characters); None when the
    sender gave none. ``content_id`` has no angle brackets.
    """

    filename: str | None
    content_type: str
    size: int
    content_id: str | None
    disposition: Disposition
    payload: bytes | None
    dropped: bool = False

    @property
    def display_name(self) -> str:
        """``filename``, or a name made up from the content type."""
        if self.filename:
            return self.filename
        ext = mimetypes.guess_extension(self.content_type, strict=False) or ".bin"
        return f"attachment{ext}"


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything Postroom keeps from a message besides its raw bytes.

    ``text`` is the plain-text body (derived from ``html`` when the message
    has no text part; ``text_from_html`` says so). ``html`` is the HTML body
    exactly as sent, unsanitised, for storage; sanitise it with
    :func:`postroom.mail.mime.sanitize_html` when displaying.
    """

    headers: MessageHeaders
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]
    text_from_html: bool = False

    @property
    def inline_images(self) -> dict[str, Attachment]:
        """Attachments the HTML body shows through ``cid:`` URLs, by Content-ID."""
        if not self.html:
            return {}
        wanted = {unquote(m.group(1)).strip("<>").lower() for m in _CID_REF.finditer(self.html)}
        return {
            a.content_id: a
            for a in self.attachments
            if a.content_id and a.content_id.lower() in wanted
        }

    @property
    def dropped_attachments(self) -> tuple[Attachment, ...]:
        return tuple(a for a in self.attachments if a.dropped)


@dataclass(slots=True)
class _Body:
    texts: list[str]
    htmls: list[str]


@dataclass(frozen=True, slots=True)
class _PartHeaders:
    content_type: str
    params: dict[str, str]
    disposition: str
    disp_params: dict[str, str]
    cte: str
    content_id: str | None


# The part headers that shape extraction, found like the top-level ones.
_PART_HEADER = re.compile(
    rb"(content-type|content-disposition|content-transfer-encoding|content-id)[ \t]*:", re.I
)
_PART_FIRST = frozenset({b"c", b"C"})


class _Extractor:
    def __init__(self, raw: bytes, max_attachment_bytes: int | None, hint: str | None) -> None:
        self.raw = raw
        self.max_bytes = max_attachment_bytes
        self.hint = hint
        self.attachments: list[Attachment] = []
        self.defects: list[str] = []

    # -- headers ------------------------------------------------------------

    def part_headers(
        self, block: bytes, default_type: str, where: str
    ) -> tuple[_PartHeaders, int | None]:
        first: dict[bytes, str] = {}
        fields, cut = scan_headers(block, _PART_HEADER, _PART_FIRST)
        for name, value in fields:
            if name not in first:
                first[name] = value.decode("ascii", "surrogateescape")
        found: list[str] = []
        ctype, params = parse_parameters(first.get(b"content-type", ""), self.hint, found)
        if not _MIME_TYPE.fullmatch(ctype):
            if ctype:
                found.append(f"invalid content type {ctype!r}, using {default_type}")
            ctype = default_type
        disposition, disp_params = parse_parameters(
            first.get(b"content-disposition", ""), self.hint, found
        )
        cid = first.get(b"content-id")
        if cid is not None:
            cid_text = decode_header_bytes(cid.encode("ascii", "surrogateescape")).text
            cid = "".join(cid_text.split()).strip("<>") or None
        self.defects.extend(f"{where}: {d}" for d in found)
        info = _PartHeaders(
            content_type=ctype,
            params=params,
            disposition=disposition,
            disp_params=disp_params,
            cte=first.get(b"content-transfer-encoding", ""),
            content_id=cid,
        )
        return info, cut

    # -- tree ---------------------------------------------------------------

    def walk(
        self,
        start: int,
        end: int,
        path: str,
        depth: int,
        *,
        top: bool = False,
        in_alternative: bool = False,
        default_type: str = "text/plain",
    ) -> _Body:
        where = "message" if top else f"part {path}"
        block, body = split_header_block(self.raw, start, end)
        info, cut = self.part_headers(block, default_type, where)
        if cut is not None:
            what = "no header fields; all body" if cut == 0 else "no empty line after the headers"
            self.defects.append(f"{where}: {what}")
            body = start + cut
        charset = info.params.get("charset")
        if charset and self.hint is None and resolve(charset):
            self.hint = charset
        if depth > _MAX_DEPTH:
            self.defects.append(f"{where}: nested deeper than {_MAX_DEPTH} levels; rest ignored")
            return _Body([], [])
        maintype = info.content_type.split("/", 1)[0]
        if maintype == "multipart":
            parts = self.split_multipart(info, body, end, where)
            if parts is not None:
                return self.multipart(parts, info, path, depth)
            info = _PartHeaders("text/plain", info.params, "", {}, info.cte, info.content_id)
        elif maintype == "message" and info.content_type != "message/external-body":
            self.message_attachment(body, end, info, where)
            return _Body([], [])
        return self.leaf(body, end, info, where, top, in_alternative)

    def split_multipart(
        self, info: _PartHeaders, start: int, end: int, where: str
    ) -> list[tuple[int, int]] | None:
        """(start, end) of each part, or None when there is no usable boundary."""
        boundary = info.params.get("boundary", "").rstrip()
        if not boundary:
            self.defects.append(f"{where}: multipart without boundary; shown as text")
            return None
        delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
        raw = self.raw
        parts: list[tuple[int, int]] = []
        part_start: int | None = None
        closed = False
        pos = raw.find(delimiter, start, end)
        while pos >= 0:
            after = pos + len(delimiter)
            if pos == start or raw[pos - 1] == 0x0A:
                is_close = raw.startswith(b"--", after, end)
                eol = after + 2 if is_close else after
                while eol < end and raw[eol] in (0x20, 0x09):
                    eol += 1
                if eol >= end or raw[eol] in (0x0A, 0x0D):
                    if part_start is not None:
                        parts.append((part_start, _line_start(raw, pos, part_start)))
                    if is_close:
                        closed = True
                        break
                    part_start = _next_line(raw, eol, end)
            pos = raw.find(delimiter, after, end)
        if part_start is None:
            self.defects.append(f"{where}: start boundary not found; shown as text")
            return None
        if not closed:
            self.defects.append(f"{where}: closing boundary missing")
            parts.append((part_start, end))
        return parts

    def multipart(
        self, parts: list[tuple[int, int]], info: _PartHeaders, path: str, depth: int
    ) -> _Body:
        prefix = f"{path}." if path else ""
        alternative = info.content_type == "multipart/alternative"
        child_type = "message/rfc822" if info.content_type == "multipart/digest" else "text/plain"
        results = [
            self.walk(
                start,
                end,
                f"{prefix}{i}",
                depth + 1,
                in_alternative=alternative,
                default_type=child_type,
            )
            for i, (start, end) in enumerate(parts, start=1)
        ]
        if not alternative:
            return _Body(
                [t for r in results for t in r.texts], [h for r in results for h in r.htmls]
            )
        # The alternatives say the same thing: take the last (= preferred,
        # RFC 2046 §5.1.4) that has each kind of body.
        texts = next((r.texts for r in reversed(results) if r.texts), [])
        htmls = next((r.htmls for r in reversed(results) if r.htmls), [])
        return _Body(texts, htmls)

    def leaf(
        self, start: int, end: int, info: _PartHeaders, where: str, top: bool, in_alternative: bool
    ) -> _Body:
        filename = self.filename(info)
        is_attachment = info.disposition == "attachment"
        if (
            info.content_type in _REDUNDANT_ALTERNATIVES
            and info.content_type not in _BODY_TYPES
            and not is_attachment
            and filename is None
            and in_alternative
        ):
            return _Body([], [])
        payload = self.transfer_decode(self.raw[start:end], info.cte, where)
        if info.content_type in _BODY_TYPES and not is_attachment and (top or filename is None):
            text = self.text(payload, info, where)
            if info.content_type == "text/html":
                return _Body([], [text])
            return _Body([_unflow(text, info.params)], [])
        if info.content_type == "text/plain" and info.disposition == "inline":
            # A named text part the sender marked inline (Apple Mail,
            # Netscape): clients show it in the body, and it is also a file.
            self.add_attachment(payload, info, filename)
            return _Body([_unflow(self.text(payload, info, where), info.params)], [])
        self.add_attachment(payload, info, filename)
        return _Body([], [])

    def message_attachment(self, start: int, end: int, info: _PartHeaders, where: str) -> None:
        # message/rfc822 (a forwarded mail) and its relatives: kept whole,
        # byte for byte, as the file a user would download and open.
        data = self.transfer_decode(self.raw[start:end], info.cte, where)
        filename = self.filename(info)
        if filename is None and info.content_type == "message/rfc822":
            block, _ = split_header_block(data)
            subject = headers_from_block(block).subject
            filename = _safe_filename(f"{subject or 'message'}.eml")
        self.add_attachment(data, info, filename)

    # -- payloads -----------------------------------------------------------

    def transfer_decode(self, data: bytes, cte: str, where: str) -> bytes:
        kind = _cte_kind(cte)
        if kind == "identity":
            return data
        if kind == "base64":
            return self.base64(data, where)
        if kind == "quoted-printable":
            return binascii.a2b_qp(data)
        if kind == "uuencode":
            decoded = _uudecode(data)
            if decoded is None:
                self.defects.append(f"{where}: x-uuencode part without 'begin' line; kept as is")
                return data
            return decoded
        self.defects.append(f"{where}: unknown transfer encoding {cte.strip()!r}; kept as is")
        return data

    def base64(self, data: bytes, where: str) -> bytes:
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            pass
        if any(b" " in line.strip() for line in data[:4096].splitlines()):
            # Base64 lines never contain spaces: this is plain text under a
            # wrong label (seen from form mailers); decoding would garble it.
            self.defects.append(f"{where}: declared base64 but is plain text; kept as is")
            return data
        # Missing padding or a truncated final group: decode what is whole.
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]
        cleaned += b"=" * (-len(cleaned) % 4)
        self.defects.append(f"{where}: invalid base64 padding repaired")
        try:
            return binascii.a2b_base64(cleaned)
        except binascii.Error:
            self.defects.append(f"{where}: undecodable base64; kept as is")
            return data

    def text(self, payload: bytes, info: _PartHeaders, where: str) -> str:
        declared = info.params.get("charset")
        if not declared and info.content_type == "text/html":
            m = _META_CHARSET.search(payload, 0, 4096)
            if m:
                declared = m.group(1).decode("ascii")
        got = decode_body(payload, declared, hint=self.hint)
        if got.defect:
            self.defects.append(f"{where}: {got.defect}")
        text = got.text
        if info.content_type == "text/plain" and "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text

    def filename(self, info: _PartHeaders) -> str | None:
        name = info.disp_params.get("filename") or info.params.get("name")
        return _safe_filename(name) if name else None

    def add_attachment(self, data: bytes, info: _PartHeaders, filename: str | None) -> None:
        content_type = info.content_type
        if info.disposition == "inline":
            disposition: Disposition = "inline"
        elif info.disposition == "attachment":
            disposition = "attachment"
        else:
            disposition = (
                "inline" if info.content_id and content_type.startswith("image/") else "attachment"
            )
        size = len(data)
        dropped = self.max_bytes is not None and size > self.max_bytes
        self.attachments.append(
            Attachment(
                filename=filename,
                content_type=content_type,
                size=size,
                content_id=info.content_id,
                disposition=disposition,
                payload=None if dropped else data,
                dropped=dropped,
            )
        )


def _line_start(raw: bytes, pos: int, floor: int) -> int:
    """Where the line break before a boundary begins: it belongs to the boundary."""
    if pos > floor and raw[pos - 1] == 0x0A:
        pos -= 1
        if pos > floor and raw[pos - 1] == 0x0D:
            pos -= 1
    return pos


def _next_line(raw: bytes, pos: int, end: int) -> int:
    """The start of the line after the one ``pos`` is on (its end-of-line at ``pos``)."""
    nl = raw.find(b"\n", pos, end)
    return end if nl < 0 else nl + 1


def _cte_kind(cte: str) -> str:
    """A transfer encoding name as senders misspell it, normalised."""
    name = cte.split(";", 1)[0].strip().strip("\"'").lower()
    compact = re.sub(r"[\s_-]", "", name)
    if compact in (
        "",
        "7bit",
        "8bit",
        "8bits",
        "7bits",
        "binary",
        "plain",
        "none",
        "text",
        "identity",
    ):
        return "identity"
    if compact == "base64" or compact.startswith("base64"):
        return "base64"
    if compact in ("quotedprintable", "qp") or compact.startswith("quoted"):
        return "quoted-printable"
    if compact in ("xuuencode", "uuencode", "xuue", "uue", "xuu"):
        return "uuencode"
    if "/" in compact:  # "text/html": a content type in the wrong header
        return "identity"
    return "unknown"


def _uudecode(data: bytes) -> bytes | None:
    out = bytearray()
    lines = iter(data.splitlines())
    for line in lines:
        if line.startswith(b"begin "):
            break
    else:
        return None
    for line in lines:
        stripped = line.strip()
        if stripped == b"end":
            break
        if not stripped or stripped == b"`":
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # Some encoders pad lines wrongly; decode the length the line
            # header announces (the trick the old uu module used).
            nbytes = (((line[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(line[:nbytes])
            except binascii.Error:
                continue
    return bytes(out)


def _safe_filename(name: str) -> str | None:
    """A name that is safe to show and to offer as a download name.

    Keeps the last path component only (``..\\..\\evil.exe`` → ``evil.exe``),
    drops control characters and bidi overrides (which disguise
    ``exe.txt`` as ``txt.exe``), and caps the length, keeping the extension.
    """
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = _CONTROL.sub(" ", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) != "Cf")
    name = " ".join(name.split()).strip(". ")
    if not name:
        return None
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem[: 200 - len(ext) - 1]}.{ext}" if dot and len(ext) <= 16 else name[:200]
    return name


def _unflow(text: str, params: dict[str, str]) -> str:
    """Undo format=flowed (RFC 3676): join soft-broken lines per quote depth."""
    if params.get("format", "").lower() != "flowed":
        return text
    delsp = params.get("delsp", "").lower() == "yes"
    paragraphs: list[tuple[int, str]] = []
    depth_open: int | None = None
    buf: list[str] = []
    for line in text.split("\n"):
        stripped = line.lstrip(">")
        depth = len(line) - len(stripped)
        if stripped.startswith(" "):
            stripped = stripped[1:]  # space-stuffing
        soft = stripped.endswith(" ") and stripped != "-- "
        if soft and delsp:
            stripped = stripped[:-1]
        if depth_open is not None and depth != depth_open:
            paragraphs.append((depth_open, "".join(buf)))
            buf, depth_open = [], None
        buf.append(stripped)
        depth_open = depth
        if not soft:
            paragraphs.append((depth, "".join(buf)))
            buf, depth_open = [], None
    if depth_open is not None:
        paragraphs.append((depth_open, "".join(buf)))
    return "\n".join((">" * d + " " + t) if d else t for d, t in paragraphs)


def parse_message(raw: bytes, *, max_attachment_bytes: int | None = None) -> ParsedMessage:
    """Parse a whole message: headers, text and HTML bodies, attachments.

    Attachments larger than ``max_attachment_bytes`` (decoded size) are
    listed with ``payload=None, dropped=True``. Never raises on broken
    input; raises :class:`MimeParseError` only for bytes that contain no
    message at all (empty or whitespace only).
    """
    if not raw or not raw.strip():
        raise MimeParseError("empty message: nothing to parse")
    if raw[:1] in (b"\r", b"\n"):
        raw = raw.lstrip(b"\r\n")  # stray blank lines before the headers
    block, _ = split_header_block(raw)
    headers = headers_from_block(block)
    extractor = _Extractor(raw, max_attachment_bytes, headers.charset)
    body = extractor.walk(0, len(raw), "", 0, top=True)
    texts = [t for t in body.texts if t.strip()] or body.texts
    html = "\n".join(body.htmls) if body.htmls else None
    text = "\n".join(texts)
    text_from_html = False
    if not text.strip() and html:
        text = html_to_text(html)
        text_from_html = True
    return ParsedMessage(
        headers=headers,
        text=text,
        html=html,
        attachments=tuple(extractor.attachments),
        # Defects quote header text, which may hold surrogate-escaped bytes.
        defects=headers.defects
        + tuple(d.encode("utf-8", "backslashreplace").decode("utf-8") for d in extractor.defects),
        text_from_html=text_from_html,
    )
