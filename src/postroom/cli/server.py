"""Sub-commands that run and administer the service itself."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from postroom.cli import CommandError

if TYPE_CHECKING:
    from postroom.incoming.watcher import Watcher
    from postroom.outgoing.worker import Worker

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help=_("migrate, then serve the web UI and API"))
    run.add_argument("--host", default=os.environ.get("POSTROOM_HOST", DEFAULT_HOST))
    run.add_argument("--port", type=int, default=int(os.environ.get("POSTROOM_PORT", DEFAULT_PORT)))
    run.add_argument("--threads", type=int, default=8)
    run.set_defaults(handler=cmd_run)

    run.add_argument("--no-watch", action="store_true", help=_("serve only; do not sync mailboxes"))
    run.add_argument(
        "--no-worker", action="store_true", help=_("serve only; do not send queued mail")
    )

    watch = sub.add_parser(
        "watch", help=_("keep mailboxes in sync (several watchers may share one database)")
    )
    watch.set_defaults(handler=cmd_watch)

    migrate = sub.add_parser("migrate", help=_("create or upgrade the database"))
    migrate.set_defaults(handler=cmd_migrate)

    createuser = sub.add_parser("createuser", help=_("create a user"))
    createuser.add_argument("username")
    createuser.add_argument("--email", default="")
    createuser.add_argument("--superuser", action="store_true")
    createuser.add_argument(
        "--password-env",
        metavar="VAR",
        help=_("read the password from this environment variable (else one is generated)"),
    )
    createuser.set_defaults(handler=cmd_createuser)

    rotate = sub.add_parser("rotate-key", help=_("re-encrypt every stored secret with a new key"))
    rotate.set_defaults(handler=cmd_rotate_key)


def _migrate(verbosity: int = 1) -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=verbosity)


def cmd_migrate(args: argparse.Namespace) -> int:
    _migrate()
    return 0


def ensure_first_admin() -> str | None:
    """Create the first superuser when none exists; returns the password to show once.

    ``POSTROOM_ADMIN_PASSWORD`` (and ``POSTROOM_ADMIN_USERNAME``) choose it; else
    one is generated. Re-running finds the existing admin and changes nothing.
    """
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    username = os.environ.get("POSTROOM_ADMIN_USERNAME", "admin")
    password = os.environ.get("POSTROOM_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    user_model.objects.create_superuser(username=username, email="", password=password)
    return password


def cmd_run(args: argparse.Namespace) -> int:
    from waitress import serve

    from postroom.wsgi import application

    _migrate(verbosity=0)
    password = ensure_first_admin()
    if password is not None:
        username = os.environ.get("POSTROOM_ADMIN_USERNAME", "admin")
        if os.environ.get("POSTROOM_ADMIN_PASSWORD"):
            print(
                _("Created admin user %(u)s with the password from POSTROOM_ADMIN_PASSWORD.")
                % {"u": username}
            )
        else:
            print(
                _("Created admin user %(u)s with password: %(p)s  (shown only this once)")
                % {"u": username, "p": password}
            )
    watcher = None if args.no_watch else _start_watcher_thread()
    worker = None if args.no_worker else _start_worker_thread()
    print(
        _("Postroom is serving on http://%(h)s:%(p)d/") % {"h": args.host, "p": args.port},
        flush=True,
    )
    try:
        serve(application, host=args.host, port=args.port, threads=args.threads, ident="postroom")
    finally:
        if watcher is not None:
            watcher.stop()
        if worker is not None:
            worker.stop()
    return 0


def _start_watcher_thread() -> Watcher:
    """The embedded default: the watcher runs beside the web server in one process."""
    import threading

    from postroom.incoming.watcher import Watcher

    watcher = Watcher()
    threading.Thread(target=watcher.run, name="watcher", daemon=True).start()
    return watcher


def _start_worker_thread() -> Worker:
    """The embedded default: queued mail leaves from the same process (C13)."""
    import threading

    from postroom.outgoing.worker import Worker

    worker = Worker()
    threading.Thread(target=worker.run, name="outgoing-worker", daemon=True).start()
    return worker


def cmd_watch(args: argparse.Namespace) -> int:
    import faulthandler
    import signal

    from postroom.incoming.watcher import Watcher

    watcher = Watcher()
    # `kill -USR1 PID` prints every thread's stack: how an operator sees where
    # a watcher waits without stopping it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    signal.signal(signal.SIGINT, lambda *_: watcher.stop())
    print(_("Watching mailboxes as %(h)s") % {"h": watcher.holder}, flush=True)
    watcher.run()
    return 0


def cmd_createuser(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    user_model = get_user_model()
    if user_model.objects.filter(username=args.username).exists():
        raise CommandError(_("A user named %(u)s already exists.") % {"u": args.username})
    generated = args.password_env is None
    if generated:
        password = secrets.token_urlsafe(12)
    else:
        password = os.environ.get(args.password_env, "")
        if not password:
            raise CommandError(
                _("The environment variable %(v)s is empty or not set.") % {"v": args.password_env}
            )
        try:
            validate_password(password)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
    create = (
        user_model.objects.create_superuser if args.superuser else user_model.objects.create_user
    )
    create(username=args.username, email=args.email, password=password)
    print(_("Created user %(u)s.") % {"u": args.username})
    if generated:
        print(_("Password: %(p)s  (shown only this once)") % {"p": password})
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from postroom.core.actions import do_rotate_encryption_key
    from postroom.core.secrets import keys_are_from_env

    count, new_key = do_rotate_encryption_key()
    print(_("Re-encrypted %(n)d stored row(s) with a new key.") % {"n": count})
    if keys_are_from_env():
        print(
            _(
                "Your keys come from POSTROOM_ENCRYPTION_KEYS: set it to the new key before the "
                "next start (the old keys no longer decrypt anything):"
            ),
            file=sys.stderr,
        )
        print(new_key)
    return 0
