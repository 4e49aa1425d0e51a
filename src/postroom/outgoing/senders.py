"""Who a message is from (C8, A10): the header From, its display name, Reply-To.

Per account:

* "always use the account address as sender" (or a sender with no address
  of their own, such as the CLI or an API token's user without an email):
  From is the account's address;
* otherwise From is the sending user, and Reply-To is the default incoming
  account (else this account, when it receives mail) so that replies come
  back through incoming sync;
* the display name is the account's sender name (or its name) when the
  account says "always use the account name as sender name", or when From
  is the account; otherwise the user's full name.

A ``Sender:`` header names the account whenever From is somebody else
(RFC 5322 section 3.6.2): the mailbox that actually sent it.

The envelope sender (MAIL FROM) is always the account's own address, or its
VERP form; see :mod:`postroom.outgoing.actions`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

from postroom.accounts.models import EmailAccount


@dataclass(frozen=True)
class SenderIdentity:
    from_address: str
    from_name: str
    reply_to: tuple[str, ...]
    sender: str | None  # the Sender: header, when From is not the account


def _user_email(actor: AbstractBaseUser | AnonymousUser | None) -> str:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return ""
    return str(getattr(actor, "email", "") or "").strip()


def _user_name(actor: AbstractBaseUser | AnonymousUser | None) -> str:
    get_full_name = getattr(actor, "get_full_name", None)
    return str(get_full_name() or "").strip() if callable(get_full_name) else ""


def _account_name(account: EmailAccount) -> str:
    """The account's display name: its sender name, else its name unless that is the address."""
    if account.sender_name:
        return account.sender_name
    return "" if account.name.lower() == account.email.lower() else account.name


def default_reply_to(account: EmailAccount) -> str | None:
    """Where replies to a user's mail should go: the default incoming account."""
    default = (
        EmailAccount.objects.filter(default_incoming=True, incoming_enabled=True)
        .values_list("email", flat=True)
        .first()
    )
    if default:
        return str(default)
    return account.email if account.incoming_enabled else None


def sender_identity(
    account: EmailAccount,
    actor: AbstractBaseUser | AnonymousUser | None,
    *,
    reply_to: tuple[str, ...] | None = None,
) -> SenderIdentity:
    """The From, display name and Reply-To of a message ``actor`` sends from ``account``.

    ``reply_to`` given by the caller wins over the rule's.
    """
    user_email = _user_email(actor)
    as_account = account.always_use_account_email_as_sender or not user_email
    if as_account or user_email.lower() == account.email.lower():
        address = account.email
        name = _account_name(account)
        rule_reply_to: tuple[str, ...] = ()
        sender = None
    else:
        address = user_email
        name = _account_name(account) if account.always_use_account_name_as_sender else ""
        name = name or _user_name(actor)
        default = default_reply_to(account)
        rule_reply_to = (default,) if default else ()
        sender = account.email
    return SenderIdentity(
        from_address=address,
        from_name=name,
        reply_to=tuple(reply_to) if reply_to is not None else rule_reply_to,
        sender=sender,
    )
