from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from postroom.incoming.models.messages import Message


class FolderState(models.Model):
    """What we know of one IMAP folder: enough to fetch only what is new."""

    account = models.ForeignKey(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="folder_states"
    )
    name = models.CharField(max_length=500)
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    uidnext = models.BigIntegerField(null=True, blank=True)
    highestmodseq = models.BigIntegerField(null=True, blank=True)
    # Highest UID whose message is durably stored; advanced in the same
    # transaction as the ledger rows it covers.
    last_uid = models.BigIntegerField(default=0)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="one_state_per_folder")
        ]

    def __str__(self) -> str:
        return self.name


class MessageLocation(models.Model):
    """The processed-mail ledger: one row per (folder, uidvalidity, uid), written
    only after the message it points to is durably stored."""

    folder = models.ForeignKey(FolderState, on_delete=models.CASCADE, related_name="locations")
    uidvalidity = models.BigIntegerField()
    uid = models.BigIntegerField()
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="locations")
    flags = models.JSONField(default=list, blank=True)
    modseq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["folder", "uidvalidity", "uid"], name="one_ledger_row_per_uid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.uidvalidity}:{self.uid}"


class Pop3Location(models.Model):
    """POP3 ledger (B6): the server's UIDL for each message we hold."""

    account = models.ForeignKey(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="pop3_locations"
    )
    uidl = models.CharField(max_length=70)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="pop3_locations")
    deleted_on_server = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "uidl"], name="one_pop3_row_per_uidl")
        ]

    def __str__(self) -> str:
        return self.uidl


class SyncState(models.TextChoices):
    IDLE = "idle", _("Idle")
    SYNCING = "syncing", _("Syncing")
    AUTH_ERROR = "auth_error", _("Authentication error")
    ERROR = "error", _("Error")
    DISABLED = "disabled", _("Disabled")


class SyncStatus(models.Model):
    """What the sync status page (E2) shows for an account."""

    account = models.OneToOneField(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="sync_status"
    )
    state = models.CharField(max_length=12, choices=SyncState.choices, default=SyncState.IDLE)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=40, blank=True)
    last_error_message = models.TextField(blank=True)
    consecutive_auth_failures = models.PositiveIntegerField(default=0)
    consecutive_errors = models.PositiveIntegerField(default=0)
    # Set by "sync now" (UI, API, CLI); the watcher holding the account runs a
    # pass as soon as it sees a request newer than its last run.
    sync_requested_at = models.DateTimeField(null=True, blank=True)
    last_run_started_at = models.DateTimeField(null=True, blank=True)
    # Fingerprint of the credentials that failed; auth_error lasts until they change.
    credentials_fingerprint = models.CharField(max_length=64, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.account_id}: {self.state}"


class SyncLease(models.Model):
    """Which watcher owns an account's sync; expires unless its heartbeat renews it."""

    account = models.OneToOneField(
        "accounts.EmailAccount",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="sync_lease",
    )
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField(db_index=True)
    heartbeat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.account_id} held by {self.holder}"
