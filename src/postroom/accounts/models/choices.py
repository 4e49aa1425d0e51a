from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class IncomingProtocol(models.TextChoices):
    IMAP = "imap", "IMAP"
    POP3 = "pop3", "POP3"


class SecurityChoice(models.TextChoices):
    """Values match :class:`postroom.mail.types.Security`."""

    SSL = "ssl", _("SSL/TLS")
    STARTTLS = "starttls", _("STARTTLS")
    NONE = "none", _("None (unencrypted)")


class SyncOption(models.TextChoices):
    ALL = "all", _("All messages")
    UNSEEN = "unseen", _("Unseen messages only")
