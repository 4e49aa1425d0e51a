"""``postroom token create|list|revoke``: bearer tokens for the REST API.

Only a token's hash is stored, so ``create`` is the one chance to see it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils.translation import gettext as _

from postroom.cli import CommandError
from postroom.cli.accounts import acting_user, add_as_user_option, find_user, print_json
from postroom.core.actions import do_create_api_token, do_revoke_api_token
from postroom.core.models import ApiToken


def _may_handle_tokens_of(actor: AbstractBaseUser | None, owner: AbstractBaseUser) -> bool:
    """The operator and administrators handle anyone's tokens; a user only their own."""
    return actor is None or bool(getattr(actor, "is_superuser", False)) or actor.pk == owner.pk


def _refuse(actor: AbstractBaseUser | None, owner: AbstractBaseUser) -> None:
    if not _may_handle_tokens_of(actor, owner):
        assert actor is not None
        raise CommandError(
            _("%(user)s may only handle their own API tokens.") % {"user": actor.get_username()}
        )


def _create(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    user = find_user(args.user, "--user")
    _refuse(actor, user)
    if not user.is_active:
        raise CommandError(_("--user: %(name)s is not active.") % {"name": args.user})
    token, raw = do_create_api_token(user, args.name)
    # Only the token on stdout, so `TOKEN=$(postroom token create --user U)` works.
    print(raw)
    print(
        _("Created API token %(id)s (%(name)s) for %(user)s. It is shown only this once.")
        % {"id": token.pk, "name": token.name, "user": user.get_username()},
        file=sys.stderr,
    )
    return 0


def _token_dict(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
        "active": token.is_active,
    }


def _list(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    user = find_user(args.user, "--user")
    _refuse(actor, user)
    tokens = list(ApiToken.objects.filter(user_id=user.pk))
    if args.json:
        print_json([_token_dict(t) for t in tokens])
        return 0
    if not tokens:
        print(_("No API tokens for %(user)s.") % {"user": user.get_username()})
        return 0
    for token in tokens:
        state = (
            _("revoked %(when)s") % {"when": f"{token.revoked_at:%Y-%m-%d %H:%M}"}
            if token.revoked_at
            else _("active")
        )
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else _("never used")
        print(f"{token.pk}\t{token.prefix}…\t{token.name}\t{state}\t{used}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    actor = acting_user(args)
    token = ApiToken.objects.select_related("user").filter(pk=args.id).first()
    # A token of someone else is "not found" to a user who may not see it.
    if token is None or not _may_handle_tokens_of(actor, token.user):
        raise CommandError(_("There is no API token with id %(id)s.") % {"id": args.id})
    do_revoke_api_token(token)
    print(_("Revoked API token %(id)s (%(name)s).") % {"id": token.pk, "name": token.name})
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = subparsers.add_parser(
        "token",
        help=_("API tokens"),
        description=_("Create, list and revoke bearer tokens for the REST API (/api/v1/)."),
    )
    commands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")

    create = commands.add_parser(
        "create",
        help=_("Create a token and print it (only this once)"),
        description=_(
            "Create an API token for a user and print it on standard output. Only its hash "
            "is stored: keep it now, it cannot be shown again."
        ),
    )
    create.add_argument("--user", required=True, metavar="U", help=_("The token acts as this user"))
    create.add_argument("--name", default="cli", metavar="N", help=_("A name to recognise it by"))
    add_as_user_option(create)
    create.set_defaults(handler=_create)

    list_ = commands.add_parser(
        "list", help=_("List a user's tokens (never the tokens themselves)")
    )
    list_.add_argument("--user", required=True, metavar="U")
    list_.add_argument("--json", action="store_true", help=_("Print a JSON list"))
    add_as_user_option(list_)
    list_.set_defaults(handler=_list)

    revoke = commands.add_parser("revoke", help=_("Revoke a token; it stops working at once"))
    revoke.add_argument("id", metavar="ID", type=int, help=_("The token's id, from token list"))
    add_as_user_option(revoke)
    revoke.set_defaults(handler=_revoke)
