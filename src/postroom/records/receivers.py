"""Connects the records app to the events of the apps below it."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from postroom.accounts.models import EmailAccount
from postroom.incoming.signals import mail_ready


@receiver(mail_ready)
def route_new_mail(sender: Any, *, account: EmailAccount, **kwargs: Any) -> None:
    from postroom.records.routing import do_route_pending

    do_route_pending(account)
