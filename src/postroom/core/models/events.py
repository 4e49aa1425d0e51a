from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class EventLevel(models.TextChoices):
    INFO = "info", _("Info")
    WARNING = "warning", _("Warning")
    ERROR = "error", _("Error")


class Event(models.Model):
    """The mailer log (E1): what happened, to which account, and how it ended.

    Never holds a secret: callers pass codes and server replies, not credentials.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    account = models.ForeignKey(
        "accounts.EmailAccount",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
    )
    kind = models.CharField(_("kind"), max_length=64, db_index=True)
    level = models.CharField(
        _("level"), max_length=10, choices=EventLevel.choices, default=EventLevel.INFO
    )
    message = models.TextField(_("message"))
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("event")
        verbose_name_plural = _("events")

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind}: {self.message}"
