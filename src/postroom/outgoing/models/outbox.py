from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ItemState(models.TextChoices):
    """Where an outbox item is as a whole; the truth per recipient is on OutboxRecipient."""

    QUEUED = "queued", _("Queued")  # waiting for its first attempt (or its send-at time)
    SENDING = "sending", _("Sending")  # claimed by a worker
    DEFERRED = "deferred", _("Deferred")  # a recipient waits for a retry
    SENT = "sent", _("Sent")  # every recipient accepted
    PARTIAL = "partial", _("Partly failed")  # final: some accepted, some failed or bounced
    FAILED = "failed", _("Failed")  # final: no recipient accepted (or all bounced)
    CANCELLED = "cancelled", pgettext_lazy("delivery state", "Cancelled")


# States with recipients still to be attempted.
PENDING_ITEM_STATES = (ItemState.QUEUED, ItemState.SENDING, ItemState.DEFERRED)


class RecipientStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DEFERRED = "deferred", _("Deferred")
    FAILED = "failed", _("Failed")
    BOUNCED = "bounced", _("Bounced")
    CANCELLED = "cancelled", pgettext_lazy("delivery state", "Cancelled")


# Still to be attempted: a "sending" left by a dead worker is attempted again.
PENDING_RECIPIENT_STATUSES = (
    RecipientStatus.QUEUED,
    RecipientStatus.SENDING,
    RecipientStatus.DEFERRED,
)
FINAL_RECIPIENT_STATUSES = (
    RecipientStatus.SENT,
    RecipientStatus.FAILED,
    RecipientStatus.BOUNCED,
    RecipientStatus.CANCELLED,
)


class RecipientKind(models.TextChoices):
    TO = "to", _("To")
    CC = "cc", _("Cc")
    BCC = "bcc", _("Bcc")
    ACCOUNT_BCC = "account_bcc", _("Account BCC")


class WaitReason(models.TextChoices):
    """Why a due-looking item is not being sent right now (shown to the user)."""

    NONE = "", _("—")
    SCHEDULED = "scheduled", _("Scheduled")
    BACKOFF = "backoff", _("Waiting to retry")
    RATE_MINUTE = "rate_minute", _("Per-minute limit reached")
    RATE_HOUR = "rate_hour", _("Per-hour limit reached")
    RATE_DAY = "rate_day", _("Per-day limit reached")
    ACCOUNT = "account", _("Account cannot send")


class SentCopyState(models.TextChoices):
    NOT_WANTED = "", _("Not wanted")
    PENDING = "pending", _("Pending")
    DONE = "done", _("Filed")
    FAILED = "failed", _("Failed")


class OutboxItem(models.Model):
    """One message to send: its MIME built once, stored content-addressed.

    ``next_attempt_at`` is set while there is work to do (delivery, or the
    Sent copy) and NULL once there is none; workers claim items whose time
    has come by writing ``lease_holder``/``lease_expires_at``.
    """

    account = models.ForeignKey(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="outbox_items"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="outbox_items",
    )
    blob = models.ForeignKey(
        "incoming.MessageBlob", on_delete=models.PROTECT, related_name="outbox_items"
    )
    size = models.BigIntegerField()
    # Without angle brackets, like incoming Message.message_id.
    message_id = models.CharField(max_length=250, unique=True)
    verp_token = models.CharField(max_length=32, unique=True)
    mail_from = models.CharField(max_length=320)  # the envelope sender (MAIL FROM)
    from_header = models.CharField(max_length=400)
    subject = models.TextField(blank=True)
    charset = models.CharField(max_length=20)
    needs_smtputf8 = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=200, blank=True)

    state = models.CharField(
        max_length=10, choices=ItemState.choices, default=ItemState.QUEUED, db_index=True
    )
    priority = models.SmallIntegerField(default=0)
    send_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()  # deferred recipients fail after this (max age)
    wait_reason = models.CharField(
        max_length=12, choices=WaitReason.choices, default=WaitReason.NONE, blank=True
    )
    wait_detail = models.TextField(blank=True)
    deferrals = models.PositiveIntegerField(default=0)  # drives the back-off
    attempt_count = models.PositiveIntegerField(default=0)

    lease_holder = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    sent_copy = models.CharField(
        max_length=8, choices=SentCopyState.choices, default=SentCopyState.NOT_WANTED, blank=True
    )
    sent_copy_error = models.TextField(blank=True)
    sent_copy_attempts = models.PositiveSmallIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("outbox item")
        verbose_name_plural = _("outbox items")
        indexes = [
            # The claim query: due work, most important first.
            models.Index(fields=["next_attempt_at", "priority"], name="outbox_due"),
            models.Index(fields=["account", "state"], name="outbox_account_state"),
        ]
        constraints = [
            # The same Idempotency-Key never queues twice for an account.
            models.UniqueConstraint(
                fields=["account", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="outbox_one_item_per_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.message_id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state not in PENDING_ITEM_STATES


class OutboxRecipient(models.Model):
    """One envelope recipient of an item and how its delivery stands."""

    item = models.ForeignKey(OutboxItem, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=320)
    kind = models.CharField(max_length=12, choices=RecipientKind.choices)
    status = models.CharField(
        max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.QUEUED
    )
    # The server's last word about this recipient ("250 2.0.0 OK", "550 5.1.1 ...")
    # or, for errors without a reply, what went wrong.
    code = models.PositiveSmallIntegerField(null=True, blank=True)
    reply = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    bounce_status = models.CharField(max_length=20, blank=True)  # RFC 3464 status, e.g. 5.1.1
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "address"], name="outbox_one_row_per_recipient")
        ]
        indexes = [models.Index(fields=["address"], name="outbox_recipient_address")]

    def __str__(self) -> str:
        return f"{self.address}: {self.status}"


class AttemptOutcome(models.TextChoices):
    IN_PROGRESS = "", _("In progress")
    SENT = "sent", _("Sent")
    PARTIAL = "partial", _("Partly accepted")
    DEFERRED = "deferred", _("Deferred")
    FAILED = "failed", _("Failed")
    INTERRUPTED = "interrupted", _("Interrupted")


class DeliveryAttempt(models.Model):
    """One try at handing an item to the server, with what the server said."""

    item = models.ForeignKey(OutboxItem, on_delete=models.CASCADE, related_name="attempts")
    # Denormalised for the rate-limit counts (per account, per window).
    account = models.ForeignKey(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="delivery_attempts"
    )
    worker = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=12, choices=AttemptOutcome.choices, default=AttemptOutcome.IN_PROGRESS
    )
    # [{"address", "status", "code", "reply"}] for every recipient in this attempt.
    recipients = models.JSONField(default=list, blank=True)
    data_code = models.PositiveSmallIntegerField(null=True, blank=True)
    data_reply = models.TextField(blank=True)
    error = models.TextField(blank=True)  # a connection-level failure, in words

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["account", "started_at"], name="outbox_attempt_rate")]

    def __str__(self) -> str:
        return f"{self.item_id} at {self.started_at}: {self.outcome or 'in progress'}"


class SuppressionSource(models.TextChoices):
    BOUNCE = "bounce", _("Hard bounce")
    MANUAL = "manual", _("Added by hand")


class Suppression(models.Model):
    """An address the queue will not send to (C15); editable in the UI."""

    address = models.CharField(max_length=320, unique=True)  # normalised, see suppression_key
    source = models.CharField(max_length=8, choices=SuppressionSource.choices)
    reason = models.TextField(blank=True)
    item = models.ForeignKey(
        OutboxItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]
        verbose_name = _("suppressed address")
        verbose_name_plural = _("suppressed addresses")

    def __str__(self) -> str:
        return self.address


class WorkerHeartbeat(models.Model):
    """A running ``postroom worker`` (or the one inside ``postroom run``)."""

    worker_id = models.CharField(max_length=200, primary_key=True)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.worker_id
