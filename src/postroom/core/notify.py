"""E3: tell the people responsible for an account about something that needs them.

One in-app notification per person and ``key`` (so a repeated cause does not
repeat the notification); see ``postroom.core.models.Notification``. Each new
notification is also mailed to the person's address through the default
outgoing account (C12), queued in the outbox with ``Auto-Submitted:
auto-generated`` and an idempotency key made from the user and the
notification key. When there is no default outgoing account, or it cannot
send, the in-app notification stays and the event log says the mail could
not go.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel, Notification

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from postroom.accounts.models import EmailAccount
    from postroom.outgoing.models import OutboxItem

logger = logging.getLogger(__name__)


def absolute_url(path: str) -> str:
    """``path`` under ``POSTROOM_BASE_URL`` when it is set (mail needs full links)."""
    base = str(getattr(settings, "POSTROOM_BASE_URL", "") or "").rstrip("/")
    if not path or "://" in path or not base:
        return path
    return f"{base}/{path.lstrip('/')}"


def account_people(account: EmailAccount) -> list[User]:
    """The owner and everyone who may manage the account; superusers when there is nobody."""
    from postroom.accounts.models import Right
    from postroom.accounts.permissions import users_with_right

    people = list(users_with_right(account, Right.MANAGE).order_by("pk"))
    # Superusers can manage everything; they are the fallback, not the audience.
    named = [u for u in people if not u.is_superuser or u.pk == account.owner_id]
    return named or people


def do_notify_users(
    users: list[User],
    *,
    kind: str,
    key: str,
    title: str,
    body: str = "",
    url: str = "",
    account: EmailAccount | None = None,
    skip_mail: Collection[str] = (),
) -> list[Notification]:
    """Create the notification for each user that does not have it yet; returns the new ones.

    Each new one is mailed too, except to the addresses in ``skip_mail``
    (people who get a mail about the same thing anyway).
    """
    skip = {a.strip().lower() for a in skip_mail}
    created: list[Notification] = []
    for user in users:
        try:
            with transaction.atomic():
                created.append(
                    Notification.objects.create(
                        user=user,
                        account=account,
                        kind=kind,
                        key=key[:200],
                        title=title[:300],
                        body=body,
                        url=url[:500],
                    )
                )
        except IntegrityError:
            continue  # already told about this one
    for notification in created:
        if str(getattr(notification.user, "email", "") or "").strip().lower() not in skip:
            do_mail_notification(notification)
    return created


def _mail_key(notification: Notification) -> str:
    digest = hashlib.sha256(f"{notification.user_id}:{notification.key}".encode()).hexdigest()
    return f"notification:{digest[:48]}"


def _mail_text(notification: Notification) -> str:
    parts = [notification.body.strip()] if notification.body.strip() else []
    if notification.url:
        parts.append(_("Open in Postroom: %(url)s") % {"url": absolute_url(notification.url)})
    parts.append(
        "-- \n"
        + _("Postroom sent this automatically. All your notifications: %(url)s")
        % {"url": absolute_url(reverse("web:notification_list"))}
    )
    return "\n\n".join(parts) + "\n"


def do_mail_notification(notification: Notification) -> bool:
    """Queue the mail copy of ``notification``; False (and a warning event) when it cannot go.

    Never raises: the in-app notification is what must not be lost.
    """
    from postroom.accounts.models import EmailAccount
    from postroom.outgoing.actions import OutboxError, do_queue_message

    user = notification.user
    address = str(getattr(user, "email", "") or "").strip()
    if not address:
        return False
    sender = EmailAccount.objects.filter(default_outgoing=True).first()
    problem = ""
    if sender is None:
        problem = _("there is no default outgoing account")
    else:
        try:
            with transaction.atomic():
                do_queue_message(
                    sender,
                    actor=None,
                    to=[address],
                    subject=notification.title,
                    text=_mail_text(notification),
                    extra_headers={"Auto-Submitted": "auto-generated"},
                    idempotency_key=_mail_key(notification),
                )
            return True
        except (OutboxError, ValueError) as exc:
            problem = str(exc)
        except Exception as exc:  # a notification must never fail what caused it
            logger.exception("could not queue the mail for notification %s", notification.pk)
            problem = f"{type(exc).__name__}: {exc}"
    do_log_event(
        kind="notification.mail_failed",
        level=EventLevel.WARNING,
        account=notification.account,
        message=_(
            'The notification "%(title)s" for %(user)s was not mailed: %(problem)s. '
            "It is shown in Postroom."
        )
        % {"title": notification.title, "user": user.get_username(), "problem": problem},
        data={"notification": notification.pk, "user": user.get_username()},
    )
    return False


def do_notify_delivery_failed(item: OutboxItem, addresses: list[str], reply: str) -> None:
    """Tell the user who queued ``item`` that it failed for good for ``addresses``.

    Once per item; nothing for mail nobody queued by hand (auto-replies,
    notifications: so a failed notification mail never notifies). Never raises:
    the worker calls this while recording outcomes.
    """
    if item.created_by_id is None:
        return
    try:
        with transaction.atomic():
            user = get_user_model().objects.filter(pk=item.created_by_id, is_active=True).first()
            if user is None:
                return
            do_notify_users(
                [user],
                kind="outbox.failed",
                key=f"outbox-failed:{item.pk}",
                title=_("Not delivered: %(subject)s") % {"subject": item.subject or "—"},
                body=_("The receiving server refused the message for %(who)s: %(reply)s")
                % {"who": ", ".join(addresses), "reply": reply},
                url=reverse("web:outbox_item", args=[item.pk]),
                account=item.account,
            )
    except Exception:
        logger.exception("could not notify about the failed outbox item %s", item.pk)


# Reading ------------------------------------------------------------------------


def notifications_of(user: AbstractBaseUser) -> QuerySet[Notification]:
    """The user's own notifications, newest first (nobody sees anybody else's)."""
    return Notification.objects.filter(user__pk=user.pk)


def do_mark_notification_read(notification: Notification) -> Notification:
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
    return notification


def do_mark_all_notifications_read(user: AbstractBaseUser) -> int:
    """Mark every unread notification of ``user`` read; returns how many changed."""
    return notifications_of(user).filter(read_at__isnull=True).update(read_at=timezone.now())


def do_notify_account_people(
    account: EmailAccount,
    *,
    kind: str,
    key: str,
    title: str,
    body: str = "",
    url: str = "",
    skip_mail: Collection[str] = (),
) -> list[Notification]:
    return do_notify_users(
        account_people(account),
        kind=kind,
        key=key,
        title=title,
        body=body,
        url=url,
        account=account,
        skip_mail=skip_mail,
    )
