"""The one exception tree for mail errors.

Every helper in :mod:`postroom.mail` raises only these. Each carries the
facts a caller needs to act (retry or not, which certificate problem, which
folder, what the server said) and never a password: ``server_reply`` holds
what the *server* sent, which cannot contain our secret.

User-facing wording lives elsewhere (``postroom.accounts.diagnosis_text``);
``detail`` here is English for logs.
"""

from __future__ import annotations

import enum

from postroom.mail.types import Security


class Phase(enum.StrEnum):
    """Where in a session something went wrong."""

    CONNECT = "connect"  # TCP connect
    TLS = "tls"  # TLS handshake (implicit or after STARTTLS)
    GREETING = "greeting"  # first line from the server
    LOGIN = "login"
    COMMAND = "command"  # anything after login


class CertProblem(enum.StrEnum):
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    SELF_SIGNED = "self_signed"
    HOSTNAME_MISMATCH = "hostname_mismatch"
    UNTRUSTED = "untrusted"  # chain ends at an issuer we do not trust
    INVALID = "invalid"  # anything else OpenSSL refuses (bad signature, revoked...)


class AuthHint(enum.StrEnum):
    """What a failed login most likely needs, when the server tells us."""

    APP_PASSWORD_REQUIRED = "app_password_required"  # noqa: S105  (a code, not a password)
    WEB_LOGIN_REQUIRED = "web_login_required"
    PASSWORD_EXPIRED = "password_expired"  # noqa: S105  (a code, not a password)
    AUTH_DISABLED = "auth_disabled"  # e.g. SMTP AUTH switched off for the tenant
    PASSWORD_NOT_ASCII = "password_not_ascii"  # noqa: S105  (a code, not a password)


class MailError(Exception):
    """Base of all mail errors.

    ``temporary`` tells a queue whether retrying later can help; it is a
    class default that single instances may override (an auth failure the
    server calls temporary, DNS "try again").
    """

    temporary: bool = False

    def __init__(
        self,
        detail: str,
        *,
        server_reply: str | None = None,
        temporary: bool | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.server_reply = server_reply
        if temporary is not None:
            self.temporary = temporary


# --- reaching the server ---------------------------------------------------


class ConnectError(MailError):
    """The server could not be reached or dropped us (network level)."""

    temporary = True


class DNSFailure(ConnectError):
    # NXDOMAIN is a typo in the settings; only "try again" is worth a retry.
    temporary = False


class ConnectionRefused(ConnectError):
    pass


class ConnectTimeout(ConnectError):
    def __init__(self, detail: str, *, phase: Phase) -> None:
        super().__init__(detail)
        self.phase = phase


class ConnectionLost(ConnectError):
    """The server closed the connection in the middle of a conversation."""

    def __init__(self, detail: str, *, phase: Phase) -> None:
        super().__init__(detail)
        self.phase = phase


# --- TLS ---------------------------------------------------------------------


class TLSError(MailError):
    """The TLS handshake failed for a reason other than those below."""


class TLSMismatch(TLSError):
    """The port speaks a different security mode than configured.

    ``suggested_security``/``suggested_port`` are filled in when a probe of
    the other mode confirmed what works (see diagnostics).
    """

    def __init__(
        self,
        detail: str,
        *,
        configured: Security,
        suggested_security: Security | None = None,
        suggested_port: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.configured = configured
        self.suggested_security = suggested_security
        self.suggested_port = suggested_port


class CertificateError(TLSError):
    def __init__(self, detail: str, *, problem: CertProblem) -> None:
        super().__init__(detail)
        self.problem = problem


class StartTLSUnavailable(TLSError):
    """STARTTLS was asked for but the server does not offer it.

    We never continue in plaintext when this happens.
    """


# --- logging in ----------------------------------------------------------------


class PlaintextRefused(MailError):
    """A password would travel unencrypted.

    ``by_server`` is True when the server refused (LOGINDISABLED,
    PRIVACYREQUIRED, POP3 ``-ERR [AUTH] ... SSL/TLS``, SMTP 538), False when
    we refused because the account does not allow plaintext login.
    """

    def __init__(self, detail: str, *, by_server: bool, server_reply: str | None = None) -> None:
        super().__init__(detail, server_reply=server_reply)
        self.by_server = by_server


class AuthError(MailError):
    """The server rejected the credentials."""

    def __init__(
        self,
        detail: str,
        *,
        server_reply: str | None = None,
        hint: AuthHint | None = None,
        temporary: bool | None = None,
    ) -> None:
        super().__init__(detail, server_reply=server_reply, temporary=temporary)
        self.hint = hint


class AuthUnsupported(AuthError):
    """Credentials were given but the server offers no login we can use."""


# --- after login -------------------------------------------------------------


class FolderMissing(MailError):
    def __init__(self, detail: str, *, folder: str) -> None:
        super().__init__(detail)
        self.folder = folder


class SMTPRejected(MailError):
    """An SMTP envelope command was refused permanently."""

    def __init__(self, detail: str, *, server_reply: str, address: str) -> None:
        super().__init__(detail, server_reply=server_reply)
        self.address = address


class RelayDenied(SMTPRejected):
    """The server will not relay for us (5.7.x, 550/554 relay replies, 530)."""


class SenderRejected(SMTPRejected):
    pass


class RecipientRejected(SMTPRejected):
    pass


class TemporaryFailure(MailError):
    """The server said "try again later" (SMTP 4xx, IMAP [UNAVAILABLE], POP3 [SYS/TEMP])."""

    temporary = True


class ProtocolError(MailError):
    """The server said something we cannot make sense of."""

    def __init__(self, detail: str, *, phase: Phase, server_reply: str | None = None) -> None:
        super().__init__(detail, server_reply=server_reply)
        self.phase = phase
