"""``postroom sync NAME`` and ``postroom messages list``.

The command line is a contract other tooling drives; do not rename options or
change the JSON shapes. Both commands need the read right on the account
(``--as-user``), as the API does.

``postroom sync`` never syncs an account at the same time as a watcher: when
a watcher holds the account's lease it asks that watcher for a pass (and with
``--wait`` follows it); otherwise it takes the lease itself, syncs in the
foreground and releases it, so it works with nothing else running.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.actions import SideResult
from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import has_right
from postroom.api.messages import locations_prefetch, message_dict
from postroom.cli import CommandError
from postroom.cli.accounts import (
    acting_user,
    add_as_user_option,
    find_account,
    print_json,
    side_line,
)
from postroom.core.models import Event
from postroom.incoming import leases
from postroom.incoming.actions import (
    describe_mail_error,
    do_request_sync,
    do_sync_account,
    status_for,
)
from postroom.incoming.models import Message, MessageLocation, ParseState, SyncState, SyncStatus
from postroom.incoming.watcher import make_holder_id
from postroom.mail.errors import MailError

EXIT_SYNC_FAILED = 1

# Lease holder names of `postroom sync` runs, as opposed to watchers.
CLI_HOLDER_PREFIX = "cli:"

# How often `sync --wait` looks at the status while a watcher syncs.
POLL_SECONDS = 0.5


def _readable_account(actor: AbstractBaseUser | None, name: str) -> EmailAccount:
    account = find_account(actor, name)
    if actor is not None and not has_right(actor, account, Right.READ):
        raise CommandError(
            _("%(user)s does not have the right to read the mail of %(name)s.")
            % {"user": actor.get_username(), "name": account.name}
        )
    return account


# -- progress on a terminal -----------------------------------------------------


class ProgressBar:
    """``NAME [#####.....] 120/500`` on stderr, redrawn in place; silent unless a terminal."""

    WIDTH = 30

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.drawn = False
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and done != total):
            return
        self._last = now
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


# -- sync -------------------------------------------------------------------------


@dataclass
class _Outcome:
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    error: SideResult | None = None


@contextmanager
def _lease(account_id: int) -> Iterator[bool]:
    """Hold the account's sync lease (True) or learn that a watcher has it (False).

    A heartbeat thread renews it, since fetching and extracting a big
    mailbox can take longer than one lease period.
    """
    holder = CLI_HOLDER_PREFIX + make_holder_id()
    if not leases.try_acquire(account_id, holder):
        yield False
        return
    stop = threading.Event()

    def heartbeat() -> None:
        try:
            while not stop.wait(leases.lease_seconds() / 3):
                leases.renew(account_id, holder)
        finally:
            close_old_connections()

    thread = threading.Thread(target=heartbeat, name=f"lease-{account_id}", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join()
        leases.release(account_id, holder)


def _sync_here(account: EmailAccount, bar: ProgressBar) -> _Outcome | None:
    """Sync in this process; None when a watcher took the account meanwhile."""
    with _lease(account.pk) as held:
        if not held:
            return None
        status = status_for(account)
        # As the watcher does: `sync --wait` elsewhere sees that a run started.
        SyncStatus.objects.filter(pk=status.pk).update(last_run_started_at=timezone.now())
        started = time.monotonic()
        try:
            result = do_sync_account(account, progress=bar)
        except MailError as exc:
            return _Outcome(error=describe_mail_error(account, exc))
        finally:
            bar.close()
        seconds = time.monotonic() - started
    batch = result.result
    quarantined = Message.objects.filter(
        pk__in=batch.new_message_ids, parse_state=ParseState.QUARANTINED
    ).count()
    return _Outcome(batch.fetched, batch.stored, batch.duplicates, quarantined, seconds)


def _finished_run(account: EmailAccount, status: SyncStatus, started: datetime) -> _Outcome | None:
    """The result of the watcher's run that began at ``started``, or None while it runs."""
    if status.state == SyncState.SYNCING:
        return None
    if status.last_success_at is not None and status.last_success_at >= started:
        event = (
            Event.objects.filter(account=account, kind="sync.completed", created_at__gte=started)
            .order_by("created_at", "pk")
            .first()
        )
        data: dict[str, Any] = event.data if event is not None else {}
        quarantined = Message.objects.filter(
            account=account, created_at__gte=started, parse_state=ParseState.QUARANTINED
        ).count()
        return _Outcome(
            fetched=int(data.get("fetched", 0)),
            stored=int(data.get("stored", 0)),
            duplicates=int(data.get("duplicates", 0)),
            quarantined=quarantined,
            seconds=(status.last_success_at - started).total_seconds(),
        )
    if status.state in (SyncState.ERROR, SyncState.AUTH_ERROR) and status.updated_at >= started:
        error = SideResult(
            ok=False,
            code=status.last_error_code or "error",
            message=status.last_error_message,
            fix="",
        )
        return _Outcome(error=error)
    return None


def _sync_by_watcher(account: EmailAccount, bar: ProgressBar) -> _Outcome | None:
    """Ask the watcher for a pass and wait for its result; None if the watcher went away."""
    requested = do_request_sync(account).sync_requested_at
    assert requested is not None
    try:
        while True:
            time.sleep(POLL_SECONDS)
            status = SyncStatus.objects.get(account=account)
            started = status.last_run_started_at
            if started is not None and started >= requested:
                outcome = _finished_run(account, status, started)
                if outcome is not None:
                    return outcome
                if status.state == SyncState.SYNCING:
                    bar(status.progress_done, status.progress_total)
            if leases.current_holder(account.pk) is None:
                # The holder stopped (or died: its lease expired) before it
                # finished our run; the caller syncs here instead.
                return None
    finally:
        bar.close()


def _check_syncable(account: EmailAccount) -> SideResult | None:
    if not account.incoming_enabled:
        raise CommandError(
            _("Incoming mail is switched off for %(name)s.") % {"name": account.name}
        )
    if not account.sync_enabled:
        raise CommandError(
            _("Sync is switched off for %(name)s; switch it on first.") % {"name": account.name}
        )
    if account.awaiting_password:
        return SideResult.awaiting_password()
    return None


def _sync(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    account = _readable_account(actor, args.name)
    label = _("sync of %(name)s") % {"name": account.name}
    refusal = _check_syncable(account)
    if refusal is not None:
        print(side_line(label, refusal), file=sys.stderr)
        return EXIT_SYNC_FAILED
    bar = ProgressBar(account.name)
    outcome: _Outcome | None = None
    while outcome is None:
        if leases.current_holder(account.pk) is None:
            outcome = _sync_here(account, bar)
        elif not (args.wait or args.json):
            do_request_sync(account)
            if (leases.current_holder(account.pk) or "").startswith(CLI_HOLDER_PREFIX):
                message = _(
                    "Another postroom sync of %(name)s is running now; "
                    "use --wait to sync again after it."
                )
            else:
                message = _("Sync of %(name)s requested; the watcher that holds it runs it now.")
            print(message % {"name": account.name})
            return 0
        else:
            outcome = _sync_by_watcher(account, bar)
    if outcome.error is not None:
        print(side_line(label, outcome.error), file=sys.stderr)
        return EXIT_SYNC_FAILED
    if args.json:
        print_json(
            {
                "account": args.name,
                "fetched": outcome.fetched,
                "stored": outcome.stored,
                "duplicates": outcome.duplicates,
                "quarantined": outcome.quarantined,
                "seconds": round(outcome.seconds, 3),
            },
            indent=None,
        )
    else:
        print(
            _(
                "Synced %(name)s: %(fetched)d fetched, %(stored)d new, %(duplicates)d already "
                "held, %(quarantined)d quarantined, in %(seconds).1f s."
            )
            % {
                "name": account.name,
                "fetched": outcome.fetched,
                "stored": outcome.stored,
                "duplicates": outcome.duplicates,
                "quarantined": outcome.quarantined,
                "seconds": outcome.seconds,
            }
        )
    return 0


# -- messages list ------------------------------------------------------------------


def _message_entries(
    account: EmailAccount, folder: str | None, limit: int | None
) -> Iterator[dict[str, Any]]:
    """One entry per (message, folder) location, newest message first.

    A message held without an IMAP location (POP3, or expunged from the
    server since) gives one entry with folder and uid null.
    """
    messages = Message.objects.filter(account=account).prefetch_related(locations_prefetch())
    if folder:
        messages = messages.filter(
            pk__in=MessageLocation.objects.filter(folder__account=account, folder__name=folder)
            .filter(uidvalidity=F("folder__uidvalidity"))
            .values("message_id")
        )
    messages = messages.order_by(F("date").desc(nulls_last=True), "-pk")
    if limit:
        # Each message gives at least one entry.
        messages = messages[:limit]
    count = 0
    for message in messages:
        data = message_dict(message)
        data["account"] = account.name
        locations = [loc for loc in data.pop("folders") if not folder or loc["folder"] == folder]
        imap_flags = {
            (loc.folder.name, loc.uid): sorted(loc.flags) for loc in message.locations.all()
        }
        for location in locations or [{"folder": None, "uid": None}]:
            key = (location["folder"], location["uid"])
            yield {**data, **location, "imap_flags": imap_flags.get(key, [])}
            count += 1
            if limit and count >= limit:
                return


def _plain_flags(flags: dict[str, bool]) -> str:
    marks = (("seen", "S"), ("flagged", "F"), ("answered", "A"))
    return "".join(mark if flags[name] else "-" for name, mark in marks)


def _list_messages(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    account = _readable_account(actor, args.account)
    entries = list(_message_entries(account, args.folder, args.limit))
    if args.json:
        print_json(entries)
        return 0
    if not entries:
        print(_("No messages."))
        return 0
    rows = [(_("DATE"), _("FLAGS"), _("FOLDER"), _("UID"), _("FROM"), _("SUBJECT"))]
    for entry in entries:
        date = entry["date"]
        sender = entry["from"]
        rows.append(
            (
                date.strftime("%Y-%m-%d %H:%M") if date else "-",
                _plain_flags(entry["flags"]),
                entry["folder"] or "-",
                str(entry["uid"]) if entry["uid"] is not None else "-",
                sender["email"] or sender["name"] or "-",
                entry["subject"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    return 0


# -- the parser ---------------------------------------------------------------------


def _limit(value: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_("%(value)s is not a number") % {"value": value}) from exc
    if number < 0:
        raise argparse.ArgumentTypeError(_("%(value)s is negative") % {"value": value})
    return number


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = subparsers.add_parser(
        "sync",
        help=_("Fetch new mail of an account now"),
        description=_(
            "Sync one account. If a watcher (postroom run / postroom watch) holds the "
            "account, ask it for a pass now; with --wait follow its progress and return "
            "when the account is up to date. Otherwise sync in the foreground, here, "
            "with or without --wait. A progress bar is shown on stderr when it is a "
            'terminal. With --json print one object {"account", "fetched", '
            '"stored", "duplicates", "quarantined", "seconds"} (--json implies '
            "--wait): quarantined counts the messages of this run that could not be "
            "parsed (kept raw, listed in the quarantine); seconds is the whole run, "
            "extraction included. Exit code 0 on success, 1 when the mail server "
            "refused or failed (the diagnosis is printed on stderr), 2 for bad input."
        ),
    )
    sync.add_argument("name", metavar="NAME", help=_("Account name or address"))
    sync.add_argument(
        "--wait",
        action="store_true",
        help=_("Return only when the account is up to date"),
    )
    sync.add_argument("--json", action="store_true", help=_("Print the counts as one JSON object"))
    add_as_user_option(sync)
    sync.set_defaults(handler=_sync)

    messages = subparsers.add_parser(
        "messages",
        help=_("Stored messages"),
        description=_("List the messages Postroom holds for an account."),
    )
    commands = messages.add_subparsers(dest="messages_command", required=True, metavar="COMMAND")
    list_ = commands.add_parser(
        "list",
        help=_("List an account's messages, newest first"),
        description=_(
            "List an account's messages, newest first, one entry per folder a message is "
            "in (a message in INBOX and Archive gives two entries; one held in no IMAP "
            "folder, e.g. from POP3, gives one with folder and uid null). --json prints a "
            "JSON array of objects with id, account (its name), message_id, subject, from {name, "
            "email}, to, cc, date, size, flags {seen, flagged, answered}, imap_flags, "
            "folder, uid, has_attachments, parse_state and thread."
        ),
    )
    list_.add_argument(
        "--account", required=True, metavar="NAME", help=_("Account name or address")
    )
    list_.add_argument("--folder", metavar="F", help=_("Only messages in this folder"))
    list_.add_argument(
        "--limit",
        metavar="N",
        type=_limit,
        default=0,
        help=_("At most N entries (default: all)"),
    )
    list_.add_argument("--json", action="store_true", help=_("Print a JSON array"))
    add_as_user_option(list_)
    list_.set_defaults(handler=_list_messages)
