from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from postroom.accounts.models.choices import IncomingProtocol, SecurityChoice

PORT_VALIDATORS = [MinValueValidator(1), MaxValueValidator(65535)]


class EmailDomain(models.Model):
    """Server settings shared by every account whose address is in this domain (A1)."""

    name = models.CharField(
        _("domain"), max_length=253, unique=True, help_text=_("For example: example.com")
    )
    incoming_protocol = models.CharField(
        _("incoming protocol"),
        max_length=8,
        choices=IncomingProtocol.choices,
        default=IncomingProtocol.IMAP,
    )
    incoming_host = models.CharField(_("incoming server"), max_length=253)
    incoming_port = models.PositiveIntegerField(_("incoming port"), validators=PORT_VALIDATORS)
    incoming_security = models.CharField(
        _("incoming security"),
        max_length=10,
        choices=SecurityChoice.choices,
        default=SecurityChoice.SSL,
    )
    smtp_host = models.CharField(_("SMTP server"), max_length=253, blank=True)
    smtp_port = models.PositiveIntegerField(
        _("SMTP port"), null=True, blank=True, validators=PORT_VALIDATORS
    )
    smtp_security = models.CharField(
        _("SMTP security"),
        max_length=10,
        choices=SecurityChoice.choices,
        default=SecurityChoice.STARTTLS,
    )
    smtp_auth = models.BooleanField(_("SMTP authentication"), default=True)
    verify_cert = models.BooleanField(_("verify server certificates"), default=True)
    ca_cert = models.TextField(
        _("trusted CA certificate (PEM)"),
        blank=True,
        help_text=_("For self-hosted servers with a private certificate authority."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("email domain")
        verbose_name_plural = _("email domains")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(incoming_port__gte=1, incoming_port__lte=65535),
                name="domain_incoming_port_range",
            ),
            models.CheckConstraint(
                condition=models.Q(smtp_port__isnull=True)
                | models.Q(smtp_port__gte=1, smtp_port__lte=65535),
                name="domain_smtp_port_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name
