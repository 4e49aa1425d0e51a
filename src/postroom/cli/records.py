"""``postroom records list`` and ``postroom account set``.

Both are fixed contracts other tooling drives; do not rename options or keys.

``postroom records list [--type T] --json`` prints one JSON array; each object
has at least ``reference``, ``type`` (the record type's key), ``title``,
``status``, ``contact`` (the address, or null) and ``message_count`` (received
messages on the record).

``postroom account set NAME --append-to TYPE [--folder F] [--create-contacts]``
makes mail arriving in folder F (every folder without its own setting when
omitted) create records of TYPE (a key or name, case-insensitive; ``none``
removes the setting).
"""

from __future__ import annotations

import argparse
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from postroom.accounts.models import Right
from postroom.accounts.permissions import has_right
from postroom.cli import CommandError
from postroom.cli.accounts import acting_user, add_as_user_option, find_account, print_json
from postroom.records.actions import do_save_routing_settings, do_set_append_to
from postroom.records.labels import status_label
from postroom.records.models import Record, RecordType
from postroom.records.permissions import records_for
from postroom.records.queries import RecordFilters, filter_records, find_record_type, with_counts


def _records(actor: AbstractBaseUser | None) -> QuerySet[Record]:
    return Record.objects.all() if actor is None else records_for(actor)


def record_row(record: Record) -> dict[str, Any]:
    """One record as ``records list --json`` prints it (annotated by ``with_counts``)."""
    return {
        "id": record.pk,
        "reference": record.reference,
        "type": record.type.key,
        "title": record.title,
        "status": record.status,
        "owner": record.owner.get_username() if record.owner else None,
        "contact": record.contact.email if record.contact else None,
        "account": record.account.name if record.account else None,
        "message_count": getattr(record, "message_count", 0),
        "created_at": record.created_at,
        "last_activity_at": record.last_activity_at,
    }


def _list(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    if args.type and find_record_type(args.type) is None:
        raise CommandError(_("--type: There is no record type %(t)s.") % {"t": args.type})
    filters = RecordFilters(type=args.type or "", status=args.status or "")
    if args.account:
        filters = RecordFilters(
            type=filters.type, status=filters.status, account=find_account(actor, args.account).pk
        )
    records = list(with_counts(filter_records(_records(actor), filters))[: args.limit])
    if args.json:
        print_json([record_row(r) for r in records])
        return 0
    if not records:
        print(_("No records."))
        return 0
    rows = [(_("REFERENCE"), _("TYPE"), _("STATUS"), _("CONTACT"), _("MESSAGES"), _("TITLE"))]
    for record in records:
        rows.append(
            (
                record.reference,
                record.type.display_name,
                status_label(record.status),
                record.contact.email if record.contact else "-",
                str(getattr(record, "message_count", 0)),
                record.title,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _set(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    account = find_account(actor, args.name)
    if actor is not None and not has_right(actor, account, Right.MANAGE):
        raise CommandError(
            _("%(user)s does not have the right to manage %(name)s.")
            % {"user": actor.get_username(), "name": account.name}
        )
    if args.append_to is None and args.create_contacts is None:
        raise CommandError(_("Nothing to set: give --append-to or --create-contacts."))
    if args.folder is not None and args.append_to is None:
        raise CommandError(_("--folder: Only with --append-to."))
    record_type: RecordType | None = None
    if args.append_to is not None and args.append_to.strip().lower() != "none":
        record_type = find_record_type(args.append_to)
        if record_type is None:
            names = ", ".join(RecordType.objects.order_by("key").values_list("key", flat=True))
            raise CommandError(
                _("--append-to: There is no record type %(t)s; choose one of: %(names)s, or none.")
                % {"t": args.append_to, "names": names}
            )
    folder = (args.folder or "").strip()
    with transaction.atomic():
        if args.append_to is not None:
            do_set_append_to(account, record_type, folder=folder, actor=actor)
        if args.create_contacts is not None:
            do_save_routing_settings(account, actor=actor, create_contacts=args.create_contacts)
    where = folder or _("every folder")
    if args.append_to is not None:
        if record_type is None:
            print(
                _("%(account)s: mail in %(folder)s no longer creates records.")
                % {"account": account.name, "folder": where}
            )
        else:
            print(
                _("%(account)s: mail in %(folder)s creates %(type)s records.")
                % {"account": account.name, "folder": where, "type": record_type.display_name}
            )
    if args.create_contacts is not None:
        print(
            (
                _("%(account)s: contacts are created from incoming mail.")
                if args.create_contacts
                else _("%(account)s: contacts are not created from incoming mail.")
            )
            % {"account": account.name}
        )
    return 0


def register_account_set(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``account set``: added to the ``account`` command group by ``cli.accounts``."""
    parser = commands.add_parser(
        "set",
        help=_("Set what an account does with its incoming mail (append-to, contacts)"),
        description=_(
            "Make mail arriving in a folder of the account create records of a type. "
            "TYPE is a record type key or name, case-insensitive; none removes the setting. "
            "Without --folder it applies to every folder that has no setting of its own."
        ),
    )
    parser.add_argument("name", metavar="NAME", help=_("Account name or address"))
    parser.add_argument("--append-to", metavar="TYPE", help=_("Record type to create, or none"))
    parser.add_argument("--folder", metavar="F", help=_("Only for mail in this IMAP folder"))
    contacts = parser.add_mutually_exclusive_group()
    contacts.add_argument(
        "--create-contacts",
        dest="create_contacts",
        action="store_const",
        const=True,
        default=None,
        help=_("Create contacts from the senders of incoming mail"),
    )
    contacts.add_argument(
        "--no-create-contacts",
        dest="create_contacts",
        action="store_const",
        const=False,
        help=_("Stop creating contacts from incoming mail"),
    )
    add_as_user_option(parser)
    parser.set_defaults(handler=_set)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    records = subparsers.add_parser(
        "records", help=_("Records"), description=_("List records (tickets, leads, ...).")
    )
    commands = records.add_subparsers(dest="records_command", required=True, metavar="COMMAND")
    list_ = commands.add_parser(
        "list",
        help=_("List records, most recently active first"),
        description=_(
            "With --json print one JSON array of objects with reference, type, title, "
            "status, contact (address or null) and message_count, among others."
        ),
    )
    list_.add_argument("--type", metavar="T", help=_("Only this record type (key or name)"))
    list_.add_argument("--status", metavar="S", help=_("Only records with this status"))
    list_.add_argument("--account", metavar="NAME", help=_("Only records of this account"))
    list_.add_argument(
        "--limit", type=int, default=1000, metavar="N", help=_("At most N records (1000)")
    )
    list_.add_argument("--json", action="store_true", help=_("Print a JSON array"))
    add_as_user_option(list_)
    list_.set_defaults(handler=_list)
