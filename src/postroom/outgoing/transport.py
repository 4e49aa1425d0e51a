"""Which sender an account uses (C3): a registry keyed on the transport enum.

Both senders share one contract (``send(mail_from, rcpt_to, raw) ->
SendResult``, ``close()``), so the queue never dispatches on names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from django.conf import settings

from postroom.accounts.models import EmailAccount, OutgoingTransport
from postroom.accounts.resolve import outgoing_check
from postroom.mail.smtp_send import SendResult, SmtpSender


class Sender(Protocol):
    def send(self, mail_from: str, rcpt_to: Sequence[str], raw: bytes) -> SendResult: ...

    def close(self) -> None: ...


def _smtp(account: EmailAccount) -> Sender:
    check = outgoing_check(account)
    return SmtpSender(check.endpoint, check.credentials)


def _sendmail(account: EmailAccount) -> Sender:
    from postroom.mail.sendmail import SendmailTransport

    return SendmailTransport(str(settings.POSTROOM_SENDMAIL_PATH))


SENDERS: dict[OutgoingTransport, Callable[[EmailAccount], Sender]] = {
    OutgoingTransport.SMTP: _smtp,
    OutgoingTransport.SENDMAIL: _sendmail,
}


def make_sender(account: EmailAccount) -> Sender:
    return SENDERS[OutgoingTransport(account.outgoing_transport)](account)
