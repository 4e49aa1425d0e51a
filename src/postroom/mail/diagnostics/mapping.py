"""The one place where mail errors become diagnosis codes and params."""

from __future__ import annotations

from postroom.mail import errors
from postroom.mail.diagnostics.codes import Diagnosis, DiagnosisCode
from postroom.mail.types import Endpoint

# Most specific class first is not needed: the lookup walks the MRO.
_CODES: dict[type[errors.MailError], DiagnosisCode] = {
    errors.DNSFailure: DiagnosisCode.DNS_FAILURE,
    errors.ConnectionRefused: DiagnosisCode.CONNECTION_REFUSED,
    errors.ConnectTimeout: DiagnosisCode.TIMEOUT,
    errors.ConnectionLost: DiagnosisCode.CONNECTION_LOST,
    errors.ConnectError: DiagnosisCode.CONNECTION_FAILED,
    errors.TLSMismatch: DiagnosisCode.TLS_MISMATCH,
    errors.CertificateError: DiagnosisCode.CERTIFICATE_INVALID,
    errors.StartTLSUnavailable: DiagnosisCode.STARTTLS_UNAVAILABLE,
    errors.TLSError: DiagnosisCode.TLS_FAILED,
    errors.PlaintextRefused: DiagnosisCode.PLAINTEXT_REFUSED,
    errors.AuthUnsupported: DiagnosisCode.AUTH_UNSUPPORTED,
    errors.AuthError: DiagnosisCode.AUTH_FAILED,
    errors.FolderMissing: DiagnosisCode.FOLDER_MISSING,
    errors.RelayDenied: DiagnosisCode.SMTP_RELAY_DENIED,
    errors.SenderRejected: DiagnosisCode.SMTP_SENDER_REJECTED,
    errors.RecipientRejected: DiagnosisCode.SMTP_RECIPIENT_REJECTED,
    errors.SMTPRejected: DiagnosisCode.SMTP_RECIPIENT_REJECTED,
    errors.TemporaryFailure: DiagnosisCode.TEMPORARY_FAILURE,
    errors.ProtocolError: DiagnosisCode.PROTOCOL_ERROR,
    errors.MailError: DiagnosisCode.UNEXPECTED,
}


def code_for(exc: errors.MailError) -> DiagnosisCode:
    for klass in type(exc).__mro__:
        code = _CODES.get(klass)
        if code is not None:
            return code
    raise AssertionError("MailError itself is in the table")  # pragma: no cover


def diagnose_error(exc: errors.MailError, endpoint: Endpoint) -> Diagnosis:
    params = {"host": endpoint.host, "port": str(endpoint.port)}
    params.update(_params(exc))
    return Diagnosis(ok=False, code=code_for(exc), detail=exc.detail, params=params)


def diagnose_unexpected(exc: Exception, endpoint: Endpoint) -> Diagnosis:
    """A bug or a failure mode nobody has named yet; the caller logs the traceback."""
    return Diagnosis(
        ok=False,
        code=DiagnosisCode.UNEXPECTED,
        detail=f"{type(exc).__name__}: {exc}",
        params={"host": endpoint.host, "port": str(endpoint.port)},
    )


def _params(exc: errors.MailError) -> dict[str, str]:
    params: dict[str, str] = {}
    if exc.server_reply:
        params["server_reply"] = exc.server_reply
    if isinstance(exc, (errors.ConnectTimeout, errors.ConnectionLost, errors.ProtocolError)):
        params["phase"] = str(exc.phase)
    if isinstance(exc, errors.TLSMismatch):
        params["configured_security"] = str(exc.configured)
        if exc.suggested_security is not None:
            params["suggested_security"] = str(exc.suggested_security)
        if exc.suggested_port is not None:
            params["suggested_port"] = str(exc.suggested_port)
    if isinstance(exc, errors.CertificateError):
        params["problem"] = str(exc.problem)
    if isinstance(exc, errors.PlaintextRefused):
        params["refused_by"] = "server" if exc.by_server else "client"
    if isinstance(exc, errors.AuthError) and exc.hint is not None:
        params["hint"] = str(exc.hint)
    if isinstance(exc, errors.FolderMissing):
        params["folder"] = exc.folder
    if isinstance(exc, errors.SMTPRejected):
        params["address"] = exc.address
    return params
