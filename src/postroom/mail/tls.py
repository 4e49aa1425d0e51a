"""TLS contexts from a :class:`TLSPolicy`, and naming what went wrong."""

from __future__ import annotations

import ssl

from postroom.mail.errors import CertificateError, CertProblem, TLSError, TLSMismatch
from postroom.mail.types import Security, TLSPolicy

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h). Stable across
# OpenSSL versions, unlike the messages.
_X509_V_ERR_CERT_NOT_YET_VALID = 9
_X509_V_ERR_CERT_HAS_EXPIRED = 10
_X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT = 18
_X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN = 19
_X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
_X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
_X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT = 2
_X509_V_ERR_HOSTNAME_MISMATCH = 62
_X509_V_ERR_IP_ADDRESS_MISMATCH = 64

_CERT_PROBLEMS: dict[int, CertProblem] = {
    _X509_V_ERR_CERT_NOT_YET_VALID: CertProblem.NOT_YET_VALID,
    _X509_V_ERR_CERT_HAS_EXPIRED: CertProblem.EXPIRED,
    _X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: CertProblem.SELF_SIGNED,
    # A chain whose root we do not know is, to the user, a self-signed setup.
    _X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: CertProblem.SELF_SIGNED,
    _X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: CertProblem.UNTRUSTED,
    _X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: CertProblem.UNTRUSTED,
    _X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: CertProblem.UNTRUSTED,
    _X509_V_ERR_HOSTNAME_MISMATCH: CertProblem.HOSTNAME_MISMATCH,
    _X509_V_ERR_IP_ADDRESS_MISMATCH: CertProblem.HOSTNAME_MISMATCH,
}

# ssl.SSLError.reason values OpenSSL gives when the peer answered our
# ClientHello with something that is not TLS: a plaintext greeting
# ("* OK", "+OK", "220 ...") read as a TLS record header.
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "UNEXPECTED_RECORD",
        "WRONG_SSL_VERSION",
    }
)


def make_context(policy: TLSPolicy) -> ssl.SSLContext:
    """A client context: system CAs plus ``ca_pem``, TLS 1.2 or newer.

    With ``verify=False`` (an explicit admin choice, A12) the connection is
    still encrypted but the server is not authenticated.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if policy.ca_pem:
        context.load_verify_locations(cadata=policy.ca_pem)
    if not policy.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def classify_certificate(exc: ssl.SSLCertVerificationError) -> CertProblem:
    return _CERT_PROBLEMS.get(exc.verify_code, CertProblem.INVALID)


def translate_ssl_error(exc: ssl.SSLError, configured: Security) -> TLSError:
    """Turn a handshake failure into the matching :class:`TLSError`."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        problem = classify_certificate(exc)
        return CertificateError(
            f"certificate not accepted: {exc.verify_message} (code {exc.verify_code})",
            problem=problem,
        )
    if exc.reason in _NOT_TLS_REASONS:
        return TLSMismatch(
            f"the server did not answer in TLS ({exc.reason})", configured=configured
        )
    return TLSError(f"TLS handshake failed: {exc.reason or type(exc).__name__}")
