"""Records (tickets, leads, applications, ...), their contacts and their timeline."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class RecordType(models.Model):
    """A kind of record: Issue, Lead, ... Admins add their own (B7).

    ``prefix`` makes the references people quote (ISSUE-42); ``next_number``
    is taken under a row lock so two workers never hand out the same one.
    """

    key = models.SlugField(_("key"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100, unique=True)
    prefix = models.CharField(
        _("reference prefix"),
        max_length=12,
        unique=True,
        help_text=_("Upper-case letters, as in ISSUE-42."),
    )
    statuses = models.JSONField(_("statuses"), default=list)
    closed_statuses = models.JSONField(_("closed statuses"), default=list, blank=True)
    builtin = models.BooleanField(default=False, editable=False)
    active = models.BooleanField(_("active"), default=True)
    next_number = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("record type")
        verbose_name_plural = _("record types")

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        # Built-in names are English in the database and translated on display.
        return gettext(self.name) if self.builtin else self.name

    @property
    def default_status(self) -> str:
        return self.statuses[0] if self.statuses else ""


class Contact(models.Model):
    """A person we exchange mail with; one row per address (B10)."""

    email = models.CharField(_("email address"), max_length=320, unique=True)
    name = models.CharField(_("name"), max_length=300, blank=True)
    created_from = models.ForeignKey(
        "accounts.EmailAccount",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created from account"),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["email"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


class RecordSource(models.TextChoices):
    APPEND_TO = "append_to", _("Incoming mail (append to)")
    MANUAL = "manual", _("Created by hand")
    API = "api", _("Created through the API")


class Record(models.Model):
    type = models.ForeignKey(
        RecordType, on_delete=models.PROTECT, related_name="records", verbose_name=_("type")
    )
    number = models.PositiveIntegerField()
    reference = models.CharField(_("reference"), max_length=40, unique=True)
    title = models.TextField(_("title"))
    status = models.CharField(_("status"), max_length=60)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_records",
        verbose_name=_("owner"),
    )
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="records",
        verbose_name=_("contact"),
    )
    # The account its mail came in by and goes out from.
    account = models.ForeignKey(
        "accounts.EmailAccount",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="records",
        verbose_name=_("account"),
    )
    fields = models.JSONField(_("fields"), default=dict, blank=True)
    source = models.CharField(
        max_length=20, choices=RecordSource.choices, default=RecordSource.MANUAL
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_activity_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        verbose_name = _("record")
        verbose_name_plural = _("records")
        constraints = [
            models.UniqueConstraint(fields=["type", "number"], name="one_number_per_type"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"


class LinkVia(models.TextChoices):
    """Why a message belongs to a record, shown on the timeline."""

    CREATED = "created", _("Created the record")
    REPLY = "reply", _("Reply (In-Reply-To / References)")
    TOKEN = "token", _("Reply (our Message-ID token)")
    PLUS_ADDRESS = "plus_address", _("Plus-address")
    SUBJECT_REFERENCE = "subject_reference", _("Reference in the subject")
    SENT = "sent", _("Sent from the record")
    MANUAL = "manual", _("Linked by hand")


class RecordLink(models.Model):
    """One entry of a record's timeline: a received message or a sent outbox item."""

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="links")
    message = models.ForeignKey(
        "incoming.Message",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="record_links",
    )
    outbox_item = models.ForeignKey(
        "outgoing.OutboxItem",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="record_links",
    )
    via = models.CharField(max_length=20, choices=LinkVia.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(message__isnull=False, outbox_item__isnull=True)
                    | models.Q(message__isnull=True, outbox_item__isnull=False)
                ),
                name="link_is_message_or_outbox_item",
            ),
            models.UniqueConstraint(
                fields=["record", "message"],
                condition=models.Q(message__isnull=False),
                name="message_linked_once_per_record",
            ),
            models.UniqueConstraint(
                fields=["record", "outbox_item"],
                condition=models.Q(outbox_item__isnull=False),
                name="outbox_item_linked_once_per_record",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.record_id}:{self.message_id or self.outbox_item_id}"
