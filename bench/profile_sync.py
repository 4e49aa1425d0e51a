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
            if args.cprofile:
                import pstats

                pstats.Stats(str(workdir / f"p{run}.prof")).sort_stats(args.sort).print_stats(45)
    finally:
        server.dovecot.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
