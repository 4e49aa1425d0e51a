from postroom.accounts.models.access import AccountAccess, Right
from postroom.accounts.models.accounts import EmailAccount
from postroom.accounts.models.choices import (
    IncomingProtocol,
    OutgoingCharset,
    OutgoingTransport,
    SecurityChoice,
    SyncOption,
)
from postroom.accounts.models.domains import EmailDomain

__all__ = [
    "AccountAccess",
    "EmailAccount",
    "EmailDomain",
    "IncomingProtocol",
    "OutgoingCharset",
    "OutgoingTransport",
    "Right",
    "SecurityChoice",
    "SyncOption",
]
