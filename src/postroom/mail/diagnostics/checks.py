"""Test connection (A14): run a real session and name what went wrong."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from postroom.mail import errors, imap, pop3, smtp
from postroom.mail.diagnostics.codes import Diagnosis
from postroom.mail.diagnostics.mapping import diagnose_error, diagnose_unexpected
from postroom.mail.types import (
    Credentials,
    Endpoint,
    IncomingCheck,
    OutgoingCheck,
    Protocol,
    Security,
    TLSPolicy,
)

log = logging.getLogger(__name__)

# The implicit-TLS port of each protocol, tried when a plaintext port offers
# no STARTTLS.
_SSL_PORT = {Protocol.IMAP: 993, Protocol.POP3: 995, Protocol.SMTP: 465}


def check_incoming(check: IncomingCheck) -> Diagnosis:
    """Connect, log in and (IMAP) check the folders; never raises a MailError."""
    endpoint = check.endpoint

    def imap_session() -> str:
        with imap.session(endpoint, check.credentials, check.folders):
            pass
        return f"IMAP login ok, folders found: {', '.join(check.folders)}"

    def pop3_session() -> str:
        with pop3.session(endpoint, check.credentials):
            pass
        return "POP3 login ok"

    if endpoint.protocol is Protocol.IMAP:
        return _diagnose(endpoint, imap_session, check.credentials)
    if endpoint.protocol is Protocol.POP3:
        return _diagnose(endpoint, pop3_session, check.credentials)
    raise ValueError(f"not an incoming protocol: {endpoint.protocol}")


def check_outgoing(check: OutgoingCheck) -> Diagnosis:
    """EHLO, STARTTLS, AUTH, MAIL FROM + RCPT TO (no DATA); never raises a MailError."""
    endpoint = check.endpoint
    if endpoint.protocol is not Protocol.SMTP:
        raise ValueError(f"not an outgoing protocol: {endpoint.protocol}")

    def smtp_session() -> str:
        with smtp.session(endpoint, check.credentials) as connection:
            connection.check_envelope(check.mail_from, check.rcpt_to)
        login = "with login" if check.credentials is not None else "without login"
        return f"SMTP {login} ok; the server accepts mail for {check.rcpt_to}"

    return _diagnose(endpoint, smtp_session, check.credentials)


def _diagnose(
    endpoint: Endpoint, session: Callable[[], str], credentials: Credentials | None
) -> Diagnosis:
    try:
        detail = session()
    except errors.MailError as exc:
        diagnosis = diagnose_error(explain(exc, endpoint), endpoint)
    except Exception as exc:
        # Not swallowed: logged with its traceback and reported as "unexpected".
        log.exception("unexpected error testing %s:%s", endpoint.host, endpoint.port)
        diagnosis = diagnose_unexpected(exc, endpoint)
    else:
        return Diagnosis.success(detail)
    return _without_secret(diagnosis, credentials)


def _without_secret(diagnosis: Diagnosis, credentials: Credentials | None) -> Diagnosis:
    """Defence in depth: no error text we build holds the password, but a server
    echoing it back, or an unexpected exception's text, must not put it on screen."""
    secret = credentials.password if credentials is not None else ""
    if len(secret) < 3:  # too short to tell apart from ordinary text
        return diagnosis
    return replace(
        diagnosis,
        detail=diagnosis.detail.replace(secret, "***"),
        params={key: value.replace(secret, "***") for key, value in diagnosis.params.items()},
    )


def explain(exc: errors.MailError, endpoint: Endpoint) -> errors.MailError:
    """Probe the other security mode when ``exc`` smells of a TLS/port mismatch.

    Implicit TLS spoken to a plaintext port fails the handshake (the server's
    greeting is not TLS); plaintext spoken to an implicit-TLS port gets no
    greeting (the server waits for a ClientHello) or garbage. Either way a
    second connection in the other mode says which setting is right.
    """
    if endpoint.security is Security.SSL:
        if isinstance(exc, errors.TLSError) and not isinstance(exc, errors.CertificateError):
            return _probe_plaintext_port(exc, endpoint)
        return exc
    at_greeting = isinstance(
        exc, (errors.ConnectTimeout, errors.ConnectionLost, errors.ProtocolError)
    )
    if at_greeting and getattr(exc, "phase", None) is errors.Phase.GREETING:
        return _probe_tls_port(exc, endpoint)
    return exc


def _probe_plaintext_port(exc: errors.TLSError, endpoint: Endpoint) -> errors.MailError:
    try:
        _probe(replace(endpoint, security=Security.STARTTLS, tls=TLSPolicy(verify=False)))
    except errors.StartTLSUnavailable:
        # Plaintext without STARTTLS here: is implicit TLS on its usual port?
        ssl_port = _SSL_PORT[endpoint.protocol]
        if ssl_port != endpoint.port and _works(
            replace(endpoint, port=ssl_port, tls=TLSPolicy(verify=False))
        ):
            return _mismatch(exc, endpoint, Security.SSL, ssl_port)
        return _mismatch(exc, endpoint, Security.NONE, None)
    except errors.MailError as probe_exc:
        log.debug("plaintext probe of %s:%s failed: %s", endpoint.host, endpoint.port, probe_exc)
        return exc
    return _mismatch(exc, endpoint, Security.STARTTLS, None)


def _probe_tls_port(exc: errors.MailError, endpoint: Endpoint) -> errors.MailError:
    if _works(replace(endpoint, security=Security.SSL, tls=TLSPolicy(verify=False))):
        return _mismatch(exc, endpoint, Security.SSL, None)
    return exc


def _mismatch(
    exc: errors.MailError, endpoint: Endpoint, security: Security, port: int | None
) -> errors.TLSMismatch:
    where = f"port {port}" if port is not None else f"port {endpoint.port}"
    mismatch = errors.TLSMismatch(
        f"{exc.detail}; the server answers with security {security} on {where}",
        configured=endpoint.security,
        suggested_security=security,
        suggested_port=port,
    )
    mismatch.__cause__ = exc
    return mismatch


def _works(endpoint: Endpoint) -> bool:
    try:
        _probe(endpoint)
    except errors.MailError as exc:
        log.debug(
            "probe of %s:%s (%s) failed: %s", endpoint.host, endpoint.port, endpoint.security, exc
        )
        return False
    return True


def _probe(endpoint: Endpoint) -> None:
    """Connect in the given mode (greeting, TLS) and leave; no login."""
    _CONNECTORS[endpoint.protocol](endpoint)


def _connect_imap(endpoint: Endpoint) -> None:
    imap.connect(endpoint).close()


def _connect_pop3(endpoint: Endpoint) -> None:
    pop3.connect(endpoint).close()


def _connect_smtp(endpoint: Endpoint) -> None:
    smtp.connect(endpoint).close()


_CONNECTORS: dict[Protocol, Callable[[Endpoint], None]] = {
    Protocol.IMAP: _connect_imap,
    Protocol.POP3: _connect_pop3,
    Protocol.SMTP: _connect_smtp,
}
