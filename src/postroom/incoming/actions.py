"""State changes of incoming mail: sync runs, their status, and the account's sync switch."""

from __future__ import annotations

import hashlib
import logging
import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.actions import SideResult
from postroom.accounts.models import EmailAccount, IncomingProtocol
from postroom.accounts.resolve import incoming_check
from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel
from postroom.incoming.engine import Progress, SyncResult, account_protocol, sync_account
from postroom.incoming.extract import (
    Extraction,
    ExtractReport,
    extract_messages,
    pending_message_ids,
)
from postroom.incoming.models import (
    Message,
    MessageLocation,
    ParseState,
    SyncState,
    SyncStatus,
)
from postroom.mail.diagnostics import diagnose_error
from postroom.mail.errors import AuthError, MailError
from postroom.mail.imap_sync import ImapSyncSession

logger = logging.getLogger(__name__)

# A18: three refused logins in a row and we stop, before the server bans us.
AUTH_FAILURE_LIMIT = 3
BACKOFF_BASE = 30.0
BACKOFF_CAP = 3600.0


def credentials_fingerprint(account: EmailAccount) -> str:
    """Changes whenever the credentials are saved again; an auth_error waits for it."""
    material = "\0".join(
        [account.effective_login, account.password_encrypted, account.smtp_password_encrypted]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def status_for(account: EmailAccount) -> SyncStatus:
    status, _created = SyncStatus.objects.get_or_create(account=account)
    return status


def may_sync(account: EmailAccount, status: SyncStatus) -> bool:
    """Whether an automatic sync may run now (a manual one ignores back-off)."""
    if not (account.incoming_enabled and account.sync_enabled) or account.awaiting_password:
        return False
    if status.state == SyncState.AUTH_ERROR:
        return status.credentials_fingerprint != credentials_fingerprint(account)
    return status.next_attempt_at is None or status.next_attempt_at <= timezone.now()


def _backoff(errors: int) -> timedelta:
    # Exponential with full jitter, capped: a flapping server is not hammered.
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** min(errors, 16)))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def do_set_sync_enabled(account: EmailAccount, enabled: bool, *, actor: object = None) -> None:
    with transaction.atomic():
        EmailAccount.objects.filter(pk=account.pk).update(sync_enabled=enabled)
        account.sync_enabled = enabled
        status = status_for(account)
        previous = status.state
        status.state = SyncState.IDLE if enabled else SyncState.DISABLED
        status.save(update_fields=["state", "updated_at"])
        _report_state(account, previous, status)
        do_log_event(
            kind="sync.enabled" if enabled else "sync.disabled",
            account=account,
            message=(_("Sync switched on.") if enabled else _("Sync switched off.")),
            data={"actor": getattr(actor, "username", None)},
        )


def _record_progress(status_id: int) -> Progress:
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = timezone.now().timestamp()
        # Throttled: the status page needs a figure, not a write per message.
        if done in (0, total) or now - last[0] >= 1.0:
            last[0] = now
            SyncStatus.objects.filter(pk=status_id).update(progress_done=done, progress_total=total)

    return progress


def do_sync_account(
    account: EmailAccount,
    *,
    progress: Progress | None = None,
    extract: bool = True,
    session: ImapSyncSession | None = None,
) -> SyncResult:
    """Run one sync pass and record how it went (E1, E2, A18).

    Raises the mail error after recording it, so callers that wait (the CLI)
    can say what failed; the watcher catches it and moves on.
    """
    status = status_for(account)
    previous = status.state  # "syncing" is a run's passing state, never reported
    status.state = SyncState.SYNCING
    status.progress_done = status.progress_total = 0
    status.last_run_started_at = timezone.now()
    status.save(
        update_fields=[
            "state",
            "progress_done",
            "progress_total",
            "last_run_started_at",
            "updated_at",
        ]
    )
    recorder = _record_progress(status.pk)

    def both(done: int, total: int) -> None:
        recorder(done, total)
        if progress is not None:
            progress(done, total)

    quarantined = 0
    try:
        with Extraction(account.max_attachment_size) as extraction:
            # Extraction of each stored batch starts while later ones are fetched.
            result = sync_account(
                account,
                progress=both,
                session=session,
                after_store=extraction if extract else None,
            )
            if extract:
                extraction.finish()
                # Everything still at the "stored" stage, not only this run's: a
                # process killed after storing but before extracting left some.
                quarantined = extraction.finish(pending_message_ids(account.pk)).quarantined
    except MailError as exc:
        _record_failure(account, status, exc, previous)
        raise
    except Exception as exc:
        # Never leave the account "syncing" with nobody told: record, then re-raise.
        logger.exception("sync of account %s failed unexpectedly", account.pk)
        _record_failure(account, status, exc, previous)
        raise
    # C15 (outgoing): delivery reports among the new mail mark the outbox
    # recipients they name as bounced. match_bounces never raises.
    from postroom.outgoing.bounces import match_bounces

    match_bounces(result.result.new_message_ids)
    _announce_mail(account)
    status.state = SyncState.IDLE
    status.last_success_at = timezone.now()
    status.last_error_code = status.last_error_message = ""
    status.consecutive_auth_failures = status.consecutive_errors = 0
    status.next_attempt_at = None
    # Only the fields a run owns: a "sync now" requested meanwhile must survive,
    # and so must the progress figures the recorder wrote.
    with transaction.atomic():
        status.save(update_fields=[*_RESULT_FIELDS, "last_success_at"])
        _report_state(account, previous, status)
    do_log_event(
        kind="sync.completed",
        account=account,
        message=_("Sync finished: %(stored)d new, %(dup)d already held, in %(s).1f s.")
        % {"stored": result.result.stored, "dup": result.result.duplicates, "s": result.seconds},
        data={
            "fetched": result.result.fetched,
            "stored": result.result.stored,
            "duplicates": result.result.duplicates,
            "quarantined": quarantined,
            "seconds": round(result.seconds, 3),
        },
    )
    result.quarantined = quarantined
    return result


def describe_mail_error(account: EmailAccount, exc: MailError) -> SideResult:
    """A mail error of ``account``'s incoming side in the words the UI, API and CLI show."""
    return SideResult.from_diagnosis(diagnose_error(exc, incoming_check(account).endpoint))


# What the end of a run writes (never sync_requested_at, which others set meanwhile).
_RESULT_FIELDS = (
    "state",
    "last_error_code",
    "last_error_message",
    "consecutive_auth_failures",
    "consecutive_errors",
    "next_attempt_at",
    "updated_at",
)


def _report_state(account: EmailAccount, previous: str, status: SyncStatus) -> None:
    """``account.state_changed`` to webhooks, when the state really changed.

    Called in the transaction that saved the new state.
    """
    if status.state == previous:
        return
    from postroom.webhooks.emit import emit
    from postroom.webhooks.models import EventType
    from postroom.webhooks.payloads import account_payload

    emit(
        EventType.ACCOUNT_STATE_CHANGED,
        {
            "account": account_payload(account),
            "state": status.state,
            "previous_state": previous,
            "error_code": status.last_error_code,
            "error_message": status.last_error_message,
        },
        account_id=account.pk,
        ordering_key=f"account:{account.pk}",
    )


def _record_failure(
    account: EmailAccount, status: SyncStatus, exc: Exception, previous: str
) -> None:
    if isinstance(exc, MailError):
        side = describe_mail_error(account, exc)
        code, message = side.code or "error", f"{side.message} {side.fix}".strip()
    else:
        code, message = "internal_error", _("Internal error: %(e)s") % {"e": type(exc).__name__}
    status.last_error_code = code
    status.last_error_message = message
    level = EventLevel.ERROR
    if isinstance(exc, AuthError):
        status.consecutive_auth_failures += 1
        if status.consecutive_auth_failures >= AUTH_FAILURE_LIMIT:
            status.state = SyncState.AUTH_ERROR
            status.credentials_fingerprint = credentials_fingerprint(account)
            message = _(
                "Login refused %(n)d times in a row: sync stopped until the password is changed."
            ) % {"n": status.consecutive_auth_failures}
        else:
            status.state = SyncState.ERROR
            status.next_attempt_at = timezone.now() + _backoff(status.consecutive_auth_failures)
    else:
        status.consecutive_errors += 1
        status.state = SyncState.ERROR
        status.next_attempt_at = timezone.now() + _backoff(status.consecutive_errors)
    # Only the fields a run owns (see do_sync_account).
    with transaction.atomic():
        status.save(update_fields=[*_RESULT_FIELDS, "credentials_fingerprint"])
        _report_state(account, previous, status)
    do_log_event(
        kind="sync.auth_error" if status.state == SyncState.AUTH_ERROR else "sync.failed",
        level=level,
        account=account,
        message=message,
        data={"code": code},
    )
    _notify_failure(account, status, message)


# E3: a plain error tells people only once it persists (a timeout that the next
# pass recovers from needs nobody); an auth_error tells them at once.
ERROR_NOTIFY_AFTER = 3


def _notify_failure(account: EmailAccount, status: SyncStatus, message: str) -> None:
    """Tell the account's people that its sync stopped or keeps failing (A18, E3).

    Once per episode: the key names the account, the state and the last
    success (and for auth_error the credentials tried), so a repeated failure
    is not told twice but a new one after a recovery or a password change is.
    Never raises: the failure itself is already recorded.
    """
    from django.urls import reverse

    from postroom.core.notify import do_notify_account_people

    episode = status.last_success_at.isoformat() if status.last_success_at else "never"
    try:
        if status.state == SyncState.AUTH_ERROR:
            do_notify_account_people(
                account,
                kind="account.auth_error",
                key=f"account:{account.pk}:auth_error:{episode}:"
                f"{status.credentials_fingerprint[:16]}",
                title=_("%(name)s: the server refuses the login, sync stopped")
                % {"name": account.name},
                body=message,
                url=reverse("web:account_edit", args=[account.pk]),
            )
        elif status.state == SyncState.ERROR and status.consecutive_errors >= ERROR_NOTIFY_AFTER:
            do_notify_account_people(
                account,
                kind="account.error",
                key=f"account:{account.pk}:error:{episode}",
                title=_("%(name)s: sync keeps failing") % {"name": account.name},
                body=_("%(n)d attempts in a row failed. Last error: %(error)s")
                % {"n": status.consecutive_errors, "error": message},
                url=reverse("web:sync_status"),
            )
    except Exception:
        logger.exception("could not notify about the failure of account %s", account.pk)


def do_request_sync(account: EmailAccount) -> SyncStatus:
    """Ask the watcher holding ``account`` for a pass now ("sync now")."""
    status = status_for(account)
    status.sync_requested_at = timezone.now()
    status.save(update_fields=["sync_requested_at", "updated_at"])
    return status


FLAG_NAMES = {"seen": "\\Seen", "flagged": "\\Flagged", "answered": "\\Answered"}


def _announce_mail(account: EmailAccount) -> None:
    """Let records and webhooks handle the new mail; their failures never fail the sync."""
    from postroom.incoming.signals import mail_ready

    for receiver, outcome in mail_ready.send_robust(sender=EmailAccount, account=account):
        if isinstance(outcome, Exception):
            logger.error(
                "after-sync step %r failed for account %s",
                receiver,
                account.pk,
                exc_info=outcome,
            )
            do_log_event(
                kind="sync.after_step_failed",
                level=EventLevel.ERROR,
                account=account,
                message=_("Handling new mail after the sync failed: %(error)s")
                % {"error": f"{type(outcome).__name__}: {outcome}"},
            )


def do_set_message_flags(message: Message, *, actor: object = None, **changes: bool) -> Message:
    """Change read/flagged/answered in Postroom and on the server (B15).

    The server is written first: if it refuses, nothing changes here and the
    error reaches the caller. POP3 has no flags, so those stay local.
    """
    unknown = set(changes) - set(FLAG_NAMES)
    if unknown:
        raise ValueError(f"unknown flags: {sorted(unknown)}")
    account = message.account
    add = [FLAG_NAMES[n] for n, on in changes.items() if on]
    remove = [FLAG_NAMES[n] for n, on in changes.items() if not on]
    locations = list(message.locations.select_related("folder"))
    if locations and account_protocol(account) == IncomingProtocol.IMAP:
        check = incoming_check(account)
        with ImapSyncSession(check.endpoint, check.credentials) as session:
            by_folder: dict[str, list[MessageLocation]] = {}
            for location in locations:
                by_folder.setdefault(location.folder.name, []).append(location)
            for folder, rows in by_folder.items():
                status = session.select(folder, readonly=False)
                uids = [r.uid for r in rows if r.uidvalidity == status.uidvalidity]
                if add:
                    session.add_flags(uids, add)
                if remove:
                    session.remove_flags(uids, remove)
    with transaction.atomic():
        for location in locations:
            flags = (set(location.flags) | set(add)) - set(remove)
            location.flags = sorted(flags)
            location.save(update_fields=["flags"])
        for name, on in changes.items():
            setattr(message, name, on)
        message.save(update_fields=list(changes))
        do_log_event(
            kind="message.flags",
            account=account,
            message=_("Flags changed on a message."),
            data={
                "message": message.pk,
                "changes": changes,
                "actor": getattr(actor, "username", None),
            },
        )
    return message


def do_allow_remote_images(message: Message, *, actor: object = None) -> Message:
    """Show this message's remote images from now on (for everyone who can read it).

    Remote images are blocked by default because they tell the sender when
    and where the mail was read; allowing them is the reader's decision, so
    it is logged like a flag change.
    """
    if message.allow_remote_images:
        return message
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(allow_remote_images=True)
        message.allow_remote_images = True
        do_log_event(
            kind="message.remote_images",
            account=message.account,
            message=_("Remote images allowed on a message."),
            data={"message": message.pk, "actor": getattr(actor, "username", None)},
        )
    return message


def do_reprocess_quarantined(account: EmailAccount, *, actor: object = None) -> ExtractReport:
    """Parse an account's quarantined messages again, e.g. after a parser fix."""
    ids = list(
        Message.objects.filter(account=account, parse_state=ParseState.QUARANTINED).values_list(
            "pk", flat=True
        )
    )
    report = extract_messages(ids, account.max_attachment_size)
    do_log_event(
        kind="quarantine.reprocessed",
        account=account,
        message=_("Re-processed %(n)d quarantined message(s); %(q)d still quarantined.")
        % {"n": report.processed, "q": report.quarantined},
        data={"actor": getattr(actor, "username", None)},
    )
    return report


def do_move_message(message: Message, folder: str, *, actor: object = None) -> Message:
    """Move a message to another folder of its IMAP account, on the server first.

    The ledger keeps the old locations until the next sync of the target
    folder finds the message there (same bytes, same message): nothing is
    lost or duplicated in between. POP3 has no folders.
    """
    if account_protocol(message.account) != IncomingProtocol.IMAP:
        raise ValueError(_("Only IMAP accounts have folders to move mail to."))
    locations = list(message.locations.select_related("folder"))
    check = incoming_check(message.account)
    moved: list[int] = []
    with ImapSyncSession(check.endpoint, check.credentials) as session:
        by_folder: dict[str, list[MessageLocation]] = {}
        for location in locations:
            if location.folder.name != folder:
                by_folder.setdefault(location.folder.name, []).append(location)
        for name, rows in by_folder.items():
            status = session.select(name, readonly=False)
            current = [r for r in rows if r.uidvalidity == status.uidvalidity]
            session.move([r.uid for r in current], folder)
            moved.extend(r.pk for r in current)
    with transaction.atomic():
        MessageLocation.objects.filter(pk__in=moved).delete()
        do_log_event(
            kind="message.moved",
            account=message.account,
            message=_("Message moved to %(folder)s.") % {"folder": folder},
            data={
                "message": message.pk,
                "folder": folder,
                "actor": getattr(actor, "username", None),
            },
        )
    return message
