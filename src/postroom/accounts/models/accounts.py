from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from postroom.accounts.models.choices import (
    IncomingProtocol,
    OutgoingCharset,
    OutgoingTransport,
    SecurityChoice,
    SyncOption,
)
from postroom.accounts.models.domains import PORT_VALIDATORS, EmailDomain
from postroom.core import secrets


def default_folders() -> list[str]:
    return ["INBOX"]


def default_bcc() -> list[str]:
    return []


class EmailAccount(models.Model):
    """One mailbox: how to read it, how to send from it, and who may use it.

    Server fields left empty are inherited from the account's domain or
    provider preset (see :mod:`postroom.accounts.resolve`). Passwords are only
    ever stored encrypted; use :meth:`set_password` / :meth:`get_password`.
    """

    name = models.CharField(_("account name"), max_length=100, unique=True)
    email = models.EmailField(_("email address"), max_length=254, unique=True)
    domain = models.ForeignKey(
        EmailDomain,
        verbose_name=_("domain"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="accounts",
    )
    preset = models.CharField(_("provider preset"), max_length=40, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_mail_accounts",
    )

    incoming_enabled = models.BooleanField(_("enable incoming"), default=True)
    incoming_protocol = models.CharField(
        _("incoming protocol"), max_length=8, choices=IncomingProtocol.choices, blank=True
    )
    incoming_host = models.CharField(_("incoming server"), max_length=253, blank=True)
    incoming_port = models.PositiveIntegerField(
        _("incoming port"), null=True, blank=True, validators=PORT_VALIDATORS
    )
    incoming_security = models.CharField(
        _("incoming security"), max_length=10, choices=SecurityChoice.choices, blank=True
    )
    folders = models.JSONField(_("IMAP folders"), default=default_folders, blank=True)
    login = models.CharField(
        _("login"),
        max_length=254,
        blank=True,
        help_text=_("Leave empty to log in with the email address."),
    )
    password_encrypted = models.TextField(blank=True, editable=False)

    outgoing_enabled = models.BooleanField(_("enable outgoing"), default=True)
    smtp_host = models.CharField(_("SMTP server"), max_length=253, blank=True)
    smtp_port = models.PositiveIntegerField(
        _("SMTP port"), null=True, blank=True, validators=PORT_VALIDATORS
    )
    smtp_security = models.CharField(
        _("SMTP security"), max_length=10, choices=SecurityChoice.choices, blank=True
    )
    smtp_auth = models.BooleanField(
        _("SMTP authentication"),
        null=True,
        blank=True,
        help_text=_("Off for relays that trust this server's address."),
    )
    smtp_login = models.CharField(
        _("SMTP username"),
        max_length=254,
        blank=True,
        help_text=_("Leave empty to use the incoming login."),
    )
    smtp_password_encrypted = models.TextField(blank=True, editable=False)

    # Outgoing queue (C3-C5, C11, C13): see postroom.outgoing.
    outgoing_transport = models.CharField(
        _("send through"),
        max_length=10,
        choices=OutgoingTransport.choices,
        default=OutgoingTransport.SMTP,
        help_text=_("The sendmail program is the one configured for the whole site."),
    )
    charset = models.CharField(
        _("charset"),
        max_length=20,
        choices=OutgoingCharset.choices,
        default=OutgoingCharset.UTF8,
        help_text=_("Text that does not fit this charset is sent as UTF-8."),
    )
    bcc_addresses = models.JSONField(
        _("BCC every mail to"),
        default=default_bcc,
        blank=True,
        help_text=_("Addresses that receive a hidden copy of every mail this account sends."),
    )
    copy_to_sent = models.BooleanField(
        _("copy sent mail to the Sent folder"),
        default=False,
        help_text=_("Leave off when the server files sent mail itself (Gmail, Microsoft 365)."),
    )
    sent_folder = models.CharField(
        _("Sent folder"),
        max_length=500,
        blank=True,
        help_text=_("Leave empty to use the folder the server marks as Sent."),
    )
    verp_return_path = models.BooleanField(
        _("per-message return path (VERP)"),
        default=False,
        help_text=_(
            "Bounces come back to address+token, which matches them even when the "
            "bounce leaves out the original message. The server must accept such senders."
        ),
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        _("messages per minute"), null=True, blank=True, help_text=_("Empty for no limit.")
    )
    rate_limit_per_hour = models.PositiveIntegerField(
        _("messages per hour"), null=True, blank=True, help_text=_("Empty for no limit.")
    )
    rate_limit_per_day = models.PositiveIntegerField(
        _("messages per day"),
        null=True,
        blank=True,
        help_text=_("Consumer providers cap daily sending; empty for no limit."),
    )
    max_queue_age = models.PositiveIntegerField(
        _("retry for (hours)"),
        default=72,
        validators=[MinValueValidator(1)],
        help_text=_("A message the server keeps deferring fails after this long."),
    )

    # Incoming sync (B2-B6, E2).
    sync_enabled = models.BooleanField(_("sync enabled"), default=True)
    sync_option = models.CharField(
        _("sync"),
        max_length=8,
        choices=SyncOption.choices,
        default=SyncOption.ALL,
        help_text=_("Neither option changes anything on the server."),
    )
    initial_sync_count = models.PositiveIntegerField(
        _("initial sync count"),
        null=True,
        blank=True,
        help_text=_("How many of the newest messages the first sync takes; empty for all."),
    )
    poll_interval = models.PositiveIntegerField(
        _("poll interval (seconds)"),
        default=120,
        validators=[MinValueValidator(10)],
        help_text=_("For POP3 and for IMAP folders that are not watched with IDLE."),
    )
    max_attachment_size = models.PositiveBigIntegerField(
        _("attachment size limit (bytes)"),
        null=True,
        blank=True,
        default=25 * 1024 * 1024,
        help_text=_("Larger attachments are not stored; the message records what was left out."),
    )
    pop3_delete_after_retrieval = models.BooleanField(
        _("delete from the POP3 server after retrieval"),
        default=False,
        help_text=_("Only messages already stored safely are deleted."),
    )

    awaiting_password = models.BooleanField(
        _("awaiting password"),
        default=False,
        help_text=_("The owner enters the password at next sign-in; until then nothing logs in."),
    )
    ascii_password = models.BooleanField(_("ASCII-only password"), default=False)
    verify_cert = models.BooleanField(_("verify server certificates"), default=True)
    ca_cert = models.TextField(_("trusted CA certificate (PEM)"), blank=True)
    allow_plaintext_login = models.BooleanField(
        _("allow password over unencrypted connections"), default=False
    )

    sender_name = models.CharField(_("sender name"), max_length=100, blank=True)
    always_use_account_name_as_sender = models.BooleanField(
        _("always use the account name as sender name"), default=False
    )
    always_use_account_email_as_sender = models.BooleanField(
        _("always use the account address as sender"), default=False
    )
    use_for_integration = models.BooleanField(
        _("used for integration"),
        default=False,
        help_text=_("Serves the API and webhooks only."),
    )
    default_incoming = models.BooleanField(_("default incoming"), default=False)
    default_outgoing = models.BooleanField(_("default outgoing"), default=False)
    is_template = models.BooleanField(
        _("template"),
        default=False,
        help_text=_("Shipped with Postroom; disabled until completed."),
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("email account")
        verbose_name_plural = _("email accounts")
        constraints = [
            # A4: the database, not only the form, keeps one default of each kind.
            models.UniqueConstraint(
                fields=["default_incoming"],
                condition=models.Q(default_incoming=True),
                name="one_default_incoming_account",
            ),
            models.UniqueConstraint(
                fields=["default_outgoing"],
                condition=models.Q(default_outgoing=True),
                name="one_default_outgoing_account",
            ),
            models.CheckConstraint(
                condition=models.Q(incoming_port__isnull=True)
                | models.Q(incoming_port__gte=1, incoming_port__lte=65535),
                name="account_incoming_port_range",
            ),
            models.CheckConstraint(
                condition=models.Q(smtp_port__isnull=True)
                | models.Q(smtp_port__gte=1, smtp_port__lte=65535),
                name="account_smtp_port_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    def set_password(self, raw: str) -> None:
        self.password_encrypted = secrets.encrypt(raw)

    def get_password(self) -> str:
        return secrets.decrypt(self.password_encrypted)

    def set_smtp_password(self, raw: str) -> None:
        self.smtp_password_encrypted = secrets.encrypt(raw)

    def get_smtp_password(self) -> str:
        """The SMTP password, falling back to the incoming one (A6)."""
        if self.smtp_password_encrypted:
            return secrets.decrypt(self.smtp_password_encrypted)
        return self.get_password()

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)

    @property
    def effective_login(self) -> str:
        return self.login or self.email

    @property
    def effective_smtp_login(self) -> str:
        return self.smtp_login or self.effective_login
