"""TLS context defaults and naming of certificate problems (by OpenSSL code)."""

from __future__ import annotations

import ssl

import pytest
import trustme

from postroom.mail.errors import CertificateError, CertProblem, TLSError, TLSMismatch
from postroom.mail.tls import classify_certificate, make_context, translate_ssl_error
from postroom.mail.types import Security, TLSPolicy


def test_default_context_verifies_with_tls12_minimum() -> None:
    context = make_context(TLSPolicy())
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    # System CAs are loaded (Debian ships ca-certificates).
    assert context.cert_store_stats()["x509_ca"] > 0


def test_ca_pem_is_trusted_in_addition() -> None:
    ca_pem = trustme.CA().cert_pem.bytes().decode("ascii")
    baseline = make_context(TLSPolicy()).cert_store_stats()["x509_ca"]
    context = make_context(TLSPolicy(ca_pem=ca_pem))
    assert context.cert_store_stats()["x509_ca"] == baseline + 1


def test_verification_off_only_when_asked() -> None:
    context = make_context(TLSPolicy(verify=False))
    assert context.verify_mode is ssl.CERT_NONE
    assert not context.check_hostname
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    exc.verify_code = code
    exc.verify_message = message
    return exc


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        (10, CertProblem.EXPIRED),
        (9, CertProblem.NOT_YET_VALID),
        (18, CertProblem.SELF_SIGNED),
        (19, CertProblem.SELF_SIGNED),
        (20, CertProblem.UNTRUSTED),
        (21, CertProblem.UNTRUSTED),
        (62, CertProblem.HOSTNAME_MISMATCH),
        (64, CertProblem.HOSTNAME_MISMATCH),
        (7, CertProblem.INVALID),  # certificate signature failure
    ],
)
def test_certificate_problem_by_verify_code(code: int, problem: CertProblem) -> None:
    assert classify_certificate(_verify_error(code, "whatever the text")) is problem


def test_translate_verify_error() -> None:
    error = translate_ssl_error(_verify_error(10, "certificate has expired"), Security.SSL)
    assert isinstance(error, CertificateError)
    assert error.problem is CertProblem.EXPIRED


def test_plaintext_answer_to_client_hello_is_a_mismatch() -> None:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"
    error = translate_ssl_error(exc, Security.SSL)
    assert isinstance(error, TLSMismatch)
    assert error.configured is Security.SSL


def test_other_handshake_failures_stay_generic() -> None:
    exc = ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version")
    exc.reason = "TLSV1_ALERT_PROTOCOL_VERSION"
    error = translate_ssl_error(exc, Security.SSL)
    assert type(error) is TLSError
