"""The only code that changes webhook subscriptions and their deliveries (F3).

Views, the API and the CLI validate (``postroom.webhooks.forms``) and check
permissions (``postroom.webhooks.permissions``), then call these. Secrets are
stored encrypted (``postroom.core.secrets``); the plain secret is returned
once, by create and rotate, and never logged.
"""

from __future__ import annotations

import secrets as pysecrets
import uuid
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount
from postroom.core import secrets
from postroom.core.actions import do_log_event
from postroom.webhooks.emit import deliveries_changed
from postroom.webhooks.models import (
    DeliveryState,
    EventType,
    WebhookDelivery,
    WebhookSubscription,
)

Actor = AbstractBaseUser | AnonymousUser | None

SECRET_PREFIX = "whsec_"  # noqa: S105 -- a public marker, not a secret

_UNSET: Any = object()


class WebhookError(Exception):
    """The request was refused; ``str(exc)`` says why in the user's language."""


def _actor_name(actor: Actor) -> str | None:
    return getattr(actor, "username", None)


def new_secret() -> str:
    return SECRET_PREFIX + pysecrets.token_urlsafe(32)


def _event_types(values: Sequence[str]) -> list[str]:
    known = set(EventType.values) - {EventType.TEST}
    unknown = sorted(set(values) - known)
    if unknown:
        raise WebhookError(_("Unknown event type(s): %(list)s.") % {"list": ", ".join(unknown)})
    return [value for value in EventType.values if value in set(values)]


def do_create_subscription(
    *,
    actor: Actor,
    name: str,
    url: str,
    event_types: Sequence[str],
    account: EmailAccount | None = None,
    active: bool = True,
) -> tuple[WebhookSubscription, str]:
    """Create a subscription; returns it and its secret, which is never shown again."""
    secret = new_secret()
    with transaction.atomic():
        subscription = WebhookSubscription.objects.create(
            name=name,
            url=url,
            secret_encrypted=secrets.encrypt(secret),
            event_types=_event_types(event_types),
            account=account,
            active=active,
            created_by_id=actor.pk if isinstance(actor, AbstractBaseUser) else None,
        )
        do_log_event(
            kind="webhook.created",
            account=account,
            message=_("Webhook %(name)s created for %(url)s.") % {"name": name, "url": url},
            data={"subscription": subscription.pk, "actor": _actor_name(actor)},
        )
    return subscription, secret


def do_update_subscription(
    subscription: WebhookSubscription,
    *,
    actor: Actor,
    name: str = _UNSET,
    url: str = _UNSET,
    event_types: Sequence[str] = _UNSET,
    account: EmailAccount | None = _UNSET,
    active: bool = _UNSET,
) -> WebhookSubscription:
    """Change what is given. Pending deliveries keep their URL-independent payloads and
    go to the new URL."""
    changes: dict[str, Any] = {}
    if name is not _UNSET:
        changes["name"] = name
    if url is not _UNSET:
        changes["url"] = url
    if event_types is not _UNSET:
        changes["event_types"] = _event_types(event_types)
    if account is not _UNSET:
        changes["account"] = account
    if active is not _UNSET:
        changes["active"] = active
    changes = {k: v for k, v in changes.items() if getattr(subscription, k) != v}
    if not changes:
        return subscription
    with transaction.atomic():
        for field, value in changes.items():
            setattr(subscription, field, value)
        subscription.save(update_fields=list(changes))
        do_log_event(
            kind="webhook.updated",
            account=subscription.account,
            message=_("Webhook %(name)s changed: %(fields)s")
            % {"name": subscription.name, "fields": ", ".join(sorted(changes))},
            data={
                "subscription": subscription.pk,
                "changed": sorted(changes),
                "actor": _actor_name(actor),
            },
        )
    if changes.get("active"):
        transaction.on_commit(deliveries_changed.set)
    return subscription


def do_delete_subscription(subscription: WebhookSubscription, *, actor: Actor) -> None:
    """Delete the subscription with its deliveries and their log."""
    with transaction.atomic():
        do_log_event(
            kind="webhook.deleted",
            account=subscription.account,
            message=_("Webhook %(name)s deleted.") % {"name": subscription.name},
            data={"subscription": subscription.pk, "actor": _actor_name(actor)},
        )
        subscription.delete()


def do_rotate_secret(subscription: WebhookSubscription, *, actor: Actor) -> str:
    """A new secret, effective for every attempt from now on; returns it (shown once)."""
    secret = new_secret()
    with transaction.atomic():
        subscription.secret_encrypted = secrets.encrypt(secret)
        subscription.save(update_fields=["secret_encrypted"])
        do_log_event(
            kind="webhook.secret_rotated",
            account=subscription.account,
            message=_("Webhook %(name)s has a new secret.") % {"name": subscription.name},
            data={"subscription": subscription.pk, "actor": _actor_name(actor)},
        )
    return secret


def do_send_test(subscription: WebhookSubscription, *, actor: Actor) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for this subscription only (it need not ask for it)."""
    if not subscription.active:
        raise WebhookError(_("The webhook is switched off; switch it on to send a test."))
    now = timezone.now()
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": str(EventType.TEST),
        "created_at": now.isoformat(),
        "data": {
            "subscription": {"id": subscription.pk, "name": subscription.name},
            "requested_by": _actor_name(actor),
        },
    }
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            subscription=subscription,
            event_id=event_id,
            event_type=str(EventType.TEST),
            payload=payload,
            ordering_key="",
            next_attempt_at=now,
        )
        do_log_event(
            kind="webhook.test",
            account=subscription.account,
            message=_("Test delivery queued for webhook %(name)s.") % {"name": subscription.name},
            data={
                "subscription": subscription.pk,
                "delivery": delivery.pk,
                "actor": _actor_name(actor),
            },
        )
        transaction.on_commit(deliveries_changed.set)
    return delivery


def do_redeliver(delivery: WebhookDelivery, *, actor: Actor) -> WebhookDelivery:
    """Send a failed delivery again: pending now, its maximum age counted afresh."""
    now = timezone.now()
    with transaction.atomic():
        updated = WebhookDelivery.objects.filter(pk=delivery.pk, state=DeliveryState.FAILED).update(
            state=DeliveryState.PENDING,
            attempts=0,
            next_attempt_at=now,
            requeued_at=now,
            lease_holder="",
            lease_expires_at=None,
        )
        if not updated:
            raise WebhookError(_("Only a delivery that was given up can be sent again."))
        subscription = delivery.subscription
        do_log_event(
            kind="webhook.redeliver",
            account=subscription.account,
            message=_("Webhook %(name)s: a %(event)s delivery will be sent again.")
            % {"name": subscription.name, "event": delivery.event_type},
            data={
                "subscription": subscription.pk,
                "delivery": delivery.pk,
                "actor": _actor_name(actor),
            },
        )
        transaction.on_commit(deliveries_changed.set)
    delivery.refresh_from_db()
    return delivery
