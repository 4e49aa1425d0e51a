"""State changes of the core app: event log, API tokens, site settings, key rotation."""

from __future__ import annotations

import hashlib
import logging
import secrets as pysecrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.core import secrets
from postroom.core.models import ApiToken, Event, EventLevel, SiteSettings

if TYPE_CHECKING:
    from postroom.accounts.models import EmailAccount

logger = logging.getLogger("postroom.events")

TOKEN_PREFIX = "pr_"  # noqa: S105 -- a public marker, not a secret


def do_log_event(
    *,
    kind: str,
    message: str,
    level: str = EventLevel.INFO,
    account: EmailAccount | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Write one event-log row and the same line to the log. Never pass secrets here."""
    event = Event.objects.create(
        kind=kind, level=level, account=account, message=message, data=data or {}
    )
    log_level = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}[level]
    logger.log(log_level, "%s account=%s %s", kind, getattr(account, "pk", None), message)
    return event


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def do_create_api_token(user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and never stored."""
    raw = TOKEN_PREFIX + pysecrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user_id=user.pk, name=name, prefix=raw[: len(TOKEN_PREFIX) + 6], key_hash=hash_token(raw)
    )
    do_log_event(
        kind="token.created",
        message=_("API token %(name)s created for %(user)s.")
        % {"name": name, "user": user.get_username()},
    )
    return token, raw


def do_revoke_api_token(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        do_log_event(
            kind="token.revoked",
            message=_("API token %(name)s revoked.") % {"name": token.name},
        )


LAST_USED_PRECISION = timedelta(minutes=1)


def authenticate_token(raw: str) -> ApiToken | None:
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is not None:
        now = timezone.now()
        # "Last used" is for people deciding which tokens to revoke: minute
        # precision is plenty, and a client polling the API must not turn
        # every read into a write that competes with sync for the database.
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
    return token


def do_update_site_settings(*, allow_pop3_for_new_accounts: bool) -> SiteSettings:
    site = SiteSettings.load()
    site.allow_pop3_for_new_accounts = allow_pop3_for_new_accounts
    site.save()
    do_log_event(kind="site.updated", message=_("Site settings changed."))
    return site


# (model label, encrypted field names) for every secret stored at rest.
ENCRYPTED_FIELDS: list[tuple[str, tuple[str, ...]]] = [
    ("accounts.EmailAccount", ("password_encrypted", "smtp_password_encrypted")),
    ("webhooks.WebhookSubscription", ("secret_encrypted",)),
]


def do_rotate_encryption_key() -> tuple[int, str]:
    """Re-encrypt every stored secret with a new key; returns (rows rewritten, new key).

    The new key is written first (alongside the old ones) so a crash at any
    point leaves every secret readable; old keys are dropped only after all
    rows are re-encrypted. With keys from the environment the caller must
    publish the new key list itself.
    """
    from cryptography.fernet import Fernet, MultiFernet
    from django.apps import apps

    old_keys = secrets.current_keys()
    new = secrets.new_key()
    keys = [new, *old_keys]
    from_env = secrets.keys_are_from_env()
    if not from_env:
        secrets.write_key_file(keys)
    fernet = MultiFernet([Fernet(k.encode()) for k in keys])
    count = 0
    with transaction.atomic():
        for label, fields in ENCRYPTED_FIELDS:
            model = apps.get_model(label)
            for row in model.objects.select_for_update().only("pk", *fields):
                for field in fields:
                    setattr(row, field, secrets.rotate_token(getattr(row, field), fernet))
                row.save(update_fields=list(fields))
                count += 1
    if not from_env:
        secrets.write_key_file([new])
    do_log_event(kind="secrets.rotated", message=_("Encryption key rotated."))
    return count, new
