"""``postroom send`` and ``postroom outbox list``.

The command line is a contract other tooling drives; do not rename options or
change the JSON shapes (they are :func:`postroom.outgoing.queries.item_summary`).
Sending needs the send right on the account, listing any right (``--as-user``),
as in the API.

``send --wait`` returns when every recipient is final (sent, failed, bounced
or cancelled). While no worker runs it delivers the message itself, here, in
the foreground (so it works with nothing else running); a deferred recipient
keeps it waiting, asleep until the retry is due. Ctrl-C stops the waiting,
never the message: it stays queued.
"""

from __future__ import annotations

import argparse
import mimetypes
import sys
import time
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import has_right, visible_accounts
from postroom.cli import CommandError
from postroom.cli.accounts import (
    acting_user,
    add_as_user_option,
    find_account,
    print_errors,
    print_json,
)
from postroom.outgoing.actions import (
    AccountCannotSend,
    InvalidMessage,
    OutgoingAttachment,
    RecipientsSuppressed,
    deliver_due,
    do_queue_message,
)
from postroom.outgoing.models import ItemState, OutboxItem, RecipientStatus
from postroom.outgoing.queries import is_final, item_summary, outbox_items, worker_running
from postroom.outgoing.worker import make_worker_id

EXIT_NOT_ALL_SENT = 1
EXIT_INTERRUPTED = 130

# How often --wait looks at the item while a worker sends it, and the longest
# single sleep before it looks again (a worker may start or stop meanwhile).
POLL_SECONDS = 0.5
MAX_SLEEP_SECONDS = 30.0


def _sleep(seconds: float) -> None:
    """Interruptible (Ctrl-C); a seam for the tests."""
    time.sleep(seconds)


# -- input ------------------------------------------------------------------------


def _read_text(path: str, option: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(
            _("%(option)s: Cannot read %(path)s: %(reason)s")
            % {"option": option, "path": path, "reason": getattr(exc, "strerror", None) or exc}
        ) from exc


def _attachment(path: str) -> OutgoingAttachment:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(
            _("--attach: Cannot read %(path)s: %(reason)s")
            % {"path": path, "reason": exc.strerror or exc}
        ) from exc
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return OutgoingAttachment(Path(path).name, content_type, data)


def _sending_account(actor: AbstractBaseUser | None, name: str) -> EmailAccount:
    account = find_account(actor, name)
    if actor is not None and not has_right(actor, account, Right.SEND):
        raise CommandError(
            _("%(user)s does not have the right to send from %(name)s.")
            % {"user": actor.get_username(), "name": account.name}
        )
    return account


def _option_for(field: str) -> str | None:
    """``attachments[0].filename`` → ``--attach``; ``to`` → ``--to``."""
    base = field.split("[", 1)[0].split(".", 1)[0]
    options = {
        "to": "--to",
        "cc": "--cc",
        "bcc": "--bcc",
        "subject": "--subject",
        "text": "--body",
        "html": "--html-file",
        "attachments": "--attach",
    }
    return options.get(base, field)


# -- waiting ------------------------------------------------------------------------


def _wait(item: OutboxItem) -> OutboxItem:
    """Until every recipient is final; delivers in the foreground when no worker runs."""
    worker_id = f"cli-send:{make_worker_id()}"
    told: tuple[object, ...] = ()
    while True:
        item.refresh_from_db()
        if is_final(item):
            return item
        if not worker_running():
            deliver_due(worker_id, 1, item_ids=[item.pk])
            item.refresh_from_db()
            if is_final(item):
                return item
            due = item.next_attempt_at
            if due is None and item.lease_expires_at is not None:
                due = item.lease_expires_at  # held by a worker that has stopped
            delay = (due - timezone.now()).total_seconds() if due else POLL_SECONDS
        else:
            delay = POLL_SECONDS
        state = (item.state, item.wait_reason, item.next_attempt_at)
        if state != told and item.state == ItemState.DEFERRED and item.next_attempt_at:
            told = state
            waiting = [
                f"{r.address}: {r.reply}" if r.reply else r.address
                for r in item.recipients.filter(status=RecipientStatus.DEFERRED)
            ]
            print(
                _("postroom: waiting until %(at)s to retry (%(why)s): %(who)s")
                % {
                    "at": timezone.localtime(item.next_attempt_at).strftime("%H:%M:%S"),
                    "why": item.get_wait_reason_display() or _("deferred"),
                    "who": "; ".join(waiting),
                },
                file=sys.stderr,
                flush=True,
            )
        _sleep(min(max(delay, 0.05), MAX_SLEEP_SECONDS))


# -- output -------------------------------------------------------------------------


def _print_item(item: OutboxItem) -> None:
    print(
        _("Message %(id)s (outbox item %(pk)d): %(state)s")
        % {"id": item.message_id, "pk": item.pk, "state": item.get_state_display()}
    )
    for recipient in item.recipients.all():
        reply = f"  {recipient.reply}" if recipient.reply else ""
        print(f"  {recipient.address}  {recipient.get_status_display()}{reply}")


def _exit_code(item: OutboxItem) -> int:
    statuses = set(item.recipients.values_list("status", flat=True))
    return 0 if statuses <= {RecipientStatus.SENT} else EXIT_NOT_ALL_SENT


# -- send ---------------------------------------------------------------------------


def _send(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    account = _sending_account(actor, args.account)
    text = args.body if args.body is not None else _read_text(args.body_file, "--body-file")
    html = _read_text(args.html_file, "--html-file") if args.html_file else None
    attachments = [_attachment(path) for path in args.attach or []]
    try:
        item = do_queue_message(
            account,
            actor=actor,
            to=args.to or [],
            cc=args.cc or [],
            bcc=args.bcc or [],
            subject=args.subject,
            text=text,
            html=html,
            attachments=attachments,
        )
    except InvalidMessage as exc:
        return print_errors({exc.field: [exc.reason]}, _option_for)
    except (RecipientsSuppressed, AccountCannotSend) as exc:
        raise CommandError(str(exc)) from exc
    if args.wait:
        try:
            item = _wait(item)
        except KeyboardInterrupt:
            print(
                _("postroom: stopped waiting; the message stays queued (outbox item %(pk)d).")
                % {"pk": item.pk},
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
    item = outbox_items(state=None).get(pk=item.pk)
    if args.json:
        print_json(item_summary(item))
    else:
        _print_item(item)
    return _exit_code(item) if args.wait else 0


# -- outbox list --------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    accounts = EmailAccount.objects.all() if actor is None else visible_accounts(actor)
    if args.account:
        accounts = accounts.filter(pk=find_account(actor, args.account).pk)
    items = outbox_items(accounts, state=args.state)
    if args.limit:
        items = items[: args.limit]
    rows = list(items)
    if args.json:
        print_json([item_summary(item) for item in rows])
        return 0
    if not rows:
        print(_("The outbox is empty."))
        return 0
    for item in rows:
        print(
            f"{item.pk}  {item.created_at:%Y-%m-%d %H:%M}  {item.account.name}  "
            f"{item.get_state_display()}  {item.subject}"
        )
        for recipient in item.recipients.all():
            reply = f"  {recipient.reply}" if recipient.reply else ""
            print(f"    {recipient.address}  {recipient.get_status_display()}{reply}")
    return 0


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_("%(value)s is not a number") % {"value": value}) from exc
    if number < 0:
        raise argparse.ArgumentTypeError(_("%(value)s is negative") % {"value": value})
    return number


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = subparsers.add_parser(
        "send",
        help=_("Queue a message (and with --wait, see it delivered)"),
        description=_(
            "Queue one message from an account. With --wait return when every recipient "
            "is final (sent, failed, bounced or cancelled): when no worker is running the "
            "message is delivered here, in the foreground, and a deferred recipient keeps "
            "the command waiting for the retry. With --json print "
            '{"id", "message_id", "recipients": {ADDR: {"status", "reply"}}} (and more). '
            "Exit code 0 when every recipient was sent (or, without --wait, when the "
            "message was queued), 1 when some were not, 2 for bad input."
        ),
    )
    send.add_argument("--account", required=True, metavar="NAME", help=_("Account name or address"))
    send.add_argument("--to", action="append", metavar="ADDR", help=_("Recipient (repeatable)"))
    send.add_argument("--cc", action="append", metavar="ADDR", help=_("Cc recipient (repeatable)"))
    send.add_argument(
        "--bcc", action="append", metavar="ADDR", help=_("Bcc recipient (repeatable)")
    )
    send.add_argument("--subject", required=True, metavar="S", help=_("The subject"))
    body = send.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", metavar="TEXT", help=_("The text body"))
    body.add_argument("--body-file", metavar="F", help=_("Read the text body from F (UTF-8)"))
    send.add_argument("--html-file", metavar="F", help=_("An HTML alternative, read from F"))
    send.add_argument(
        "--attach", action="append", metavar="F", help=_("Attach the file F (repeatable)")
    )
    send.add_argument("--wait", action="store_true", help=_("Return when every recipient is final"))
    send.add_argument("--json", action="store_true", help=_("Print the result as JSON"))
    add_as_user_option(send)
    send.set_defaults(handler=_send)

    outbox = subparsers.add_parser(
        "outbox",
        help=_("Outgoing mail"),
        description=_("The outgoing queue: what was sent, what waits and why."),
    )
    commands = outbox.add_subparsers(dest="outbox_command", required=True, metavar="COMMAND")
    list_ = commands.add_parser(
        "list",
        help=_("List outbox items, newest first"),
        description=_(
            "List outbox items, newest first. --json prints a JSON array of objects with "
            "id, message_id, account (its name), subject, state, wait_reason, wait_detail, "
            "next_attempt_at, sent_copy and recipients {ADDR: {status, reply, kind}}."
        ),
    )
    list_.add_argument(
        "--state", choices=[str(s) for s in ItemState], help=_("Only items in this state")
    )
    list_.add_argument("--account", metavar="NAME", help=_("Only this account's items"))
    list_.add_argument(
        "--limit", metavar="N", type=_positive, default=0, help=_("At most N items (default: all)")
    )
    list_.add_argument("--json", action="store_true", help=_("Print a JSON array"))
    add_as_user_option(list_)
    list_.set_defaults(handler=_list)
