"""Real servers for protocol tests: a private CA, Dovecot, aiosmtpd SMTP and plain sockets.

The pytest fixtures live in :mod:`tests.servers.fixtures`; load them from ``tests/conftest.py``
with ``pytest_plugins = ["tests.servers.fixtures"]``.
"""

from .certs import CERT_KINDS, CertKind, CertSet, ServerCert, make_cert_set
from .dovecot import Dovecot, DovecotError, DovecotUser, MailOwner, mail_owner
from .smtp import AuthAttempt, ReceivedMessage, SmtpMode, SmtpServer
from .sockets import LOOPBACK, ClosedPort, SilentServer, free_port, free_ports

__all__ = [
    "CERT_KINDS",
    "LOOPBACK",
    "AuthAttempt",
    "CertKind",
    "CertSet",
    "ClosedPort",
    "Dovecot",
    "DovecotError",
    "DovecotUser",
    "MailOwner",
    "ReceivedMessage",
    "ServerCert",
    "SilentServer",
    "SmtpMode",
    "SmtpServer",
    "free_port",
    "free_ports",
    "mail_owner",
    "make_cert_set",
]
