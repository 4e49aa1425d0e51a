"""Webhook subscriptions and the durable queue of their deliveries (F3)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class EventType(models.TextChoices):
    MESSAGE_RECEIVED = "message.received", _("Message received")
    MESSAGE_SENT = "message.sent", _("Message sent")
    MESSAGE_FAILED = "message.failed", _("Message failed")
    MESSAGE_BOUNCED = "message.bounced", _("Message bounced")
    RECORD_CREATED = "record.created", _("Record created")
    RECORD_UPDATED = "record.updated", _("Record updated")
    ACCOUNT_STATE_CHANGED = "account.state_changed", _("Account state changed")
    TEST = "webhook.test", _("Test delivery")


class WebhookSubscription(models.Model):
    name = models.CharField(_("name"), max_length=200)
    url = models.URLField(_("URL"), max_length=2000)
    # Fernet ciphertext (postroom.core.secrets); the plain secret is shown once.
    secret_encrypted = models.TextField(editable=False)
    event_types = models.JSONField(_("events"), default=list)
    # None: events of every account (and those of no account); only users who
    # can read every account (superusers) may create or keep such a subscription.
    account = models.ForeignKey(
        "accounts.EmailAccount",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("only for account"),
    )
    active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")

    def __str__(self) -> str:
        return self.name


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Waiting")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Gave up")


class WebhookDelivery(models.Model):
    """One event for one subscription, written in the transaction of the change it reports.

    Deliveries with the same ``ordering_key`` (a record, an account) go out
    in ``id`` order: a later one waits while an earlier one is pending.
    """

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField(db_index=True)
    event_type = models.CharField(max_length=40, choices=EventType.choices)
    payload = models.JSONField()
    ordering_key = models.CharField(max_length=100, blank=True, db_index=True)
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    lease_holder = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # When a person sent a failed delivery again: its maximum age counts from then.
    requeued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(
                fields=["subscription", "ordering_key", "state"], name="webhook_delivery_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.subscription_id}"


class WebhookAttempt(models.Model):
    """The delivery log: every POST with its response code (or network error)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.status_code or self.error}"
