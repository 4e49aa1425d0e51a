from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class MessageBlob(models.Model):
    """Raw bytes stored once, named by their SHA-256 (see postroom.incoming.blobs)."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256


class ParseState(models.TextChoices):
    # Headers parsed: the message is stored, threaded and findable.
    HEADERS = "headers", _("Stored")
    # Bodies and attachments extracted too.
    COMPLETE = "complete", _("Complete")
    # Could not be parsed: kept raw, shown in quarantine, re-processed after a fix.
    QUARANTINED = "quarantined", _("Quarantined")


class Thread(models.Model):
    account = models.ForeignKey(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="threads"
    )
    subject = models.TextField(blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True, db_index=True)
    message_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-last_message_at", "-id"]

    def __str__(self) -> str:
        return self.subject


class Message(models.Model):
    """One message of one account, however many folders it sits in."""

    account = models.ForeignKey(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="messages"
    )
    blob = models.ForeignKey(MessageBlob, on_delete=models.PROTECT, related_name="messages")
    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    message_id = models.CharField(max_length=998, blank=True, db_index=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.JSONField(default=list, blank=True)
    subject = models.TextField(blank=True)
    from_name = models.CharField(max_length=300, blank=True)
    from_email = models.CharField(max_length=320, blank=True, db_index=True)
    to = models.JSONField(default=list, blank=True)
    cc = models.JSONField(default=list, blank=True)
    date = models.DateTimeField(null=True, blank=True, db_index=True)
    size = models.BigIntegerField()

    seen = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    answered = models.BooleanField(default=False)

    parse_state = models.CharField(
        max_length=12, choices=ParseState.choices, default=ParseState.HEADERS, db_index=True
    )
    parse_error = models.TextField(blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)  # as received; sanitised when shown
    has_attachments = models.BooleanField(default=False)
    # B2: attachments over the account's limit, recorded instead of stored.
    dropped_attachments = models.JSONField(default=list, blank=True)
    allow_remote_images = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-date", "-id"]
        constraints = [
            # B14: the same bytes in two folders are one message with two locations.
            models.UniqueConstraint(fields=["account", "blob"], name="one_message_per_blob"),
        ]

    def __str__(self) -> str:
        return self.subject or self.message_id


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    blob = models.ForeignKey(MessageBlob, null=True, blank=True, on_delete=models.PROTECT)
    filename = models.CharField(max_length=500, blank=True)
    content_type = models.CharField(max_length=200)
    content_id = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField()
    inline = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.filename or self.content_type
