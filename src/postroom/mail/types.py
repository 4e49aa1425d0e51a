"""Typed settings passed into the protocol layer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Security(enum.StrEnum):
    """How a connection is protected."""

    SSL = "ssl"  # implicit TLS from the first byte (IMAPS 993, POP3S 995, SMTPS 465)
    STARTTLS = "starttls"  # plain connection upgraded before login
    NONE = "none"  # no TLS at all; login only if the admin explicitly allowed it


class Protocol(enum.StrEnum):
    IMAP = "imap"
    POP3 = "pop3"
    SMTP = "smtp"


@dataclass(frozen=True)
class TLSPolicy:
    """Certificate checking for one server.

    Verification is on unless the admin turned it off explicitly (A12);
    ``ca_pem`` lets a self-hosted server's private CA be trusted without
    turning verification off.
    """

    verify: bool = True
    ca_pem: str | None = None


@dataclass(frozen=True)
class Endpoint:
    protocol: Protocol
    host: str
    port: int
    security: Security
    tls: TLSPolicy = field(default_factory=TLSPolicy)
    timeout: float = 15.0
    # Sending a password over an unencrypted connection needs an explicit yes.
    allow_plaintext_login: bool = False
    # Local address to connect from; tests use it to look "remote" to Dovecot.
    source_address: str | None = None


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    # A8: some legacy servers only accept ASCII passwords; refuse early instead
    # of sending bytes the server will mangle.
    ascii_only: bool = False


@dataclass(frozen=True)
class IncomingCheck:
    endpoint: Endpoint
    credentials: Credentials
    folders: tuple[str, ...] = ("INBOX",)


@dataclass(frozen=True)
class OutgoingCheck:
    endpoint: Endpoint
    credentials: Credentials | None  # None: the relay trusts our address (C2)
    mail_from: str
    rcpt_to: str
