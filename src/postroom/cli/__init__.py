"""The ``postroom`` command.

Each module in this package adds its sub-commands with ``register(subparsers)``;
a sub-command's handler takes the parsed arguments and returns the exit code.
Handlers validate with the same forms as the web UI and call ``do_*`` actions.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A problem the user can fix; printed without a traceback, exit code 2."""


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postroom.settings")
    import django

    django.setup()


def build_parser() -> argparse.ArgumentParser:
    from postroom.cli import accounts, domains, mail, outgoing, records, send, server, tokens

    parser = argparse.ArgumentParser(prog="postroom", description="Postroom mail room")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (server, domains, accounts, tokens, mail, outgoing, send, records):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _setup_django()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except CommandError as exc:
        print(f"postroom: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
