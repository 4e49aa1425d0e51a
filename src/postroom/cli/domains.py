"""``postroom domain add|list``: the server settings that accounts of a domain inherit (A1)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from django.utils.translation import gettext as _

from postroom.accounts.actions import do_save_domain
from postroom.accounts.models import EmailDomain
from postroom.accounts.permissions import can_manage_domains
from postroom.api.binding import bind_domain_form, domain_defaults
from postroom.api.serialize import domain_dict
from postroom.cli import CommandError
from postroom.cli.accounts import (
    acting_user,
    add_as_user_option,
    add_server_options,
    incoming_option_prefix,
    print_form_errors,
    print_json,
    print_warnings,
    read_ca_file,
    servers_given,
)


def _domain_option(args: argparse.Namespace) -> Callable[[str], str | None]:
    incoming = incoming_option_prefix(args)
    options = {
        "name": "DOMAIN",
        "incoming_protocol": incoming + "-host",
        "incoming_host": incoming + "-host",
        "incoming_port": incoming + "-port",
        "incoming_security": incoming + "-security",
        "smtp_host": "--smtp-host",
        "smtp_port": "--smtp-port",
        "smtp_security": "--smtp-security",
        "smtp_auth": "--smtp-no-auth",
        "verify_cert": "--no-verify-cert",
        "confirm_no_verify": "--no-verify-cert",
        "ca_cert": "--ca-file",
    }
    return lambda field: options.get(field, None if field == "__all__" else field)


def _add(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    if actor is not None and not can_manage_domains(actor):
        raise CommandError(
            _("%(user)s does not have the right to manage domains.")
            % {"user": actor.get_username()}
        )
    if servers_given(args, "imap") and servers_given(args, "pop3"):
        raise CommandError(_("Give either the --imap-* or the --pop3-* options, not both."))
    data = domain_defaults()
    data["name"] = args.domain
    for protocol in ("imap", "pop3"):
        if servers_given(args, protocol):
            data.update(
                incoming_protocol=protocol,
                incoming_host=getattr(args, f"{protocol}_host"),
                incoming_port=getattr(args, f"{protocol}_port"),
                incoming_security=getattr(args, f"{protocol}_security")
                or data["incoming_security"],
            )
    data.update(smtp_host=args.smtp_host, smtp_port=args.smtp_port)
    if args.smtp_security:
        data["smtp_security"] = args.smtp_security
    if args.smtp_no_auth:
        data["smtp_auth"] = False
    if args.ca_file:
        data["ca_cert"] = read_ca_file(args.ca_file)
    if args.no_verify_cert:
        # The flag itself is the explicit confirmation the web form asks for.
        data.update(verify_cert=False, confirm_no_verify=True)
    form = bind_domain_form(data)
    if not form.is_valid():
        return print_form_errors(form, _domain_option(args))
    print_warnings(form.warnings)
    domain = do_save_domain(form.save(commit=False), actor=actor)
    print(_("Added domain %(name)s.") % {"name": domain.name})
    return 0


def _list(args: argparse.Namespace) -> int:
    acting_user(args)  # an unknown --as-user is still an error
    domains = list(EmailDomain.objects.all())
    if args.json:
        print_json([domain_dict(d) for d in domains])
        return 0
    if not domains:
        print(_("No domains."))
        return 0
    rows = [(_("DOMAIN"), _("INCOMING"), _("OUTGOING"))]
    for d in domains:
        incoming = (
            f"{d.incoming_protocol}://{d.incoming_host}:{d.incoming_port} ({d.incoming_security})"
        )
        outgoing = f"smtp://{d.smtp_host}:{d.smtp_port} ({d.smtp_security})" if d.smtp_host else "-"
        rows.append((d.name, incoming, outgoing))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    domain = subparsers.add_parser(
        "domain",
        help=_("Mail domains"),
        description=_("Server settings that every account of a domain inherits."),
    )
    commands = domain.add_subparsers(dest="domain_command", required=True, metavar="COMMAND")

    add = commands.add_parser(
        "add",
        help=_("Add a domain"),
        description=_(
            "Add a domain with its incoming server (--imap-* or --pop3-*) and, optionally, "
            "its SMTP server. Invalid input exits with 2 and saves nothing."
        ),
    )
    add.add_argument("domain", metavar="DOMAIN", help=_("The domain name, e.g. example.com"))
    add_server_options(add)
    add_as_user_option(add)
    add.set_defaults(handler=_add)

    list_ = commands.add_parser("list", help=_("List the domains"))
    list_.add_argument("--json", action="store_true", help=_("Print a JSON list"))
    add_as_user_option(list_)
    list_.set_defaults(handler=_list)
