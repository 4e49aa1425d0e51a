"""Errors of the MIME layer."""

from __future__ import annotations

from postroom.mail.errors import MailError


class MimeParseError(MailError):
    """The bytes hold no message at all (empty input).

    Everything short of that parses, with defects recorded instead of an
    error, so this is the one case where a caller must quarantine the raw
    bytes instead of storing a parsed message. Never temporary: the same
    bytes fail the same way.
    """

    temporary = False
