"""The exception -> code mapping (the only one) and the params each code carries."""

from __future__ import annotations

import pytest

from postroom.mail import errors
from postroom.mail.diagnostics import DiagnosisCode, code_for, diagnose_error
from postroom.mail.types import Endpoint, Protocol, Security

ENDPOINT = Endpoint(Protocol.IMAP, "mail.example.test", 993, Security.SSL)

CASES: list[tuple[errors.MailError, DiagnosisCode, dict[str, str]]] = [
    (errors.DNSFailure("x"), DiagnosisCode.DNS_FAILURE, {}),
    (errors.ConnectionRefused("x"), DiagnosisCode.CONNECTION_REFUSED, {}),
    (errors.ConnectError("x"), DiagnosisCode.CONNECTION_FAILED, {}),
    (
        errors.ConnectTimeout("x", phase=errors.Phase.GREETING),
        DiagnosisCode.TIMEOUT,
        {"phase": "greeting"},
    ),
    (
        errors.ConnectionLost("x", phase=errors.Phase.LOGIN),
        DiagnosisCode.CONNECTION_LOST,
        {"phase": "login"},
    ),
    (
        errors.TLSMismatch(
            "x",
            configured=Security.STARTTLS,
            suggested_security=Security.SSL,
            suggested_port=465,
        ),
        DiagnosisCode.TLS_MISMATCH,
        {"configured_security": "starttls", "suggested_security": "ssl", "suggested_port": "465"},
    ),
    (errors.TLSError("x"), DiagnosisCode.TLS_FAILED, {}),
    (
        errors.CertificateError("x", problem=errors.CertProblem.SELF_SIGNED),
        DiagnosisCode.CERTIFICATE_INVALID,
        {"problem": "self_signed"},
    ),
    (errors.StartTLSUnavailable("x"), DiagnosisCode.STARTTLS_UNAVAILABLE, {}),
    (
        errors.PlaintextRefused("x", by_server=True, server_reply="NO [PRIVACYREQUIRED]"),
        DiagnosisCode.PLAINTEXT_REFUSED,
        {"refused_by": "server", "server_reply": "NO [PRIVACYREQUIRED]"},
    ),
    (
        errors.AuthError(
            "x", server_reply="535 5.7.9 app pw", hint=errors.AuthHint.APP_PASSWORD_REQUIRED
        ),
        DiagnosisCode.AUTH_FAILED,
        {"server_reply": "535 5.7.9 app pw", "hint": "app_password_required"},
    ),
    (errors.AuthUnsupported("x"), DiagnosisCode.AUTH_UNSUPPORTED, {}),
    (
        errors.FolderMissing("x", folder="Счета"),
        DiagnosisCode.FOLDER_MISSING,
        {"folder": "Счета"},
    ),
    (
        errors.RelayDenied("x", server_reply="554 5.7.1 no", address="a@b.test"),
        DiagnosisCode.SMTP_RELAY_DENIED,
        {"server_reply": "554 5.7.1 no", "address": "a@b.test"},
    ),
    (
        errors.SenderRejected("x", server_reply="553 no", address="a@b.test"),
        DiagnosisCode.SMTP_SENDER_REJECTED,
        {"address": "a@b.test"},
    ),
    (
        errors.RecipientRejected("x", server_reply="550 5.1.1 no", address="a@b.test"),
        DiagnosisCode.SMTP_RECIPIENT_REJECTED,
        {"address": "a@b.test"},
    ),
    (
        errors.TemporaryFailure("x", server_reply="451 later"),
        DiagnosisCode.TEMPORARY_FAILURE,
        {"server_reply": "451 later"},
    ),
    (
        errors.ProtocolError("x", phase=errors.Phase.GREETING),
        DiagnosisCode.PROTOCOL_ERROR,
        {"phase": "greeting"},
    ),
    (errors.MailError("x"), DiagnosisCode.UNEXPECTED, {}),
]


@pytest.mark.parametrize(
    ("error", "code", "params"), CASES, ids=[type(c[0]).__name__ for c in CASES]
)
def test_error_maps_to_code_and_params(
    error: errors.MailError, code: DiagnosisCode, params: dict[str, str]
) -> None:
    diagnosis = diagnose_error(error, ENDPOINT)
    assert not diagnosis.ok
    assert diagnosis.code is code
    assert diagnosis.params["host"] == "mail.example.test"
    assert diagnosis.params["port"] == "993"
    for key, value in params.items():
        assert diagnosis.params[key] == value


def test_every_code_is_reachable_from_an_error() -> None:
    assert {code for _error, code, _params in CASES} == set(DiagnosisCode)


def test_subclasses_not_in_the_table_use_their_parent() -> None:
    class Quota(errors.TemporaryFailure):
        pass

    assert code_for(Quota("full")) is DiagnosisCode.TEMPORARY_FAILURE


def test_temporary_flags() -> None:
    assert errors.ConnectionRefused("x").temporary
    assert errors.TemporaryFailure("x").temporary
    assert not errors.DNSFailure("x").temporary
    assert errors.DNSFailure("x", temporary=True).temporary
    assert not errors.AuthError("x").temporary
    assert not errors.RelayDenied("x", server_reply="r", address="a").temporary
