"""``postroom worker``: deliver the outgoing queue."""

from __future__ import annotations

import argparse

from django.utils.translation import gettext as _


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser(
        "worker",
        help=_("send queued mail (several workers may share one database)"),
    )
    worker.add_argument(
        "--threads",
        type=int,
        default=None,
        help=_("sending threads, each with its own connections (default: POSTROOM_WORKER_THREADS)"),
    )
    worker.add_argument(
        "--once",
        action="store_true",
        help=_("send what is due now, then exit"),
    )
    worker.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    import signal

    from postroom.outgoing.queue import Courier
    from postroom.outgoing.worker import Worker, make_worker_id

    if args.once:
        courier = Courier(make_worker_id())
        total = 0
        try:
            while claimed := courier.deliver_due(100):
                total += claimed
        finally:
            courier.close()
        print(_("Handled %(n)d queued message(s).") % {"n": total}, flush=True)
        return 0
    worker = Worker(threads=args.threads)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    print(_("Sending queued mail as %(w)s") % {"w": worker.worker_id}, flush=True)
    worker.run()
    return 0
