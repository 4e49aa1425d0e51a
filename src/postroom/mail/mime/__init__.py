"""MIME parsing for incoming mail: headers fast, bodies fully, HTML safely.

Two entry points serve the two phases of ingest:

* :func:`parse_headers` reads only the header block. Sync calls it on every
  fetched message before the message counts as stored (threading keys,
  sender, subject, date), so it is built for throughput.
* :func:`parse_message` extracts bodies and attachments afterwards, in a
  worker, and records every repair in ``defects``.

Neither raises on broken mail; only :func:`parse_message` raises
:class:`MimeParseError`, for input with no message in it at all. Legacy and
broken charsets decode through the documented fallbacks of
:mod:`postroom.mail.mime.charsets`.

:func:`sanitize_html` makes the stored HTML safe to display and
:func:`html_to_text` derives text for HTML-only mail and search.

For outgoing mail, :func:`build_message` turns an :class:`OutgoingMessage`
into the bytes to send, and :func:`parse_dsn` reads bounces (with
:func:`verp_address`/:func:`parse_verp` for per-message return paths).

Nothing here imports Django.
"""

from postroom.mail.mime.addresses import Address
from postroom.mail.mime.build import (
    BuiltMessage,
    InvalidMessage,
    OutgoingAttachment,
    OutgoingMessage,
    build_message,
)
from postroom.mail.mime.dsn import (
    DeliveryReport,
    RecipientReport,
    parse_dsn,
    parse_verp,
    verp_address,
)
from postroom.mail.mime.errors import MimeParseError
from postroom.mail.mime.headers import MessageHeaders, normalize_subject, parse_headers
from postroom.mail.mime.message import Attachment, ParsedMessage, parse_message
from postroom.mail.mime.sanitize import SanitizedHtml, sanitize_html
from postroom.mail.mime.text import html_to_text

__all__ = [
    "Address",
    "Attachment",
    "BuiltMessage",
    "DeliveryReport",
    "InvalidMessage",
    "MessageHeaders",
    "MimeParseError",
    "OutgoingAttachment",
    "OutgoingMessage",
    "ParsedMessage",
    "RecipientReport",
    "SanitizedHtml",
    "build_message",
    "html_to_text",
    "normalize_subject",
    "parse_dsn",
    "parse_headers",
    "parse_message",
    "parse_verp",
    "sanitize_html",
    "verp_address",
]
