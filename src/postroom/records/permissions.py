"""Who may see and change records. Every view, API call and CLI command asks here.

A record belongs to the account its mail came in by: reading that account
lets a user read the record, sending from it lets them change and answer it.
The owner of a record may always do both; records with no account (made by
hand without one) are for their owner and for users with the Django
permission ``records.change_record``.
"""

from __future__ import annotations

from typing import cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet

from postroom.accounts.models import Right
from postroom.accounts.permissions import accounts_for
from postroom.records.models import Contact, Record

UserLike = AbstractBaseUser | AnonymousUser


def _records(subject: UserLike, right: Right) -> QuerySet[Record]:
    # Postroom uses Django's default user model, which has permissions.
    user = subject if isinstance(subject, AnonymousUser) else cast(User, subject)
    if not user.is_authenticated or not user.is_active:
        return Record.objects.none()
    if getattr(user, "is_superuser", False):
        return Record.objects.all()
    q = Q(owner_id=user.pk) | Q(account__in=accounts_for(user, right))
    if user.has_perm("records.change_record"):
        q |= Q(account__isnull=True)
    return Record.objects.filter(q)


def records_for(user: UserLike) -> QuerySet[Record]:
    """Records ``user`` may read."""
    return _records(user, Right.READ)


def writable_records(user: UserLike) -> QuerySet[Record]:
    """Records ``user`` may change, reply to and link mail to."""
    return _records(user, Right.SEND)


def can_read_record(user: UserLike, record: Record) -> bool:
    return records_for(user).filter(pk=record.pk).exists()


def can_write_record(user: UserLike, record: Record) -> bool:
    return writable_records(user).filter(pk=record.pk).exists()


def can_manage_record_types(subject: UserLike) -> bool:
    user = subject if isinstance(subject, AnonymousUser) else cast(User, subject)
    return bool(user.is_active and user.has_perm("records.change_recordtype"))


def contacts_for(subject: UserLike) -> QuerySet[Contact]:
    """Contacts ``user`` may see: on a record they read, or made from mail of an account they read.

    A contact holds a customer's address and name, so it is as private as the
    mail it came from; users with ``records.view_contact`` see every contact.
    """
    user = subject if isinstance(subject, AnonymousUser) else cast(User, subject)
    if not user.is_authenticated or not user.is_active:
        return Contact.objects.none()
    if getattr(user, "is_superuser", False) or user.has_perm("records.view_contact"):
        return Contact.objects.all()
    return Contact.objects.filter(
        Q(pk__in=records_for(user).filter(contact__isnull=False).values("contact_id"))
        | Q(created_from__in=accounts_for(user, Right.READ))
    )


def can_write_contact(subject: UserLike, contact: Contact) -> bool:
    """Change a contact's name: on a record the user may change, or made from an account they send from."""
    user = subject if isinstance(subject, AnonymousUser) else cast(User, subject)
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False) or user.has_perm("records.change_contact"):
        return True
    if writable_records(user).filter(contact=contact).exists():
        return True
    return (
        contact.created_from_id is not None
        and accounts_for(user, Right.SEND).filter(pk=contact.created_from_id).exists()
    )
