"""The only code that changes accounts, domains and their sharing.

Views, the API and the CLI validate input (with :mod:`postroom.accounts.forms`)
and then call these functions.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db import transaction
from django.utils.translation import gettext as _

from postroom.accounts.diagnosis_text import describe
from postroom.accounts.models import AccountAccess, EmailAccount, EmailDomain, OutgoingTransport
from postroom.accounts.resolve import incoming_check, outgoing_check
from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel
from postroom.mail.diagnostics import Diagnosis, check_incoming, check_outgoing

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None


@dataclass(frozen=True)
class SideResult:
    """One side of a connection test, in the shape the UI, API and CLI all show."""

    ok: bool
    code: str | None
    message: str
    fix: str

    @classmethod
    def from_diagnosis(cls, diagnosis: Diagnosis) -> SideResult:
        if diagnosis.ok:
            return cls(ok=True, code=None, message=_("Connection and login succeeded."), fix="")
        message, fix = describe(diagnosis)
        return cls(ok=False, code=str(diagnosis.code), message=message, fix=fix)

    @classmethod
    def awaiting_password(cls) -> SideResult:
        return cls(
            ok=False,
            code="awaiting_password",
            message=_("This account is awaiting its password; nothing was tried."),
            fix=_("Enter the password for this account."),
        )


@dataclass(frozen=True)
class ConnectionReport:
    incoming: SideResult | None  # None: that side is disabled
    outgoing: SideResult | None

    @property
    def ok(self) -> bool:
        return all(side is None or side.ok for side in (self.incoming, self.outgoing))

    def as_dict(self) -> dict[str, Any]:
        def side(result: SideResult | None) -> dict[str, Any] | None:
            if result is None:
                return None
            data = asdict(result)
            return data

        return {"incoming": side(self.incoming), "outgoing": side(self.outgoing)}


class AccountCheckFailed(Exception):
    """Saving was refused because the servers did not accept the settings (A5)."""

    def __init__(self, report: ConnectionReport) -> None:
        super().__init__(_("The mail servers did not accept these settings."))
        self.report = report


def run_connection_test(account: EmailAccount) -> ConnectionReport:
    """Try each enabled side against the real servers. Changes nothing."""
    if account.awaiting_password:
        return ConnectionReport(
            incoming=SideResult.awaiting_password() if account.incoming_enabled else None,
            outgoing=SideResult.awaiting_password() if account.outgoing_enabled else None,
        )
    # Settings are read here, in the request's thread; only the network work
    # runs in parallel, so the whole test takes as long as the slower side.
    in_check = incoming_check(account) if account.incoming_enabled else None
    sendmail = account.outgoing_transport == OutgoingTransport.SENDMAIL
    out_check = outgoing_check(account) if account.outgoing_enabled and not sendmail else None
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="conncheck") as pool:
        in_future = pool.submit(check_incoming, in_check) if in_check else None
        out_future = pool.submit(check_outgoing, out_check) if out_check else None
        incoming = SideResult.from_diagnosis(in_future.result()) if in_future else None
        outgoing = SideResult.from_diagnosis(out_future.result()) if out_future else None
    if account.outgoing_enabled and sendmail:
        outgoing = _sendmail_side()
    return ConnectionReport(incoming=incoming, outgoing=outgoing)


def _sendmail_side() -> SideResult:
    """C3: a sendmail account is ready when the site's sendmail program can be run."""
    path = str(settings.POSTROOM_SENDMAIL_PATH)
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return SideResult(
            ok=True,
            code=None,
            message=_("The sendmail program %(p)s is ready.") % {"p": path},
            fix="",
        )
    return SideResult(
        ok=False,
        code="sendmail_missing",
        message=_("The sendmail program %(p)s is missing or not executable.") % {"p": path},
        fix=_("Install a sendmail-compatible program or set POSTROOM_SENDMAIL_PATH."),
    )


def _needs_check(account: EmailAccount) -> bool:
    return not account.awaiting_password and (account.incoming_enabled or account.outgoing_enabled)


def do_save_account(
    account: EmailAccount,
    *,
    actor: Actor,
    password: str | None = None,
    smtp_password: str | None = None,
    check: bool = True,
) -> EmailAccount:
    """Create or update ``account`` (validated, unsaved changes applied to the instance).

    ``password``/``smtp_password``: None keeps what is stored, "" clears it.
    With ``check`` the servers are asked first (outside any transaction: the
    network must never hold a database lock) and a failure saves nothing.
    """
    if password is not None:
        account.set_password(password)
    if smtp_password is not None:
        account.set_smtp_password(smtp_password)
    if account.awaiting_password and account.has_password:
        account.awaiting_password = False
    creating = account.pk is None

    if check and _needs_check(account):
        report = run_connection_test(account)
        if not report.ok:
            do_log_event(
                kind="account.check_failed",
                level=EventLevel.WARNING,
                account=None if creating else account,
                message=_("Settings for %(email)s refused by the mail servers.")
                % {"email": account.email},
                data={"report": report.as_dict()},
            )
            raise AccountCheckFailed(report)

    with transaction.atomic():
        # A4: marking a new default unmarks the old one in the same transaction.
        if account.default_incoming:
            EmailAccount.objects.filter(default_incoming=True).exclude(pk=account.pk).update(
                default_incoming=False
            )
        if account.default_outgoing:
            EmailAccount.objects.filter(default_outgoing=True).exclude(pk=account.pk).update(
                default_outgoing=False
            )
        if account.is_template and (account.incoming_enabled or account.outgoing_enabled):
            account.is_template = False
        account.save()
        do_log_event(
            kind="account.created" if creating else "account.updated",
            account=account,
            message=(_("Account %(name)s created.") if creating else _("Account %(name)s updated."))
            % {"name": account.name},
            data={"actor": getattr(actor, "username", None)},
        )
    return account


def do_delete_account(account: EmailAccount, *, actor: Actor) -> None:
    name = account.name
    with transaction.atomic():
        account.delete()
        do_log_event(
            kind="account.deleted",
            message=_("Account %(name)s deleted.") % {"name": name},
            data={"actor": getattr(actor, "username", None)},
        )


def do_test_account(account: EmailAccount, *, actor: Actor) -> ConnectionReport:
    """Run the connection test and record its outcome in the event log."""
    report = run_connection_test(account)
    do_log_event(
        kind="account.tested",
        level=EventLevel.INFO if report.ok else EventLevel.WARNING,
        account=account,
        message=(_("Connection test passed.") if report.ok else _("Connection test failed.")),
        data={"report": report.as_dict(), "actor": getattr(actor, "username", None)},
    )
    return report


def do_save_domain(domain: EmailDomain, *, actor: Actor) -> EmailDomain:
    creating = domain.pk is None
    domain.name = domain.name.strip().lower()
    with transaction.atomic():
        domain.save()
        do_log_event(
            kind="domain.created" if creating else "domain.updated",
            message=_("Domain %(name)s saved.") % {"name": domain.name},
            data={"actor": getattr(actor, "username", None)},
        )
    return domain


class DomainInUse(Exception):
    def __init__(self, domain: EmailDomain, count: int) -> None:
        super().__init__(
            _("Domain %(name)s is used by %(count)d account(s); remove or move them first.")
            % {"name": domain.name, "count": count}
        )


def do_delete_domain(domain: EmailDomain, *, actor: Actor) -> None:
    count = domain.accounts.count()
    if count:
        raise DomainInUse(domain, count)
    name = domain.name
    with transaction.atomic():
        domain.delete()
        do_log_event(
            kind="domain.deleted",
            message=_("Domain %(name)s deleted.") % {"name": name},
            data={"actor": getattr(actor, "username", None)},
        )


def do_share_account(
    account: EmailAccount,
    *,
    actor: Actor,
    user: AbstractBaseUser | None = None,
    group: Group | None = None,
    can_read: bool = True,
    can_send: bool = False,
    can_manage: bool = False,
) -> AccountAccess:
    """Grant (or change) a user's or group's rights on ``account``."""
    if (user is None) == (group is None):
        raise ValueError("share with exactly one user or one group")
    with transaction.atomic():
        access, _created = AccountAccess.objects.update_or_create(
            account=account,
            user=user,
            group=group,
            defaults={"can_read": can_read, "can_send": can_send, "can_manage": can_manage},
        )
        do_log_event(
            kind="account.shared",
            account=account,
            message=_("Access to %(name)s changed for %(who)s.")
            % {"name": account.name, "who": str(user or group)},
            data={
                "actor": getattr(actor, "username", None),
                "read": can_read,
                "send": can_send,
                "manage": can_manage,
            },
        )
    return access


def do_unshare_account(access: AccountAccess, *, actor: Actor) -> None:
    account = access.account
    who = str(access.user or access.group)
    with transaction.atomic():
        access.delete()
        do_log_event(
            kind="account.unshared",
            account=account,
            message=_("Access to %(name)s removed for %(who)s.")
            % {"name": account.name, "who": who},
            data={"actor": getattr(actor, "username", None)},
        )
