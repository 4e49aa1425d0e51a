"""What a connection test reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class DiagnosisCode(enum.StrEnum):
    """Stable codes shown by the UI, API and CLI; never renumber or rename."""

    DNS_FAILURE = "dns_failure"
    CONNECTION_REFUSED = "connection_refused"
    # Any other network error: unreachable network, unusable source address.
    CONNECTION_FAILED = "connection_failed"
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    TLS_MISMATCH = "tls_mismatch"
    TLS_FAILED = "tls_failed"
    CERTIFICATE_INVALID = "certificate_invalid"
    STARTTLS_UNAVAILABLE = "starttls_unavailable"
    PLAINTEXT_REFUSED = "plaintext_refused"
    AUTH_FAILED = "auth_failed"
    AUTH_UNSUPPORTED = "auth_unsupported"
    FOLDER_MISSING = "folder_missing"
    SMTP_RELAY_DENIED = "smtp_relay_denied"
    SMTP_SENDER_REJECTED = "smtp_sender_rejected"
    SMTP_RECIPIENT_REJECTED = "smtp_recipient_rejected"
    TEMPORARY_FAILURE = "temporary_failure"
    PROTOCOL_ERROR = "protocol_error"
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class Diagnosis:
    """Outcome of one test.

    ``detail`` is English and technical, for logs; ``params`` holds the facts
    the user-facing text needs (never a password).
    """

    ok: bool
    code: DiagnosisCode | None
    detail: str
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def success(cls, detail: str) -> Diagnosis:
        return cls(ok=True, code=None, detail=detail)
