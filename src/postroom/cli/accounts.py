"""``postroom account add|list|show|test|remove``.

The command line is a contract other tooling drives; do not rename options.
Input is validated with the web UI's AccountForm and saved with the same
``do_*`` actions, so every interface refuses the same input with the same words.

This module also holds what the domain and token commands share: the
``--as-user`` option and printing form errors as ``--option: message`` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from postroom.accounts.actions import (
    AccountCheckFailed,
    ConnectionReport,
    SideResult,
    do_delete_account,
    do_save_account,
    do_test_account,
)
from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import (
    can_add_accounts,
    has_right,
    visible_accounts,
)
from postroom.accounts.resolve import resolve_servers
from postroom.api.binding import (
    account_defaults,
    bind_account_form,
    form_errors,
    owner_change_refused,
)
from postroom.api.serialize import account_dict, rights_by_account
from postroom.cli import CommandError

SECURITY_CHOICES = ("ssl", "starttls", "none")

# Exit codes besides 0 (success) and 2 (bad input, CommandError).
EXIT_CHECK_FAILED = 1


# -- shared with the domain and token commands --------------------------------


def add_as_user_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-user",
        metavar="USERNAME",
        help=_(
            "Act with this user's rights, exactly as in the web UI and the API. "
            "Without it the command acts as the site operator, who already holds "
            "the database and the encryption keys and so may do everything."
        ),
    )


def acting_user(args: argparse.Namespace) -> AbstractBaseUser | None:
    """The user named by ``--as-user``, or None for the site operator."""
    username = getattr(args, "as_user", None)
    if not username:
        return None
    user = (
        get_user_model()
        ._default_manager.filter(**{get_user_model().USERNAME_FIELD: username}, is_active=True)
        .first()
    )
    if user is None:
        raise CommandError(
            _("--as-user: There is no active user named %(name)s.") % {"name": username}
        )
    return user


def find_user(username: str, option: str) -> AbstractBaseUser:
    user = (
        get_user_model()
        ._default_manager.filter(**{get_user_model().USERNAME_FIELD: username})
        .first()
    )
    if user is None:
        raise CommandError(
            _("%(option)s: There is no user named %(name)s.") % {"option": option, "name": username}
        )
    return user


def print_errors(errors: dict[str, list[str]], option_for: Callable[[str], str | None]) -> int:
    """Each field error as ``postroom: error: --option: message``; returns exit code 2."""
    for field, messages in errors.items():
        label = option_for(field)
        for message in messages:
            prefix = f"{label}: " if label else ""
            print(f"postroom: error: {prefix}{message}", file=sys.stderr)
    return 2


def print_form_errors(form: forms.BaseForm, option_for: Callable[[str], str | None]) -> int:
    return print_errors(form_errors(form), option_for)


def print_warnings(warnings: Iterable[str]) -> None:
    for warning in warnings:
        print(_("postroom: warning: %(warning)s") % {"warning": warning}, file=sys.stderr)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: object, *, indent: int | None = 2) -> None:
    print(json.dumps(data, default=_json_default, indent=indent, ensure_ascii=False))


def read_ca_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(
            _("--ca-file: Cannot read %(path)s: %(reason)s")
            % {"path": path, "reason": getattr(exc, "strerror", None) or exc}
        ) from exc


# -- which accounts the actor may use ------------------------------------------


def _visible(actor: AbstractBaseUser | None) -> QuerySet[EmailAccount]:
    return EmailAccount.objects.all() if actor is None else visible_accounts(actor)


def _rights(actor: AbstractBaseUser | None, account: EmailAccount) -> list[str]:
    if actor is None:
        return [str(right) for right in Right]
    return [str(right) for right in Right if has_right(actor, account, right)]


def find_account(actor: AbstractBaseUser | None, name: str) -> EmailAccount:
    """NAME is the account name or its address; an account the actor cannot see is "not found"."""
    account = (
        _visible(actor)
        .select_related("domain", "owner")
        .filter(Q(name=name) | Q(email=name.strip().lower()))
        .first()
    )
    if account is None:
        raise CommandError(_("There is no account named %(name)s.") % {"name": name})
    return account


def _managed_account(actor: AbstractBaseUser | None, name: str) -> EmailAccount:
    account = find_account(actor, name)
    if actor is not None and not has_right(actor, account, Right.MANAGE):
        raise CommandError(
            _("%(user)s does not have the right to manage %(name)s.")
            % {"user": actor.get_username(), "name": account.name}
        )
    return account


# -- account add ----------------------------------------------------------------


def servers_given(args: argparse.Namespace, protocol: str) -> bool:
    """Whether any of --PROTOCOL-host/-port/-security was given."""
    return any(
        getattr(args, f"{protocol}_{part}") is not None for part in ("host", "port", "security")
    )


def incoming_option_prefix(args: argparse.Namespace) -> str:
    """Which options a user gave for incoming, to name them in error messages."""
    return "--pop3" if servers_given(args, "pop3") else "--imap"


def _account_option(args: argparse.Namespace) -> Callable[[str], str | None]:
    incoming = incoming_option_prefix(args)
    options = {
        "email": "--email",
        "name": "--name",
        "domain": "--domain",
        "preset": "--preset",
        "owner": "--owner",
        "incoming_enabled": "--no-incoming",
        "incoming_protocol": incoming + "-host",
        "incoming_host": incoming + "-host",
        "incoming_port": incoming + "-port",
        "incoming_security": incoming + "-security",
        "folders": "--folder",
        "login": "--login",
        "password": "--password-env",
        "outgoing_enabled": "--no-outgoing",
        "smtp_host": "--smtp-host",
        "smtp_port": "--smtp-port",
        "smtp_security": "--smtp-security",
        "smtp_auth": "--smtp-no-auth",
        "smtp_login": "--smtp-login",
        "smtp_password": "--smtp-password-env",
        "awaiting_password": "--awaiting-password",
        "ascii_password": "--ascii-password",
        "verify_cert": "--no-verify-cert",
        "confirm_no_verify": "--no-verify-cert",
        "ca_cert": "--ca-file",
        "allow_plaintext_login": "--allow-plaintext-login",
        "sender_name": "--sender-name",
        "use_for_integration": "--integration",
        "default_incoming": "--default-incoming",
        "default_outgoing": "--default-outgoing",
        "skip_check": "--skip-check",
    }
    return lambda field: options.get(field, None if field == "__all__" else field)


def _password_from_env(var: str | None, option: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise CommandError(
            _("%(option)s: The environment variable %(var)s is not set.")
            % {"option": option, "var": var}
        )
    return value


def _account_data(args: argparse.Namespace, actor: AbstractBaseUser | None) -> dict[str, Any]:
    if servers_given(args, "imap") and servers_given(args, "pop3"):
        raise CommandError(_("Give either the --imap-* or the --pop3-* options, not both."))
    data = account_defaults()
    data.update(email=args.email, name=args.name, preset=args.preset, domain=args.domain)
    data["owner"] = args.owner or (actor.get_username() if actor is not None else None)
    for protocol in ("imap", "pop3"):
        if servers_given(args, protocol):
            data.update(
                incoming_protocol=protocol,
                incoming_host=getattr(args, f"{protocol}_host"),
                incoming_port=getattr(args, f"{protocol}_port"),
                incoming_security=getattr(args, f"{protocol}_security"),
            )
    data.update(
        smtp_host=args.smtp_host, smtp_port=args.smtp_port, smtp_security=args.smtp_security
    )
    if args.smtp_no_auth:
        data["smtp_auth"] = False
    if args.folder:
        data["folders"] = args.folder
    data.update(login=args.login, smtp_login=args.smtp_login, sender_name=args.sender_name)
    data["password"] = _password_from_env(args.password_env, "--password-env")
    data["smtp_password"] = _password_from_env(args.smtp_password_env, "--smtp-password-env")
    if args.ca_file:
        data["ca_cert"] = read_ca_file(args.ca_file)
    if args.no_verify_cert:
        # The flag itself is the explicit confirmation the form asks for (A12).
        data.update(verify_cert=False, confirm_no_verify=True)
    data.update(
        incoming_enabled=not args.no_incoming,
        outgoing_enabled=not args.no_outgoing,
        default_incoming=args.default_incoming,
        default_outgoing=args.default_outgoing,
        awaiting_password=args.awaiting_password,
        ascii_password=args.ascii_password,
        allow_plaintext_login=args.allow_plaintext_login,
        use_for_integration=args.integration,
        skip_check=args.skip_check,
    )
    return data


def _add(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    if actor is not None and not can_add_accounts(actor):
        raise CommandError(
            _("%(user)s does not have the right to add accounts.") % {"user": actor.get_username()}
        )
    option_for = _account_option(args)
    refusal = owner_change_refused(actor, args.owner, None)
    if refusal:
        return print_errors({"owner": [refusal]}, option_for)
    form = bind_account_form(_account_data(args, actor))
    if not form.is_valid():
        return print_form_errors(form, option_for)
    print_warnings(form.warnings)
    account = form.save(commit=False)
    password, smtp_password = form.passwords()
    try:
        do_save_account(
            account,
            actor=actor,
            password=password,
            smtp_password=smtp_password,
            check=not args.skip_check,
        )
    except AccountCheckFailed as exc:
        print(
            _("postroom: error: %(message)s Nothing was saved.") % {"message": exc}, file=sys.stderr
        )
        _print_report(exc.report, file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(_("Added account %(name)s <%(email)s>.") % {"name": account.name, "email": account.email})
    return 0


# -- account list / show --------------------------------------------------------


def _side_summary(enabled: bool, protocol: str | None, host: str | None, port: int | None) -> str:
    if not enabled:
        return "-"
    return f"{protocol or '?'}://{host or '?'}:{port or '?'}"


def _list(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    accounts = list(_visible(actor).select_related("domain", "owner"))
    rights = rights_by_account(actor)
    if args.json:
        print_json(
            [
                account_dict(a, rights=rights.get(a.pk, []) if actor is not None else None)
                for a in accounts
            ]
        )
        return 0
    if not accounts:
        print(_("No accounts."))
        return 0
    rows = [(_("NAME"), _("ADDRESS"), _("INCOMING"), _("OUTGOING"), _("OWNER"))]
    for account in accounts:
        servers = resolve_servers(account)
        rows.append(
            (
                account.name,
                account.email,
                _side_summary(
                    account.incoming_enabled,
                    servers.incoming_protocol,
                    servers.incoming_host,
                    servers.incoming_port,
                ),
                _side_summary(
                    account.outgoing_enabled, "smtp", servers.smtp_host, servers.smtp_port
                ),
                account.owner.get_username() if account.owner is not None else "-",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    account = find_account(actor, args.name)
    data = account_dict(account, rights=_rights(actor, account))
    if args.json:
        print_json(data)
        return 0
    servers = data.pop("servers")
    for key, value in data.items():
        print(f"{key}: {_plain(value)}")
    for key, value in servers.items():
        print(f"servers.{key}: {_plain(value)}")
    return 0


def _plain(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# -- account test ----------------------------------------------------------------


def _side_json(side: SideResult | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {"ok": side.ok, "code": side.code, "message": side.message, "fix": side.fix}


def side_line(label: str, side: SideResult | None) -> str:
    if side is None:
        return _("%(side)s: disabled") % {"side": label}
    if side.ok:
        return _("%(side)s: ok: %(message)s") % {"side": label, "message": side.message}
    line = _("%(side)s: FAILED (%(code)s): %(message)s") % {
        "side": label,
        "code": side.code,
        "message": side.message,
    }
    if side.fix:
        line += " " + _("Fix: %(fix)s") % {"fix": side.fix}
    return line


def _print_report(report: ConnectionReport, *, file: Any = None) -> None:
    print(side_line(_("incoming"), report.incoming), file=file or sys.stdout)
    print(side_line(_("outgoing"), report.outgoing), file=file or sys.stdout)


def _test(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    account = _managed_account(actor, args.name)
    report = do_test_account(account, actor=actor)
    if args.json:
        # The contract: exactly one JSON object on stdout, a disabled side as null.
        print_json(
            {"incoming": _side_json(report.incoming), "outgoing": _side_json(report.outgoing)},
            indent=None,
        )
    else:
        _print_report(report)
    return 0 if report.ok else EXIT_CHECK_FAILED


# -- account remove ----------------------------------------------------------------


def _remove(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    account = _managed_account(actor, args.name)
    name = account.name
    do_delete_account(account, actor=actor)
    print(_("Removed account %(name)s.") % {"name": name})
    return 0


# -- the parser ---------------------------------------------------------------------


def _port(value: str) -> int:
    # Only the type is checked here; the range (1-65535) is the form's rule.
    try:
        return int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_("%(value)s is not a number") % {"value": value}) from exc


def _server_options(parser: argparse.ArgumentParser, prefix: str, label: str) -> None:
    parser.add_argument(
        f"--{prefix}-host", metavar="H", help=_("%(label)s server") % {"label": label}
    )
    parser.add_argument(
        f"--{prefix}-port", metavar="P", type=_port, help=_("%(label)s port") % {"label": label}
    )
    parser.add_argument(
        f"--{prefix}-security",
        choices=SECURITY_CHOICES,
        help=_("%(label)s security") % {"label": label},
    )


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """--imap-*, --pop3-*, --smtp-* and TLS options, shared with ``domain add``."""
    _server_options(parser, "imap", "IMAP")
    _server_options(parser, "pop3", "POP3")
    _server_options(parser, "smtp", "SMTP")
    parser.add_argument(
        "--smtp-no-auth",
        action="store_true",
        help=_("Send without logging in (a relay that trusts this server's address)."),
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        help=_(
            "Trust the CA certificate in this PEM file (a self-hosted server's private CA) "
            "while still verifying certificates."
        ),
    )
    parser.add_argument(
        "--no-verify-cert",
        action="store_true",
        help=_(
            "Do not verify server certificates. Anyone on the network path could then read "
            "the password and the mail; giving this option is the explicit confirmation."
        ),
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = subparsers.add_parser(
        "account",
        help=_("Mail accounts"),
        description=_("Add, list, show, test, set and remove mail accounts."),
    )
    commands = account.add_subparsers(dest="account_command", required=True, metavar="COMMAND")

    add = commands.add_parser(
        "add",
        help=_("Add an account (its servers are checked first unless --skip-check)"),
        description=_(
            "Add a mail account. Servers come from --preset, from --domain (or the domain of "
            "the address), or from the --imap-*/--pop3-* and --smtp-* options. Passwords are "
            "read from environment variables, never from the command line. The servers are "
            "asked first; if they refuse, the diagnosis is printed, nothing is saved and the "
            "exit code is 1. Invalid input exits with 2."
        ),
    )
    add.add_argument("--email", required=True, metavar="E", help=_("The account's address"))
    add.add_argument("--name", metavar="N", help=_("Account name (default: the address)"))
    add.add_argument("--preset", metavar="P", help=_("Provider preset key"))
    add.add_argument("--domain", metavar="D", help=_("Take the servers from this domain"))
    add_server_options(add)
    add.add_argument(
        "--folder",
        action="append",
        metavar="F",
        help=_("IMAP folder to use; repeat for more (default INBOX)"),
    )
    add.add_argument("--login", metavar="L", help=_("Incoming login (default: the address)"))
    add.add_argument(
        "--smtp-login", metavar="L", help=_("SMTP username (default: the incoming login)")
    )
    add.add_argument(
        "--password-env", metavar="VAR", help=_("Read the password from this environment variable")
    )
    add.add_argument(
        "--smtp-password-env",
        metavar="VAR",
        help=_("Read the SMTP password from this environment variable (default: the password)"),
    )
    add.add_argument("--no-incoming", action="store_true", help=_("Switch incoming mail off"))
    add.add_argument("--no-outgoing", action="store_true", help=_("Switch outgoing mail off"))
    add.add_argument(
        "--default-incoming", action="store_true", help=_("Make this the default incoming account")
    )
    add.add_argument(
        "--default-outgoing", action="store_true", help=_("Make this the default outgoing account")
    )
    add.add_argument("--skip-check", action="store_true", help=_("Save without asking the servers"))
    add.add_argument("--owner", metavar="USERNAME", help=_("The user who owns the account"))
    add.add_argument(
        "--awaiting-password",
        action="store_true",
        help=_("Create it without a password; its owner enters it at next sign-in"),
    )
    add.add_argument(
        "--ascii-password", action="store_true", help=_("The server accepts ASCII passwords only")
    )
    add.add_argument(
        "--allow-plaintext-login",
        action="store_true",
        help=_("Allow sending the password over an unencrypted connection (security none)"),
    )
    add.add_argument("--sender-name", metavar="NAME", help=_("Display name on sent mail"))
    add.add_argument(
        "--integration",
        action="store_true",
        help=_("Use the account for the API and webhooks only"),
    )
    add_as_user_option(add)
    add.set_defaults(handler=_add)

    list_ = commands.add_parser("list", help=_("List the accounts"))
    list_.add_argument("--json", action="store_true", help=_("Print a JSON list"))
    add_as_user_option(list_)
    list_.set_defaults(handler=_list)

    show = commands.add_parser("show", help=_("Show one account (never its passwords)"))
    show.add_argument("name", metavar="NAME", help=_("Account name or address"))
    show.add_argument("--json", action="store_true", help=_("Print a JSON object"))
    add_as_user_option(show)
    show.set_defaults(handler=_show)

    test = commands.add_parser(
        "test",
        help=_("Test connection: try incoming and outgoing"),
        description=_(
            "Try the account's incoming and outgoing servers separately. Exit code 0 only "
            "when every enabled side works, 1 otherwise. With --json print one object "
            '{"incoming": {"ok", "code", "message", "fix"}, "outgoing": ...}, '
            "a disabled side being null."
        ),
    )
    test.add_argument("name", metavar="NAME", help=_("Account name or address"))
    test.add_argument("--json", action="store_true", help=_("Print one JSON object"))
    add_as_user_option(test)
    test.set_defaults(handler=_test)

    remove = commands.add_parser("remove", help=_("Remove an account"))
    remove.add_argument("name", metavar="NAME", help=_("Account name or address"))
    add_as_user_option(remove)
    remove.set_defaults(handler=_remove)

    from postroom.cli.records import register_account_set

    register_account_set(commands)
