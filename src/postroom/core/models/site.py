from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class SiteSettings(models.Model):
    """Settings an admin changes at run time; always the single row with pk=1."""

    allow_pop3_for_new_accounts = models.BooleanField(
        _("allow POP3 for new accounts"),
        default=True,
        help_text=_("Existing POP3 accounts keep working when this is switched off."),
    )

    class Meta:
        verbose_name = _("site settings")
        verbose_name_plural = _("site settings")

    def __str__(self) -> str:
        return str(_("Site settings"))

    @classmethod
    def load(cls) -> SiteSettings:
        obj, _created = cls.objects.get_or_create(pk=1)
        return obj
