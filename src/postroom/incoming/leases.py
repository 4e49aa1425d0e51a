"""Leases: at most one watcher syncs an account at a time (database-enforced).

A lease is a row per account with a holder and an expiry. Taking it is one
conditional UPDATE (free, expired, or already ours) or one INSERT that the
primary key makes exclusive, so two watchers on one PostgreSQL can never both
win. Holders renew by heartbeat; a dead holder's lease simply expires.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from postroom.incoming.models import SyncLease


def lease_seconds() -> int:
    return int(settings.POSTROOM_LEASE_SECONDS)


def try_acquire(account_id: int, holder: str, seconds: int | None = None) -> bool:
    seconds = seconds or lease_seconds()
    now = timezone.now()
    expires = now + timedelta(seconds=seconds)
    taken = (
        SyncLease.objects.filter(account_id=account_id)
        .filter(Q(expires_at__lt=now) | Q(holder=holder))
        .update(holder=holder, expires_at=expires, heartbeat_at=now)
    )
    if taken:
        return True
    try:
        with transaction.atomic():
            SyncLease.objects.create(
                account_id=account_id, holder=holder, expires_at=expires, heartbeat_at=now
            )
    except IntegrityError:
        return False
    return True


def renew(account_id: int, holder: str, seconds: int | None = None) -> bool:
    """Extend our lease; False means it was lost (expired and taken by another)."""
    seconds = seconds or lease_seconds()
    now = timezone.now()
    return bool(
        SyncLease.objects.filter(account_id=account_id, holder=holder).update(
            expires_at=now + timedelta(seconds=seconds), heartbeat_at=now
        )
    )


def release(account_id: int, holder: str) -> None:
    SyncLease.objects.filter(account_id=account_id, holder=holder).delete()


def current_holder(account_id: int) -> str | None:
    lease = SyncLease.objects.filter(account_id=account_id, expires_at__gte=timezone.now()).first()
    return lease.holder if lease else None
