from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from postroom.accounts.actions import do_save_account
from postroom.accounts.models import EmailAccount
from postroom.outgoing.actions import do_queue_message
from postroom.outgoing.models import OutboxItem
from postroom.outgoing.queue import deliver_due
from tests.servers.smtp import SmtpServer

_numbers = itertools.count(1)

AccountFactory = Callable[..., EmailAccount]


def make_smtp_account(server: SmtpServer | None, **extra: Any) -> EmailAccount:
    """An account that sends through ``server`` (plain, no AUTH unless told) and reads nothing."""
    number = next(_numbers)
    fields: dict[str, Any] = {
        "name": f"sender{number}",
        "email": f"sender{number}@example.test",
        "incoming_enabled": False,
        "outgoing_enabled": True,
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port if server is not None else 25,
        "smtp_security": "none",
        "smtp_auth": False,
    }
    fields.update(extra)
    password = fields.pop("password", None)
    return do_save_account(EmailAccount(**fields), actor=None, password=password, check=False)


@pytest.fixture
def smtp_account(smtp_server_factory: Callable[..., SmtpServer]) -> Callable[..., Any]:
    """``make(**server_options, account=dict(...)) -> (account, server)``."""

    def make(
        account: dict[str, Any] | None = None, **options: Any
    ) -> tuple[EmailAccount, SmtpServer]:
        server = smtp_server_factory(**options)
        return make_smtp_account(server, **(account or {})), server

    return make


def queue(account: EmailAccount, to: Any = ("rcpt@example.test",), **kwargs: Any) -> OutboxItem:
    kwargs.setdefault("subject", "Hello")
    kwargs.setdefault("text", "Body text\n")
    return do_queue_message(account, actor=None, to=to, **kwargs)


def deliver(limit: int = 100) -> int:
    return deliver_due("test-worker", limit)


def make_due(item: OutboxItem) -> None:
    """Time travel for retries: the item's next attempt is now."""
    OutboxItem.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())


def statuses(item: OutboxItem) -> dict[str, str]:
    return dict(item.recipients.values_list("address", "status"))
