"""Every code and port warning has words, and the words use the params."""

from __future__ import annotations

import django
import pytest
from django.conf import settings

from postroom.mail.diagnostics import (
    Diagnosis,
    DiagnosisCode,
    PortWarningCode,
    port_security_warning,
)
from postroom.mail.types import Protocol, Security

if not settings.configured:
    # Run without pytest-django (``-p no:django``): gettext needs settings and apps.
    settings.configure(USE_I18N=True, LANGUAGE_CODE="en", INSTALLED_APPS=[])
    django.setup()

from postroom.accounts.diagnosis_text import describe, describe_warning

BASE = {"host": "mail.example.test", "port": "587"}

VARIANTS: list[tuple[DiagnosisCode, dict[str, str], str]] = [
    (DiagnosisCode.DNS_FAILURE, {}, "mail.example.test"),
    (DiagnosisCode.CONNECTION_REFUSED, {}, "587"),
    (DiagnosisCode.CONNECTION_FAILED, {}, "mail.example.test"),
    (DiagnosisCode.TIMEOUT, {"phase": "connect"}, "in time"),
    (DiagnosisCode.TIMEOUT, {"phase": "greeting"}, "never answered"),
    (DiagnosisCode.TIMEOUT, {"phase": "login"}, "stopped answering"),
    (DiagnosisCode.CONNECTION_LOST, {"phase": "login"}, "closed"),
    (DiagnosisCode.TLS_MISMATCH, {"suggested_security": "ssl"}, "implicit TLS"),
    (
        DiagnosisCode.TLS_MISMATCH,
        {"suggested_security": "ssl", "suggested_port": "465"},
        "465",
    ),
    (DiagnosisCode.TLS_MISMATCH, {"suggested_security": "starttls"}, "STARTTLS"),
    (DiagnosisCode.TLS_MISMATCH, {"suggested_security": "none"}, "no encryption"),
    (DiagnosisCode.TLS_MISMATCH, {}, "security mode"),
    (DiagnosisCode.TLS_FAILED, {}, "encrypted connection"),
    (DiagnosisCode.CERTIFICATE_INVALID, {"problem": "expired"}, "expired"),
    (DiagnosisCode.CERTIFICATE_INVALID, {"problem": "not_yet_valid"}, "not valid yet"),
    (DiagnosisCode.CERTIFICATE_INVALID, {"problem": "self_signed"}, "self-signed"),
    (DiagnosisCode.CERTIFICATE_INVALID, {"problem": "hostname_mismatch"}, "mail.example.test"),
    (DiagnosisCode.CERTIFICATE_INVALID, {"problem": "untrusted"}, "does not trust"),
    (DiagnosisCode.CERTIFICATE_INVALID, {"problem": "invalid"}, "rejected"),
    (DiagnosisCode.STARTTLS_UNAVAILABLE, {}, "STARTTLS"),
    (DiagnosisCode.PLAINTEXT_REFUSED, {"refused_by": "server"}, "refuses"),
    (DiagnosisCode.PLAINTEXT_REFUSED, {"refused_by": "client"}, "not allowed"),
    (DiagnosisCode.AUTH_FAILED, {"server_reply": "535 5.7.8 nope"}, "535 5.7.8 nope"),
    (DiagnosisCode.AUTH_FAILED, {"hint": "app_password_required"}, "app password"),
    (DiagnosisCode.AUTH_FAILED, {"hint": "web_login_required"}, "website"),
    (DiagnosisCode.AUTH_FAILED, {"hint": "password_expired"}, "expired"),
    (DiagnosisCode.AUTH_FAILED, {"hint": "auth_disabled"}, "switched off"),
    (DiagnosisCode.AUTH_FAILED, {"hint": "password_not_ascii"}, "characters"),
    (DiagnosisCode.AUTH_UNSUPPORTED, {}, "no login"),
    (DiagnosisCode.FOLDER_MISSING, {"folder": "Счета"}, "Счета"),
    (DiagnosisCode.SMTP_RELAY_DENIED, {"server_reply": "554 5.7.1 Relay denied"}, "5.7.1"),
    (DiagnosisCode.SMTP_SENDER_REJECTED, {"address": "me@x.test"}, "me@x.test"),
    (DiagnosisCode.SMTP_RECIPIENT_REJECTED, {"address": "you@x.test"}, "you@x.test"),
    (DiagnosisCode.TEMPORARY_FAILURE, {"server_reply": "451 later"}, "451 later"),
    (DiagnosisCode.PROTOCOL_ERROR, {}, "protocol"),
    (DiagnosisCode.UNEXPECTED, {}, "unexpected"),
]


@pytest.mark.parametrize(("code", "params", "expected"), VARIANTS)
def test_every_code_has_a_message_and_a_fix(
    code: DiagnosisCode, params: dict[str, str], expected: str
) -> None:
    message, fix = describe(Diagnosis(ok=False, code=code, detail="x", params={**BASE, **params}))
    assert expected in message + " " + fix
    assert message and fix
    assert "%(" not in message + fix
    assert "?" not in message  # every placeholder found its param


def test_all_codes_covered() -> None:
    assert {code for code, _params, _text in VARIANTS} == set(DiagnosisCode)


def test_success() -> None:
    message, fix = describe(Diagnosis.success("fine"))
    assert message and fix == ""


def test_missing_param_does_not_crash() -> None:
    message, _fix = describe(Diagnosis(ok=False, code=DiagnosisCode.FOLDER_MISSING, detail="x"))
    assert "?" in message


@pytest.mark.parametrize(
    ("protocol", "port", "security", "expected"),
    [
        (Protocol.SMTP, 587, Security.SSL, "465"),
        (Protocol.SMTP, 465, Security.STARTTLS, "587"),
        (Protocol.IMAP, 993, Security.NONE, "SSL/TLS"),
    ],
)
def test_port_warnings(protocol: Protocol, port: int, security: Security, expected: str) -> None:
    warning = port_security_warning(protocol, port, security)
    assert warning is not None
    text = describe_warning(warning)
    assert expected in text and str(port) in text


def test_all_port_warning_codes_covered() -> None:
    seen = set()
    for protocol, port, security in [
        (Protocol.SMTP, 587, Security.SSL),
        (Protocol.SMTP, 465, Security.STARTTLS),
        (Protocol.SMTP, 465, Security.NONE),
    ]:
        warning = port_security_warning(protocol, port, security)
        assert warning is not None
        seen.add(warning.code)
        assert describe_warning(warning)
    assert seen == set(PortWarningCode)
