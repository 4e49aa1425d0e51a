from postroom.accounts.models.access import AccountAccess, Right
from postroom.accounts.models.accounts import EmailAccount
from postroom.accounts.models.choices import IncomingProtocol, SecurityChoice, SyncOption
from postroom.accounts.models.domains import EmailDomain

__all__ = [
    "AccountAccess",
    "EmailAccount",
    "EmailDomain",
    "IncomingProtocol",
    "Right",
    "SecurityChoice",
    "SyncOption",
]
