"""Port/security combinations that are almost always a mistake (C1, A14)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postroom.mail.types import Protocol, Security


class PortWarningCode(enum.StrEnum):
    SSL_ON_STARTTLS_PORT = "ssl_on_starttls_port"
    STARTTLS_ON_SSL_PORT = "starttls_on_ssl_port"
    NONE_ON_SSL_PORT = "none_on_ssl_port"


@dataclass(frozen=True)
class PortWarning:
    """``suggested_security`` on ``suggested_port`` (the same port) is the usual fix;
    ``alternative_port`` is where the configured security would be right, if any.
    """

    code: PortWarningCode
    protocol: Protocol
    port: int
    security: Security
    suggested_security: Security
    suggested_port: int
    alternative_port: int | None


# Registered ports that speak plaintext first (upgradable with STARTTLS) and
# those that speak TLS from the first byte.
_STARTTLS_PORTS: dict[Protocol, frozenset[int]] = {
    Protocol.IMAP: frozenset({143}),
    Protocol.POP3: frozenset({110}),
    Protocol.SMTP: frozenset({25, 587}),
}
_SSL_PORTS: dict[Protocol, frozenset[int]] = {
    Protocol.IMAP: frozenset({993}),
    Protocol.POP3: frozenset({995}),
    Protocol.SMTP: frozenset({465}),
}
# Where each mode belongs when the port is the thing to change.
_USUAL_SSL_PORT = {Protocol.IMAP: 993, Protocol.POP3: 995, Protocol.SMTP: 465}
_USUAL_STARTTLS_PORT = {Protocol.IMAP: 143, Protocol.POP3: 110, Protocol.SMTP: 587}


def port_security_warning(protocol: Protocol, port: int, security: Security) -> PortWarning | None:
    """Warn about SSL on 587/143/110/25, STARTTLS or none on 465/993/995.

    The suggestion keeps the port and changes the security, which is what
    the server on a standard port will accept.
    """
    if security is Security.SSL and port in _STARTTLS_PORTS[protocol]:
        return PortWarning(
            PortWarningCode.SSL_ON_STARTTLS_PORT,
            protocol,
            port,
            security,
            suggested_security=Security.STARTTLS,
            suggested_port=port,
            alternative_port=_USUAL_SSL_PORT[protocol],
        )
    if port in _SSL_PORTS[protocol]:
        if security is Security.STARTTLS:
            code = PortWarningCode.STARTTLS_ON_SSL_PORT
            alternative: int | None = _USUAL_STARTTLS_PORT[protocol]
        elif security is Security.NONE:
            # Not "use port 25 unencrypted": no alternative to offer.
            code, alternative = PortWarningCode.NONE_ON_SSL_PORT, None
        else:
            return None
        return PortWarning(
            code,
            protocol,
            port,
            security,
            suggested_security=Security.SSL,
            suggested_port=port,
            alternative_port=alternative,
        )
    return None
