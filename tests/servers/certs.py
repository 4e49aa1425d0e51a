"""A private CA and server certificates for the test servers, made fresh per test session.

Every certificate a TLS diagnosis needs to see is here, each as PEM files on disk (Dovecot
reads files) and as text:

* ``valid``: signed by the session CA for localhost, 127.0.0.1, 127.0.0.2 and ::1.
  Verifies.
* ``expired``: signed by the session CA, right names, notAfter yesterday.
  Verify code 10, "certificate has expired".
* ``wrong_host``: signed by the session CA, only for ``wrong.example``.
  Verify code 62, "Hostname mismatch".
* ``self_signed``: issuer == subject, right names, CA:TRUE as ``openssl req -x509`` makes it.
  Verify code 18, "self-signed certificate".
* ``untrusted_ca``: right names, signed by a second CA that no client trusts.
  Verify code 20, "unable to get local issuer certificate".

Clients trust only ``ca.pem`` (:attr:`CertSet.ca_file`); nothing is added to the system
trust store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CertKind = Literal["valid", "expired", "wrong_host", "self_signed", "untrusted_ca"]
CERT_KINDS: tuple[CertKind, ...] = get_args(CertKind)

# The names every "right name" certificate carries. 127.0.0.2 is there because the
# plaintext-refusal mode of Dovecot is reached through that address (see dovecot.py).
SERVER_IDENTITIES: tuple[str, ...] = ("localhost", "127.0.0.1", "127.0.0.2", "::1")
WRONG_HOST = "wrong.example"


@dataclass(frozen=True)
class ServerCert:
    """One server certificate with its private key, as files and as PEM text."""

    kind: CertKind
    cert_file: Path
    key_file: Path
    cert_pem: str = field(repr=False)

    @property
    def sha256_fingerprint(self) -> str:
        """Colon-separated upper-case SHA-256 of the DER certificate (as browsers show it)."""
        der = ssl.PEM_cert_to_DER_cert(self.cert_pem)
        digest = hashlib.sha256(der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


@dataclass(frozen=True)
class CertSet:
    """The session CA plus one certificate of each :data:`CertKind`."""

    directory: Path
    ca_file: Path
    ca_pem: str = field(repr=False)
    valid: ServerCert
    expired: ServerCert
    wrong_host: ServerCert
    self_signed: ServerCert
    untrusted_ca: ServerCert

    def cert(self, kind: CertKind) -> ServerCert:
        if kind not in CERT_KINDS:
            raise ValueError(f"unknown certificate kind {kind!r}; expected one of {CERT_KINDS}")
        cert: ServerCert = getattr(self, kind)
        return cert

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the session CA and nothing else."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def server_context(self, kind: CertKind = "valid") -> ssl.SSLContext:
        """A server-side context presenting the certificate of ``kind``."""
        chosen = self.cert(kind)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(chosen.cert_file), str(chosen.key_file))
        return ctx


def make_cert_set(directory: Path) -> CertSet:
    """Create a new CA and all server certificates as PEM files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Postroom Test CA")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    now = dt.datetime.now(dt.UTC)

    def leaf(
        kind: CertKind,
        issuer: trustme.CA,
        *identities: str,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> ServerCert:
        issued = issuer.issue_cert(
            *identities,
            common_name=identities[0],
            organization_name="Postroom Test Server",
            not_before=not_before,
            not_after=not_after,
        )
        cert_pem = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
        return _write(directory, kind, cert_pem, issued.private_key_pem.bytes())

    return CertSet(
        directory=directory,
        ca_file=ca_file,
        ca_pem=ca.cert_pem.bytes().decode("ascii"),
        valid=leaf("valid", ca, *SERVER_IDENTITIES),
        expired=leaf(
            "expired",
            ca,
            *SERVER_IDENTITIES,
            not_before=now - dt.timedelta(days=60),
            not_after=now - dt.timedelta(days=1),
        ),
        wrong_host=leaf("wrong_host", ca, WRONG_HOST),
        self_signed=_self_signed(directory, now),
        # A second CA nobody trusts: "unknown issuer" rather than "self-signed".
        untrusted_ca=leaf(
            "untrusted_ca", trustme.CA(organization_name="Untrusted CA"), *SERVER_IDENTITIES
        ),
    )


def _self_signed(directory: Path, now: dt.datetime) -> ServerCert:
    # trustme cannot make a certificate that is its own issuer, so build it directly.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Postroom Self-Signed"),
            x509.NameAttribute(NameOID.COMMON_NAME, SERVER_IDENTITIES[0]),
        ]
    )
    sans: list[x509.GeneralName] = []
    for ident in SERVER_IDENTITIES:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(ident)))
        except ValueError:
            sans.append(x509.DNSName(ident))
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        # CA:TRUE like `openssl req -x509` (the usual way such certs are made), which also lets
        # a client that chooses to pin this certificate use it as its own trust anchor.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return _write(directory, "self_signed", cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _write(directory: Path, kind: CertKind, cert_pem: bytes, key_pem: bytes) -> ServerCert:
    cert_file = directory / f"{kind}-cert.pem"
    key_file = directory / f"{kind}-key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    # Only the servers (started by this same user, or by root) read the key.
    key_file.chmod(0o600)
    return ServerCert(
        kind=kind, cert_file=cert_file, key_file=key_file, cert_pem=cert_pem.decode("ascii")
    )
