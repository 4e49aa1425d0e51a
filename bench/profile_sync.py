"""Profile ``postroom sync`` against the bench's Dovecot (a helper, not a benchmark).

Starts the private Dovecot of ``sync_bench.py`` with the cached N-message INBOX, then runs
``postroom sync NAME --json`` into a fresh data directory once per ``--runs``, either bare
(wall-clock and stage times) or under ``py-spy record`` (``--py-spy``: flame graph SVG,
speedscope ``.json`` or collapsed stacks ``.txt``) or ``cProfile`` (``--cprofile``, prints the top functions)::

    .venv/bin/python bench/profile_sync.py --messages 2000
    .venv/bin/python bench/profile_sync.py --messages 2000 --cprofile
    .venv/bin/python bench/profile_sync.py --messages 2000 --py-spy /tmp/sync.svg
"""

# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import sync_bench as sb  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--py-spy", dest="py_spy", metavar="OUT", default=None)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument(
        "--watch",
        type=int,
        default=0,
        metavar="K",
        help="after the sync, run `postroom watch` (under py-spy with --py-spy) and time K "
        "APPENDed messages until their row exists",
    )
    args = parser.parse_args()

    tools = sb.find_tools()
    mailbox, stats = sb.cached_mailbox(args.messages, args.seed)
    sb.log(f"mailbox: {stats.describe()}")
    workdir = Path(tempfile.mkdtemp(prefix="postroom-profile-"))
    workdir.chmod(0o711)
    server = sb.start_dovecot(workdir, False)
    try:
        sb.fill_inbox(server, sb.BENCH_USER, mailbox, args.messages)
        for run in range(args.runs):
            postroom = sb.prepare_postroom(tools, server, sb.BENCH_USER, workdir / f"p{run}")
            argv = [tools.postroom, "sync", postroom.account_name, "--json"]
            if args.cprofile:
                out = workdir / f"p{run}.prof"
                argv = [sys.executable, "-m", "cProfile", "-o", str(out), *argv]
            elif args.py_spy:
                spy = str(Path(sys.executable).parent / "py-spy")
                fmt = {".json": "speedscope", ".txt": "raw"}.get(
                    Path(args.py_spy).suffix, "flamegraph"
                )
                argv = [spy, "record", "--subprocesses", "--threads", "-r", "200", "-f", fmt,
                        "-o", args.py_spy, "--", *argv]  # fmt: skip
            probe = sb.ProgressProbe(postroom.db_path, args.messages)
            started = time.perf_counter()
            proc = subprocess.Popen(argv, env=postroom.env, cwd=postroom.base)
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                probe(time.perf_counter() - started, sb.MemoryPeaks())
                time.sleep(sb.SAMPLE_SECONDS)
            proc.returncode = os.waitstatus_to_exitcode(status)
            seconds = time.perf_counter() - started
            probe.close()
            sb.log(
                f"run {run}: exit {proc.returncode} after {seconds:.2f} s; "
                f"stored at {probe.stored_at}, complete at {probe.complete_at}; "
                f"CPU user {usage.ru_utime:.2f} s, sys {usage.ru_stime:.2f} s, "
                f"max RSS {usage.ru_maxrss / 1024:.0f} MB (load {os.getloadavg()[0]:.2f})"
            )
            if args.watch:
                watch(args, tools, server, postroom)
            if args.cprofile:
                import pstats

                pstats.Stats(str(workdir / f"p{run}.prof")).sort_stats(args.sort).print_stats(45)
    finally:
        server.dovecot.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return 0


def watch(
    args: argparse.Namespace, tools: sb.Tools, server: sb.Server, postroom: sb.Postroom
) -> None:
    """New-mail latency as the watcher sees it: APPEND -> row in the store (no web server)."""
    import random
    import sqlite3

    argv = [tools.postroom, "watch"]
    if args.py_spy:
        spy = str(Path(sys.executable).parent / "py-spy")
        out = str(Path(args.py_spy).with_suffix(".watch" + Path(args.py_spy).suffix))
        seconds = str(int(10 + 1.5 * args.watch))  # py-spy writes its output when it ends
        argv = [
            spy,
            "record",
            "--threads",
            "-r",
            "500",
            "-f",
            "raw",
            "-d",
            seconds,
            "-o",
            out,
            "--",
            *argv,
        ]
    rng = random.Random(args.seed)
    samples: list[float] = []
    with sb.background("watch", argv, postroom.env, postroom.base) as proc:
        db = sqlite3.connect(f"file:{postroom.db_path}?mode=ro", uri=True, timeout=5)

        def arrived(subject: str) -> bool:
            query = "SELECT 1 FROM incoming_message WHERE subject = ?"
            return db.execute(query, (subject,)).fetchone() is not None

        with server.dovecot.imap(sb.BENCH_USER) as imap:
            for index in range(args.watch + 1):
                time.sleep(rng.uniform(0.3, 1.0) if index else 0)
                subject = f"profwatch{os.getpid()}n{index}"
                sent = time.perf_counter()
                imap.append("INBOX", sb.latency_message(subject, index))
                while not arrived(subject):
                    if proc.poll() is not None or time.perf_counter() - sent > 60:
                        raise sb.BenchError("the watcher stopped or never stored the message")
                    time.sleep(0.002)
                if index:  # the first one waits for the watcher's first pass
                    samples.append(time.perf_counter() - sent)
        db.close()
        if args.py_spy:
            proc.wait(timeout=120)
    samples.sort()
    sb.log(
        f"watch: {len(samples)} messages, APPEND -> stored: p50 {sb.percentile(samples, 0.5):.3f} s, "
        f"p95 {sb.percentile(samples, 0.95):.3f} s, max {samples[-1]:.3f} s"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
