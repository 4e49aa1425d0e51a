"""Record tokens in our Message-IDs and plus-addresses (B8, B9).

Mail sent from a record gets a Message-ID such as
``<3f2a...c1.r42.k5dq2mzw7a@example.com>``: ``r42`` names the record and the
ten letters after it are an HMAC of that name under the site's secret key, so
a reply that kept only our id (Outlook drops References, Gmail rewrites the
Message-ID of its own Sent copy but keeps ours in References) finds the record,
and nobody can forge a link to a record they only guessed the number of.
Changing ``POSTROOM_SECRET_KEY`` invalidates old tokens: replies to older mail
then fall back to the Message-IDs we stored.
"""

from __future__ import annotations

import base64
import re
import uuid

from django.utils.crypto import constant_time_compare, salted_hmac

_SALT = "postroom.records.message-id"
_TOKEN = re.compile(r"\.r(\d{1,12})\.([a-z2-7]{10})@")
# support+ISSUE-42@example.com -> ISSUE-42
_PLUS = re.compile(r"^[^@+]+\+([A-Za-z][A-Za-z0-9]{0,11}-\d{1,12})@", re.ASCII)
_SUBJECT_REFERENCE = re.compile(r"\[([A-Za-z][A-Za-z0-9]{0,11}-\d{1,12})\]", re.ASCII)


def _signature(record_id: int) -> str:
    digest = salted_hmac(_SALT, f"record:{record_id}", algorithm="sha256").digest()
    return base64.b32encode(digest).decode("ascii")[:10].lower()


def record_message_id(record_id: int, domain: str) -> str:
    """A fresh Message-ID (without angle brackets) that names ``record_id``."""
    return f"{uuid.uuid4().hex}.r{record_id}.{_signature(record_id)}@{domain}"


def record_from_message_id(message_id: str) -> int | None:
    """The record a Message-ID of ours names, or None (not ours, or a forged signature)."""
    match = _TOKEN.search(message_id)
    if match is None:
        return None
    record_id = int(match.group(1))
    if not constant_time_compare(match.group(2), _signature(record_id)):
        return None
    return record_id


def plus_address(address: str, reference: str) -> str:
    local, _at, domain = address.partition("@")
    return f"{local}+{reference}@{domain}"


def reference_from_plus_address(address: str) -> str | None:
    match = _PLUS.match(address)
    return match.group(1).upper() if match else None


def references_in_subject(subject: str) -> list[str]:
    return [m.upper() for m in _SUBJECT_REFERENCE.findall(subject)]
