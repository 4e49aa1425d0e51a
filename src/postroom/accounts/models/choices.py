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


class OutgoingTransport(models.TextChoices):
    """How an account's mail leaves (C3)."""

    SMTP = "smtp", _("SMTP server")
    SENDMAIL = "sendmail", _("Local sendmail program")


class OutgoingCharset(models.TextChoices):
    """Charsets outgoing text is encoded in (C4); UTF-8 unless asked otherwise."""

    UTF8 = "utf-8", _("UTF-8 (recommended)")
    ISO_2022_JP = "iso-2022-jp", _("ISO-2022-JP (Japanese)")
    ISO_8859_1 = "iso-8859-1", _("ISO-8859-1 (Western European)")
    ISO_8859_2 = "iso-8859-2", _("ISO-8859-2 (Central European)")
    ISO_8859_5 = "iso-8859-5", _("ISO-8859-5 (Cyrillic)")
    ISO_8859_7 = "iso-8859-7", _("ISO-8859-7 (Greek)")
    ISO_8859_9 = "iso-8859-9", _("ISO-8859-9 (Turkish)")
    ISO_8859_15 = "iso-8859-15", _("ISO-8859-15 (Western European with euro)")
