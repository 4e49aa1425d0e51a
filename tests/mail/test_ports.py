"""port_security_warning: the almost-always-wrong combinations, and nothing else."""

from __future__ import annotations

import pytest

from postroom.mail.diagnostics import PortWarningCode, port_security_warning
from postroom.mail.types import Protocol, Security

IMAP, POP3, SMTP = Protocol.IMAP, Protocol.POP3, Protocol.SMTP
SSL, STARTTLS, NONE = Security.SSL, Security.STARTTLS, Security.NONE


@pytest.mark.parametrize(
    ("protocol", "port", "security", "code", "suggested", "alternative"),
    [
        (SMTP, 587, SSL, PortWarningCode.SSL_ON_STARTTLS_PORT, STARTTLS, 465),
        (SMTP, 25, SSL, PortWarningCode.SSL_ON_STARTTLS_PORT, STARTTLS, 465),
        (IMAP, 143, SSL, PortWarningCode.SSL_ON_STARTTLS_PORT, STARTTLS, 993),
        (POP3, 110, SSL, PortWarningCode.SSL_ON_STARTTLS_PORT, STARTTLS, 995),
        (SMTP, 465, STARTTLS, PortWarningCode.STARTTLS_ON_SSL_PORT, SSL, 587),
        (IMAP, 993, STARTTLS, PortWarningCode.STARTTLS_ON_SSL_PORT, SSL, 143),
        (POP3, 995, STARTTLS, PortWarningCode.STARTTLS_ON_SSL_PORT, SSL, 110),
        (SMTP, 465, NONE, PortWarningCode.NONE_ON_SSL_PORT, SSL, None),
        (IMAP, 993, NONE, PortWarningCode.NONE_ON_SSL_PORT, SSL, None),
        (POP3, 995, NONE, PortWarningCode.NONE_ON_SSL_PORT, SSL, None),
    ],
)
def test_wrong_combinations_warn(
    protocol: Protocol,
    port: int,
    security: Security,
    code: PortWarningCode,
    suggested: Security,
    alternative: int | None,
) -> None:
    warning = port_security_warning(protocol, port, security)
    assert warning is not None
    assert warning.code is code
    assert warning.suggested_security is suggested
    assert warning.suggested_port == port
    assert warning.alternative_port == alternative


@pytest.mark.parametrize(
    ("protocol", "port", "security"),
    [
        (SMTP, 587, STARTTLS),
        (SMTP, 465, SSL),
        (SMTP, 25, NONE),
        (SMTP, 25, STARTTLS),
        (SMTP, 2525, SSL),
        (IMAP, 993, SSL),
        (IMAP, 143, STARTTLS),
        (IMAP, 143, NONE),
        (POP3, 995, SSL),
        (POP3, 110, STARTTLS),
        (IMAP, 1143, STARTTLS),  # Proton Bridge
        # Ports of another protocol mean nothing here.
        (IMAP, 465, STARTTLS),
        (SMTP, 993, NONE),
    ],
)
def test_usual_or_unknown_combinations_do_not_warn(
    protocol: Protocol, port: int, security: Security
) -> None:
    assert port_security_warning(protocol, port, security) is None
