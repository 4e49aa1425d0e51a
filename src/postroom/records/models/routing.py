"""Per-account routing settings and the ledger of what routing did.

A message is routed once: :class:`RoutedMessage` is written in the same
transaction as the record, link, auto-reply and webhook rows it caused, so a
process killed half-way routes the message again from scratch and never twice.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from postroom.records.models.records import Record, RecordType


class RoutingSettings(models.Model):
    """What an account does with its incoming mail beyond storing it."""

    account = models.OneToOneField(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="routing"
    )
    create_contacts = models.BooleanField(_("create contacts from incoming mail"), default=False)
    # Replies to mail sent from a record go to account+REFERENCE@domain, so a
    # reply that lost In-Reply-To and References still finds its record (B9).
    plus_address_replies = models.BooleanField(
        _("Reply-To carries the record reference (plus-address)"),
        default=False,
        help_text=_("Only when the mail server delivers address+tag@ to the account."),
    )

    auto_reply_enabled = models.BooleanField(_("auto-reply"), default=False)
    auto_reply_subject = models.CharField(_("auto-reply subject"), max_length=300, blank=True)
    auto_reply_text = models.TextField(_("auto-reply text"), blank=True)
    auto_reply_starts_at = models.DateTimeField(_("auto-reply from"), null=True, blank=True)
    auto_reply_ends_at = models.DateTimeField(_("auto-reply until"), null=True, blank=True)
    auto_reply_interval_days = models.PositiveIntegerField(
        _("auto-reply at most once per sender every (days)"), default=4
    )

    unreplied_after_minutes = models.PositiveIntegerField(
        _("notify when unreplied after (minutes)"), null=True, blank=True
    )
    unreplied_notify = models.JSONField(
        _("addresses to notify when unreplied"), default=list, blank=True
    )
    # When "notify when unreplied" was switched on: mail that arrived earlier
    # (a first sync of old mail, say) never counts as unreplied (B11).
    unreplied_since = models.DateTimeField(null=True, blank=True, editable=False)

    loop_limit = models.PositiveIntegerField(_("most records from one sender"), default=10)
    loop_window_minutes = models.PositiveIntegerField(_("within (minutes)"), default=60)

    class Meta:
        verbose_name = _("routing settings")

    def __str__(self) -> str:
        return f"routing of {self.account_id}"


class AppendTo(models.Model):
    """B7: mail arriving in ``folder`` of ``account`` creates a ``record_type`` record.

    An empty folder means every synced folder without a row of its own.
    """

    account = models.ForeignKey(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="append_to"
    )
    folder = models.CharField(_("folder"), max_length=500, blank=True)
    record_type = models.ForeignKey(
        RecordType, on_delete=models.CASCADE, related_name="+", verbose_name=_("record type")
    )

    class Meta:
        ordering = ["account", "folder"]
        constraints = [
            models.UniqueConstraint(fields=["account", "folder"], name="one_append_to_per_folder")
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.folder or '*'} -> {self.record_type_id}"


class RuleMatch(models.TextChoices):
    ALL = "all", _("all conditions")
    ANY = "any", _("any condition")


class Rule(models.Model):
    """B12: an ordered filter on incoming mail; see ``postroom.records.rules``."""

    account = models.ForeignKey(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="rules"
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    name = models.CharField(_("name"), max_length=200)
    enabled = models.BooleanField(_("enabled"), default=True)
    match = models.CharField(
        _("match"), max_length=3, choices=RuleMatch.choices, default=RuleMatch.ALL
    )
    conditions = models.JSONField(_("conditions"), default=list)
    actions = models.JSONField(_("actions"), default=list)

    class Meta:
        ordering = ["account", "position", "id"]
        verbose_name = _("rule")
        verbose_name_plural = _("rules")

    def __str__(self) -> str:
        return self.name


class RouteOutcome(models.TextChoices):
    LINKED = "linked", _("Linked to an existing record")
    CREATED = "created", _("Created a record")
    SKIPPED = "skipped", _("Skipped by a rule")
    HELD = "held", _("Held: too many records from this sender")
    LOOP = "loop", _("Automatic mail: no record created")
    NONE = "none", _("Nothing to do")
    RELEASED = "released", _("Released after being held")
    # Routing raised: shown with its error; routed again by "re-route".
    ERROR = "error", _("Routing failed")


class RoutedMessage(models.Model):
    """The routing ledger: one row per message, written with what routing did."""

    message = models.OneToOneField(
        "incoming.Message", on_delete=models.CASCADE, primary_key=True, related_name="routing"
    )
    outcome = models.CharField(max_length=10, choices=RouteOutcome.choices)
    record = models.ForeignKey(
        Record, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.TextField(blank=True)
    labels = models.JSONField(default=list, blank=True)
    sender = models.CharField(max_length=320, blank=True, db_index=True)
    routed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.message_id}: {self.outcome}"


class AutoReplyLog(models.Model):
    """A20: when an account last auto-replied to an address (at most once per interval)."""

    account = models.ForeignKey("accounts.EmailAccount", on_delete=models.CASCADE, related_name="+")
    address = models.CharField(max_length=320)
    last_sent_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "address"], name="one_auto_reply_log_per_address"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.address}"


class UnrepliedNotice(models.Model):
    """B11: a thread whose "unreplied" notification went out (once per thread)."""

    thread = models.OneToOneField(
        "incoming.Thread", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    notified_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"thread {self.thread_id}"


class RoutingCursor(models.Model):
    """Where routing of an account resumes: no message below ``next_pk`` waits for it.

    Keeps the "anything to route?" question cheap on a mailbox of any size:
    only messages at or above the cursor are looked at. Re-routing older
    messages moves the cursor back (``postroom.records.routing.do_reroute``).
    """

    account = models.OneToOneField(
        "accounts.EmailAccount", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    next_pk = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.account_id} from {self.next_pk}"
