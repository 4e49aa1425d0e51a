from __future__ import annotations

import enum

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils.translation import gettext_lazy as _


class Right(enum.StrEnum):
    READ = "read"
    SEND = "send"
    MANAGE = "manage"


class AccountAccess(models.Model):
    """An account shared with one user or one group (A11)."""

    account = models.ForeignKey(
        "accounts.EmailAccount", on_delete=models.CASCADE, related_name="access"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="mail_account_access",
    )
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="mail_account_access"
    )
    can_read = models.BooleanField(_("read"), default=True)
    can_send = models.BooleanField(_("send"), default=False)
    can_manage = models.BooleanField(_("manage"), default=False)

    class Meta:
        verbose_name = _("account access")
        verbose_name_plural = _("account access")
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(user__isnull=False) & models.Q(group__isnull=True))
                | (models.Q(user__isnull=True) & models.Q(group__isnull=False)),
                name="access_user_xor_group",
            ),
            models.UniqueConstraint(
                fields=["account", "user"],
                condition=models.Q(user__isnull=False),
                name="access_unique_user",
            ),
            models.UniqueConstraint(
                fields=["account", "group"],
                condition=models.Q(group__isnull=False),
                name="access_unique_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} → {self.user or self.group}"
