"""Incoming-sync benchmark: Postroom's first sync against mbsync and getmail6.

Run from the repository root (it is a script that prints figures, not a test)::

    .venv/bin/python bench/sync_bench.py                  # 20,000 messages
    .venv/bin/python bench/sync_bench.py --messages 500   # a quick try
    .venv/bin/python bench/sync_bench.py --big            # also 100,000 (Postroom only)

In one run it prepares a private Dovecot (the test fixtures of ``tests/servers``) whose
INBOX holds N generated messages (``bench/mailgen.py``: seeded, realistic size mix,
attachments, HTML, threads, ISO-8859-2, ISO-2022-JP, a few broken ones; the generated
Maildir is cached under ``/tmp/postroom-bench-cache`` keyed by N and seed), then measures,
all over IMAPS with the run's private CA:

* mbsync (isync) pulling INBOX into a fresh Maildir — the C reference — just before and
  just after Postroom's sync; the faster run is the reference;
* ``postroom sync`` into a fresh data directory (SQLite): "stored" is the moment every
  message has a row (headers parsed, threaded, findable), "complete" the moment none is
  left in parse state ``headers`` (bodies and attachments extracted); peak RSS of the
  process and its children (the extraction pool);
* getmail6 pulling INBOX into a fresh Maildir — a Python reference (the slowest part);
* new-mail latency: ``postroom watch`` and ``postroom run --no-watch`` against that data
  directory, another client APPENDs a message, and the time until the REST API lists it;

and prints a table with the issue's targets (issue 3, "Performance") marked PASS or MISS,
with the CPU that other work on the machine took during each measurement. Nothing is
hard-coded: every figure is measured in the run. Tools needed (the script installs
nothing): ``apt-get install -y isync getmail6 dovecot-imapd``. See bench/README.md.
"""

# A bench script: it runs local tools with arguments it builds itself, and its passwords
# are throwaway ones for a private Dovecot that lives as long as the run.
# ruff: noqa: S603, S607, S105

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH_DIR))

from mailgen import GENERATOR_VERSION, MailGenerator, percentile  # noqa: E402

INSTALL_HINT = "apt-get install -y isync getmail6 dovecot-imapd"
CACHE_ROOT = Path(tempfile.gettempdir()) / "postroom-bench-cache"
BENCH_USER = "bench@example.test"
BIG_USER = "bench-big@example.test"
MAIL_PASSWORD = "bench-mail-secret"
ADMIN_USER = "benchadmin"
ADMIN_PASSWORD = "Bench-admin-password-2718"
SAMPLE_SECONDS = 0.05

# Targets of issue 3, "Performance".
TARGET_STORED_VS_MBSYNC = 1.5
TARGET_COMPLETE_VS_MBSYNC = 0.75
TARGET_RSS_MB = 250.0
TARGET_LATENCY_P99 = 0.6
# Other work above this many cores during a measurement gets a warning under the table.
BUSY_MACHINE_CORES = 0.25
# "The same for 20,000 and 100,000 messages": allowed growth of the big run's peak.
RSS_FLAT_TOLERANCE = 0.15


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


# ====================================================================== tools


@dataclass(frozen=True)
class Tools:
    mbsync: str
    getmail: str
    postroom: str
    dovecot: str
    doveadm: str


def find_tools() -> Tools:
    """Locate every program the bench runs, or explain how to install the missing ones."""
    postroom = Path(sys.executable).parent / "postroom"
    found = {
        "mbsync": shutil.which("mbsync"),
        "getmail": shutil.which("getmail"),
        "dovecot": shutil.which("dovecot") or _existing("/usr/sbin/dovecot"),
        "doveadm": shutil.which("doveadm") or _existing("/usr/bin/doveadm"),
        "postroom": str(postroom) if postroom.exists() else shutil.which("postroom"),
    }
    missing = [name for name, path in found.items() if path is None]
    if missing:
        hint = {
            "mbsync": "isync",
            "getmail": "getmail6",
            "dovecot": "dovecot-imapd",
            "doveadm": "dovecot-imapd",
        }
        packages = sorted({hint[m] for m in missing if m in hint})
        lines = [f"missing tools: {', '.join(missing)}"]
        if packages:
            lines.append(
                f"install them with:  {INSTALL_HINT}   (needed here: {' '.join(packages)})"
            )
        if "postroom" in missing:
            lines.append(
                "postroom is not installed in this interpreter's environment: run the bench "
                "with the project's venv (.venv/bin/python bench/sync_bench.py) after "
                "`pip install -e .`"
            )
        raise BenchError("\n".join(lines))
    return Tools(**{k: v for k, v in found.items() if v is not None})


def _existing(path: str) -> str | None:
    return path if os.path.exists(path) else None


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


# ====================================================================== process sampling


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        kids.extend(int(x) for x in text.split())
    return kids


def process_tree(root: int) -> list[int]:
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(_children(pid))
    return tree


def _status_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of ``pid`` in KiB, or None when it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = hwm = None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    if rss is None or hwm is None:
        return None
    return rss, hwm


@dataclass
class MemoryPeaks:
    tree_rss_kb: int = 0  # largest sampled sum of VmRSS over the process tree
    current_tree_rss_kb: int = 0  # the latest sample
    hwm_kb: dict[int, int] = field(default_factory=dict)  # last VmHWM seen per pid
    root_pid: int = 0
    wait4_maxrss_kb: int = 0  # ru_maxrss from wait4: exact peak of the largest process

    @property
    def root_hwm_kb(self) -> int:
        return max(self.hwm_kb.get(self.root_pid, 0), 0)

    @property
    def sum_hwm_kb(self) -> int:
        return sum(self.hwm_kb.values())

    @property
    def processes(self) -> int:
        return len(self.hwm_kb)


class Sampler(threading.Thread):
    """Samples a process tree's memory, and runs ``probe`` on every tick."""

    def __init__(self, root_pid: int, peaks: MemoryPeaks, probe: Callable[[], None] | None) -> None:
        super().__init__(name="sampler", daemon=True)
        self.root_pid = root_pid
        self.peaks = peaks
        self.probe = probe
        self.stop_event = threading.Event()

    def sample(self) -> None:
        total = 0
        for pid in process_tree(self.root_pid):
            kb = _status_kb(pid)
            if kb is None:
                continue
            total += kb[0]
            self.peaks.hwm_kb[pid] = max(self.peaks.hwm_kb.get(pid, 0), kb[1])
        self.peaks.current_tree_rss_kb = total
        self.peaks.tree_rss_kb = max(self.peaks.tree_rss_kb, total)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            if self.probe is not None:
                self.probe()
            self.stop_event.wait(SAMPLE_SECONDS)


# ---------------------------------------------------------------------- CPU accounting

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores, /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used by the processes of group ``pgid``, including the children they
    have reaped (Dovecot's master reaps its imap processes)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # Fields after the command name: state ppid pgrp ... utime(12) stime cutime cstime
        if int(fields[2]) == pgid:
            total += sum(int(x) for x in fields[11:15])
    return total / CLOCK_TICKS


@dataclass
class CpuSnapshot:
    busy: float
    server: float
    bench: float

    @classmethod
    def take(cls, server_pgid: int | None) -> CpuSnapshot:
        own = os.times()
        return cls(
            busy=machine_busy_seconds(),
            server=group_cpu_seconds(server_pgid) if server_pgid else 0.0,
            bench=own.user + own.system,
        )


@dataclass
class RunResult:
    name: str
    argv: list[str]
    returncode: int
    seconds: float
    cpu_seconds: float
    memory: MemoryPeaks
    stdout: str
    stderr: str
    notes: list[str] = field(default_factory=list)
    server_cpu_seconds: float = 0.0  # Dovecot, serving this run
    other_cpu_seconds: float = 0.0  # everything else on the machine meanwhile

    @property
    def other_cores(self) -> float:
        """How many cores other work kept busy, on average, while this ran."""
        return self.other_cpu_seconds / self.seconds if self.seconds else 0.0

    def check(self) -> RunResult:
        if self.returncode != 0:
            raise BenchError(
                f"{self.name} failed with exit code {self.returncode}: {' '.join(self.argv)}\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
            )
        return self


def run_measured(
    name: str,
    argv: list[str],
    *,
    env: dict[str, str],
    workdir: Path,
    timeout: float,
    probe: Callable[[float, MemoryPeaks], None] | None = None,
    server_pgid: int | None = None,
) -> RunResult:
    """Run ``argv`` to completion; wall time, CPU time and memory of it and its children.

    ``probe`` is called with the elapsed seconds and the memory peaks so far on every
    sampling tick, and once after exit. With ``server_pgid`` (Dovecot's process group) the
    CPU the machine spent on anything but this run, its server and the bench itself is
    recorded too: the figure that says how far other work skewed this one.
    """
    out_path = workdir / f"{name}.stdout"
    err_path = workdir / f"{name}.stderr"
    before = CpuSnapshot.take(server_pgid)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    peaks = MemoryPeaks(root_pid=proc.pid)
    tick: Callable[[], None] | None = None
    if probe is not None:
        bound = probe
        tick = lambda: bound(time.perf_counter() - started, peaks)  # noqa: E731
    sampler = Sampler(proc.pid, peaks, tick)
    sampler.start()
    timer = threading.Timer(timeout, _kill_group, args=(proc.pid,))
    timer.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - started
    after = CpuSnapshot.take(server_pgid)
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop_event.set()
    sampler.join()
    cpu_seconds = usage.ru_utime + usage.ru_stime
    server_cpu = after.server - before.server
    other_cpu = (after.busy - before.busy) - cpu_seconds - server_cpu - (after.bench - before.bench)
    if probe is not None:
        probe(seconds, peaks)
    peaks.wait4_maxrss_kb = usage.ru_maxrss
    # The extraction pool's workers are reaped by the process itself; make sure none is left.
    _kill_group(proc.pid)
    return RunResult(
        name=name,
        argv=argv,
        returncode=proc.returncode,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        memory=peaks,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        server_cpu_seconds=server_cpu,
        other_cpu_seconds=max(0.0, other_cpu),
    )


def _kill_group(pgid: int) -> None:
    """SIGKILL the process group we created for one of our children (start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run_quiet(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    """Run a setup command; return its stdout, raise with its output when it fails."""
    result = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(
            f"`{' '.join(argv)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


# ====================================================================== the mailbox


@dataclass(frozen=True)
class MailboxStats:
    count: int
    median: float
    mean: float
    p99: float
    largest: int
    total_bytes: int
    kinds: dict[str, int]
    generated_in: float

    def describe(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items(), key=lambda kv: -kv[1]))
        return (
            f"{self.count:,} messages, {self.total_bytes / 1e6:,.1f} MB on the wire; "
            f"median {self.median / 1e3:.1f} KB, mean {self.mean / 1e3:.1f} KB, "
            f"p99 {self.p99 / 1e3:.0f} KB, largest {self.largest / 1e6:.2f} MB\n"
            f"           kinds: {kinds}"
        )


def cached_mailbox(count: int, seed: int) -> tuple[Path, MailboxStats]:
    """The generated Maildir for (count, seed), generated on first use and then reused."""
    key = f"v{GENERATOR_VERSION}-n{count}-seed{seed}"
    target = CACHE_ROOT / key
    stats_file = target / "stats.json"
    if stats_file.exists():
        data = json.loads(stats_file.read_text())
        log(f"mailbox: reusing the cached Maildir {target}")
        return target / "Maildir", MailboxStats(**data)

    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"{key}.building-", dir=CACHE_ROOT))
    maildir = building / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    log(f"mailbox: generating {count:,} messages (seed {seed}) into {target} ...")
    started = time.perf_counter()
    sizes: list[int] = []
    kinds: dict[str, int] = {}
    for message in MailGenerator(count, seed).messages():
        wire = message.wire_size
        sizes.append(wire)
        kind = message.kind.split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
        stamp = int(message.date.timestamp())
        base = f"{stamp}.M{message.index:06d}P{seed}.postroom-bench,S={len(message.raw)},W={wire}"
        path = maildir / (
            "new" / Path(base) if not message.flags else "cur" / Path(f"{base}:2,{message.flags}")
        )
        path.write_bytes(message.raw)
        # Dovecot takes the received date (INTERNALDATE) from the file's mtime.
        os.utime(path, (stamp, stamp))
        if (message.index + 1) % 5_000 == 0:
            log(f"mailbox: {message.index + 1:,} / {count:,} generated")
    sizes.sort()
    stats = MailboxStats(
        count=count,
        median=percentile(sizes, 0.5),
        mean=sum(sizes) / len(sizes),
        p99=percentile(sizes, 0.99),
        largest=sizes[-1],
        total_bytes=sum(sizes),
        kinds=kinds,
        generated_in=time.perf_counter() - started,
    )
    (building / "stats.json").write_text(json.dumps(stats.__dict__, indent=2))
    if target.exists():  # another run finished first
        shutil.rmtree(building)
    else:
        building.rename(target)
    log(f"mailbox: generated in {stats.generated_in:.1f} s")
    return target / "Maildir", stats


@dataclass
class Server:
    """The private Dovecot of this run and what clients need to reach it."""

    dovecot: Any  # tests.servers.dovecot.Dovecot
    ca_file: Path
    host: str
    port: int

    @property
    def pgid(self) -> int | None:
        """Dovecot's process group: the fixture starts its master in a new session."""
        pid = self.dovecot.pid
        return int(pid) if pid is not None else None


DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


def start_dovecot(workdir: Path, keep: bool) -> Server:
    from tests.servers.certs import make_cert_set
    from tests.servers.dovecot import Dovecot

    certs = make_cert_set(workdir / "certs")
    dovecot = Dovecot(certs, keep_directory=keep).start()
    # mbsync verifies the name against the certificate: localhost, never 127.0.0.1.
    return Server(dovecot, certs.ca_file, dovecot.trusted_host, dovecot.imaps_port)


def fill_inbox(server: Server, user: str, maildir: Path, count: int) -> float:
    """Hard-link the cached Maildir into ``user``'s home and let Dovecot index it."""
    dovecot = server.dovecot
    dovecot.add_user(user, MAIL_PASSWORD)
    home = Path(dovecot.mail_root) / user.lower()
    started = time.perf_counter()
    home.mkdir()
    # Hard links: instant, and Dovecot only ever renames message files, never rewrites them.
    subprocess.run(["cp", "-al", str(maildir), str(home / "Maildir")], check=True)
    owner = dovecot.owner
    subprocess.run(["chown", "-R", f"{owner.uid}:{owner.gid}", str(home)], check=True)
    # Read every file once so no tool pays for a cold page cache (it is the same for all).
    for sub in ("cur", "new"):
        for entry in os.scandir(home / "Maildir" / sub):
            with open(entry.path, "rb") as handle:
                while handle.read(1 << 20):
                    pass
    doveadm = [DOVEADM, "-c", str(dovecot.config_file)]
    run_quiet(
        [*doveadm, "index", "-u", user, "INBOX"], env=dict(os.environ), cwd=home, timeout=1800
    )
    # Let Dovecot cache what every client asks for first, before any of them is timed.
    run_quiet(
        [*doveadm, "fetch", "-u", user, "uid flags size.virtual date.received", "mailbox", "INBOX"],
        env=dict(os.environ),
        cwd=home,
        timeout=1800,
    )
    status = run_quiet(
        [*doveadm, "mailbox", "status", "-u", user, "messages", "INBOX"],
        env=dict(os.environ),
        cwd=home,
    )
    held = int(status.strip().split("=")[1])
    if held != count:
        raise BenchError(f"Dovecot shows {held} messages in INBOX of {user}, expected {count}")
    return time.perf_counter() - started


# ====================================================================== the references


def count_maildir(path: Path) -> int:
    return sum(1 for sub in ("cur", "new") if (path / sub).is_dir() for _ in os.scandir(path / sub))


def run_mbsync(
    tools: Tools, server: Server, user: str, workdir: Path, count: int, label: str = "mbsync"
) -> RunResult:
    base = workdir / label
    base.mkdir()
    store = base / "Maildir"
    store.mkdir()
    rc = base / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount bench
Host {server.host}
Port {server.port}
User {user}
Pass {MAIL_PASSWORD}
SSLType IMAPS
CertificateFile {server.ca_file}

IMAPStore remote
Account bench

MaildirStore local
Path {store}/
Inbox {store}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
Expunge None
SyncState *
"""
    )
    rc.chmod(0o600)
    result = run_measured(
        label,
        [tools.mbsync, "-c", str(rc), "-q", "bench"],
        env=dict(os.environ, HOME=str(base)),
        workdir=base,
        timeout=3600,
        server_pgid=server.pgid,
    ).check()
    got = count_maildir(store / "INBOX")
    if got != count:
        raise BenchError(f"mbsync stored {got} messages, expected {count}")
    return result


# getmail's exit code when it went through every message but logged an error on the way.
GETMAIL_HAD_ERRORS = 127


def getmail_interpreter(script: str) -> str:
    """The Python of getmail's ``#!`` line (the one that has ``getmailcore``)."""
    with open(script, "rb") as handle:
        first = handle.readline().decode(errors="replace").strip()
    if first.startswith("#!"):
        words = first[2:].split()
        if words and words[0].endswith("/env") and len(words) > 1:
            return shutil.which(words[1]) or words[1]
        if words:
            return words[0]
    return "/usr/bin/python3"


def run_getmail(tools: Tools, server: Server, user: str, workdir: Path, count: int) -> RunResult:
    base = workdir / "getmail"
    store = base / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (store / sub).mkdir(parents=True)
    state = base / "state"
    state.mkdir()
    rc = base / "getmailrc"
    rc.write_text(
        f"""[retriever]
type = SimpleIMAPSSLRetriever
server = {server.host}
port = {server.port}
username = {user}
password = {MAIL_PASSWORD}
mailboxes = ("INBOX",)
ca_certs = {server.ca_file}

[destination]
type = Maildir
path = {store}/

[options]
read_all = true
delete = false
delivered_to = false
received = false
verbose = 0
"""
    )
    rc.chmod(0o600)
    # getmail 6.18 loses track of its delivery children under load: run it through a
    # launcher that applies upstream's later fix (see getmail_launcher.py), nothing else.
    launcher = base / "getmail_launcher.py"
    shutil.copyfile(BENCH_DIR / "getmail_launcher.py", launcher)
    argv = [
        getmail_interpreter(tools.getmail),
        str(launcher),
        tools.getmail,
        "--getmaildir",
        str(state),
        "--rcfile",
        str(rc),
        "--quiet",
    ]
    if os.geteuid() == 0:
        # getmail refuses to deliver mail as root: run it as the (unprivileged) mail owner.
        owner = server.dovecot.owner
        subprocess.run(["chown", "-R", f"{owner.uid}:{owner.gid}", str(base)], check=True)
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        argv = [setpriv, f"--reuid={owner.uid}", f"--regid={owner.gid}", "--clear-groups", *argv]
    result = run_measured(
        "getmail",
        argv,
        env=dict(os.environ, HOME=str(base)),
        workdir=base,
        timeout=7200,
        server_pgid=server.pgid,
    )
    got = count_maildir(store)
    failed = [line for line in result.stderr.splitlines() if line.startswith("Delivery error")]
    if result.returncode == GETMAIL_HAD_ERRORS and got + len(failed) == count:
        # getmail went through every message but could not deliver a few: messages its
        # parser rejects are wrapped in a "corrupt message" container, and building that
        # container fails on some of them. Its own limitation: the run still counts.
        result.notes.append(
            f"getmail6 went through all {count:,} messages but delivered {got:,}: "
            f"{len(failed)} delivery errors of its own, e.g. {failed[0]}"
        )
    else:
        result.check()
        if got != count:
            raise BenchError(f"getmail6 stored {got} messages, expected {count}")
    return result


# ====================================================================== Postroom


@dataclass
class Postroom:
    """One fresh Postroom data directory with one account on the bench's Dovecot."""

    tools: Tools
    base: Path
    env: dict[str, str]
    account_name: str
    server_pgid: int | None

    @property
    def db_path(self) -> Path:
        return self.base / "data" / "postroom.sqlite3"

    def cli(self, *args: str, timeout: float = 300) -> str:
        return run_quiet([self.tools.postroom, *args], env=self.env, cwd=self.base, timeout=timeout)

    def account_id(self) -> int:
        with contextlib.closing(_read_only(self.db_path)) as db:
            row = db.execute(
                "SELECT id FROM accounts_emailaccount WHERE name = ?", (self.account_name,)
            ).fetchone()
        if row is None:
            raise BenchError(f"no account named {self.account_name} in {self.db_path}")
        return int(row[0])


def _read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5, check_same_thread=False)


def postroom_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # The bench measures the default store: SQLite in a fresh data directory.
        if not k.startswith("POSTROOM_") and k != "DATABASE_URL"
    }
    env.update(
        POSTROOM_DATA_DIR=str(data_dir),
        POSTROOM_LOG_LEVEL="WARNING",
        BENCH_MAIL_PASSWORD=MAIL_PASSWORD,
        BENCH_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    return env


def check_postroom_sync(tools: Tools) -> tuple[str | None, float]:
    """(None when ``postroom sync`` exists, else the reason; seconds the command took).

    The time is the CLI's start-up (Python, Django, argument parsing), which every timed
    ``postroom sync`` includes too.
    """
    started = time.perf_counter()
    result = subprocess.run(
        [tools.postroom, "sync", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        # argparse's verdict is the last line ("invalid choice: 'sync' ..."), not the usage.
        lines = (result.stderr or result.stdout).strip().splitlines()
        return (lines[-1] if lines else f"exit code {result.returncode}"), seconds
    return None, seconds


def prepare_postroom(tools: Tools, server: Server, user: str, base: Path) -> Postroom:
    base.mkdir(parents=True)
    env = postroom_env(base / "data")
    postroom = Postroom(tools, base, env, user, server.pgid)
    postroom.cli("migrate")
    postroom.cli(
        "account", "add",
        "--email", user,
        "--imap-host", server.host,
        "--imap-port", str(server.port),
        "--imap-security", "ssl",
        "--no-outgoing",
        "--ca-file", str(server.ca_file),
        "--password-env", "BENCH_MAIL_PASSWORD",
        "--skip-check",
    )  # fmt: skip
    return postroom


@dataclass
class PostroomSync:
    run: RunResult
    stored_at: float | None
    complete_at: float | None
    report: dict[str, Any] | None
    rows: int
    headers_left: int
    quarantined: int


class ProgressProbe:
    """Polls the SQLite store read-only: when did all N rows exist, when were all parsed."""

    def __init__(self, db: Path, count: int) -> None:
        self.db = db
        self.count = count
        self.conn: sqlite3.Connection | None = None
        self.stored_at: float | None = None
        self.complete_at: float | None = None
        self.rows = 0
        self.headers_left = 0
        self._next_log = 5.0

    def __call__(self, elapsed: float, peaks: MemoryPeaks) -> None:
        if elapsed >= self._next_log:
            self._next_log += 5.0
            memory = (
                f"; RSS of the process tree {mb(peaks.current_tree_rss_kb):.0f} MB "
                f"(peak {mb(peaks.tree_rss_kb):.0f} MB)"
            )
            log(
                f"postroom: {elapsed:5.1f} s: {self.rows:,} / {self.count:,} stored, "
                f"{self.headers_left:,} waiting for extraction{memory}"
            )
        if self.complete_at is not None:
            return
        try:
            if self.conn is None:
                if not self.db.exists():
                    return
                self.conn = _read_only(self.db)
            self.rows = self.conn.execute("SELECT COUNT(*) FROM incoming_message").fetchone()[0]
            self.headers_left = self.conn.execute(
                "SELECT COUNT(*) FROM incoming_message WHERE parse_state = 'headers'"
            ).fetchone()[0]
        except sqlite3.Error:
            return  # busy or mid-checkpoint: the next tick will see it
        if self.stored_at is None and self.rows >= self.count:
            self.stored_at = elapsed
        if self.stored_at is not None and self.headers_left == 0:
            self.complete_at = elapsed

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def run_postroom_sync(postroom: Postroom, count: int, label: str) -> PostroomSync:
    probe = ProgressProbe(postroom.db_path, count)
    result = run_measured(
        label,
        [postroom.tools.postroom, "sync", postroom.account_name, "--json"],
        env=postroom.env,
        workdir=postroom.base,
        timeout=4 * 3600,
        probe=probe,
        server_pgid=postroom.server_pgid,
    )
    probe.close()
    result.check()
    report: dict[str, Any] | None = None
    for line in reversed(result.stdout.strip().splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            report = json.loads(line)
            break
    if report is None:
        with contextlib.suppress(json.JSONDecodeError):
            report = json.loads(result.stdout)
    with contextlib.closing(_read_only(postroom.db_path)) as db:
        quarantined = db.execute(
            "SELECT COUNT(*) FROM incoming_message WHERE parse_state = 'quarantined'"
        ).fetchone()[0]
    return PostroomSync(
        run=result,
        stored_at=probe.stored_at,
        complete_at=probe.complete_at,
        report=report,
        rows=probe.rows,
        headers_left=probe.headers_left,
        quarantined=quarantined,
    )


# ====================================================================== new-mail latency


@dataclass
class LatencyResult:
    samples: list[float]
    timeouts: int
    warmup_seconds: float

    def quantile(self, q: float) -> float:
        return percentile(sorted(self.samples), q) if self.samples else float("nan")


class ApiClient:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Connection": "keep-alive"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> tuple[int, Any]:
        for attempt in range(2):
            try:
                self.conn.request("GET", path, headers=self.headers)
                response = self.conn.getresponse()
                body = response.read()
                return response.status, json.loads(body) if body else None
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def background(
    name: str, argv: list[str], env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process of ours, stopped (its own process group) on exit."""
    with (cwd / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def latency_message(token: str, index: int) -> bytes:
    return (
        f"From: Latency Probe <probe@example.net>\r\nTo: {BENCH_USER}\r\n"
        f"Subject: {token}\r\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"Message-ID: <{token}@bench.example.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"New-mail latency probe number {index}.\r\n"
    ).encode()


def explain_miss(postroom: Postroom, account_id: int, subject: str, sent_utc: str) -> str:
    """What the store and the event log say about a message that never showed up."""
    with contextlib.closing(_read_only(postroom.db_path)) as db:
        rows = db.execute(
            "SELECT COUNT(*) FROM incoming_message WHERE subject = ?", (subject,)
        ).fetchone()[0]
        events = db.execute(
            "SELECT created_at, kind, message FROM core_event WHERE account_id = ? "
            "ORDER BY id DESC LIMIT 4",
            (account_id,),
        ).fetchall()
        status = db.execute(
            "SELECT state, last_run_started_at, last_success_at FROM incoming_syncstatus "
            "WHERE account_id = ?",
            (account_id,),
        ).fetchone()
    recent = "; ".join(f"{when} {kind}: {text}" for when, kind, text in reversed(events))
    return (
        f"APPENDed at {sent_utc} UTC; rows with that subject in the store: {rows}; sync status "
        f"(state, last run started, last success): {status}; latest events: {recent}"
    )


def measure_latency(
    postroom: Postroom, server: Server, user: str, trials: int, seed: int
) -> LatencyResult:
    postroom.cli("createuser", ADMIN_USER, "--superuser", "--password-env", "BENCH_ADMIN_PASSWORD")
    token = postroom.cli("token", "create", "--user", ADMIN_USER, "--name", "bench").strip()
    account_id = postroom.account_id()
    port = free_port()
    rng = random.Random(seed)
    run_id = f"{os.getpid():x}{int(time.time()) % 100000:x}"

    with (
        background("web", [postroom.tools.postroom, "run", "--no-watch", "--port", str(port)], postroom.env, postroom.base) as web,
        background("watch", [postroom.tools.postroom, "watch"], postroom.env, postroom.base) as watch,
    ):  # fmt: skip
        api = ApiClient(port, token)
        deadline = time.monotonic() + 60
        while True:
            if web.poll() is not None:
                raise BenchError(
                    f"postroom run exited early:\n{(postroom.base / 'web.log').read_text()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException, json.JSONDecodeError):
                status, _body = api.get("/api/v1/me")
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"the API did not answer on port {port} within 60 s")
            time.sleep(0.2)

        def visible(subject: str) -> bool:
            status, body = api.get(f"/api/v1/messages?account={account_id}&q={subject}&limit=5")
            if status != 200:
                raise BenchError(f"GET /api/v1/messages answered {status}: {body}")
            return bool(body and body.get("items"))

        samples: list[float] = []
        timeouts = 0
        with server.dovecot.imap(user) as imap:
            # Warm-up: the watcher's first pass over the whole folder, then IDLE.
            started = time.perf_counter()
            subject = f"benchwarm{run_id}"
            imap.append("INBOX", latency_message(subject, 0))
            while not visible(subject):
                if watch.poll() is not None:
                    raise BenchError(
                        f"postroom watch exited:\n{(postroom.base / 'watch.log').read_text()[-4000:]}"
                    )
                if time.perf_counter() - started > 300:
                    raise BenchError("the warm-up message never became visible through the API")
                time.sleep(0.05)
            warmup = time.perf_counter() - started
            log(f"latency: watcher ready (warm-up message visible after {warmup:.2f} s)")
            for index in range(1, trials + 1):
                # Mail arrives at random moments, not in step with the watcher.
                time.sleep(rng.uniform(0.3, 1.0))
                subject = f"benchlat{run_id}n{index}"
                message = latency_message(subject, index)
                sent = time.perf_counter()
                sent_utc = (
                    time.strftime("%H:%M:%S", time.gmtime())
                    + f".{int(time.time() * 1000) % 1000:03d}"
                )
                imap.append("INBOX", message)
                while True:
                    if visible(subject):
                        samples.append(time.perf_counter() - sent)
                        break
                    if time.perf_counter() - sent > 15:
                        timeouts += 1
                        log(f"latency: trial {index} not visible after 15 s (counted as a miss)")
                        log(f"latency: {explain_miss(postroom, account_id, subject, sent_utc)}")
                        break
                    time.sleep(0.005)
                if index % 25 == 0:
                    done = sorted(samples)
                    log(
                        f"latency: {index}/{trials} trials, p50 so far {percentile(done, 0.5):.3f} s"
                    )
        api.close()
    return LatencyResult(samples, timeouts, warmup)


# ====================================================================== report


def mb(kb: int) -> float:
    return kb / 1024


def ratio(value: float | None, reference: float | None) -> str:
    if not value or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def rate(count: int, seconds: float | None) -> float | None:
    return count / seconds if seconds else None


def fmt_rate(value: float | None) -> str:
    return f"{value:,.0f}" if value else "-"


@dataclass
class Report:
    count: int
    mailbox: MailboxStats
    # mbsync runs before getmail6 and again after Postroom; the faster run is the reference
    # (the machine's other load drifts, and the fastest run is the fairest to mbsync).
    mbsync_runs: list[RunResult] = field(default_factory=list)
    getmail: RunResult | None = None
    postroom: PostroomSync | None = None
    postroom_error: str | None = None
    latency: LatencyResult | None = None
    latency_error: str | None = None
    big: PostroomSync | None = None
    big_count: int = 0
    big_error: str | None = None
    postroom_startup: float | None = None
    errors: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def mbsync(self) -> RunResult | None:
        return min(self.mbsync_runs, key=lambda r: r.seconds, default=None)

    def show(self) -> None:
        n = self.count
        mbsync_rate = rate(n, self.mbsync.seconds) if self.mbsync else None
        getmail_rate = rate(n, self.getmail.seconds) if self.getmail else None
        print()
        print("=" * 96)
        print("Incoming sync benchmark: first sync of one INBOX over IMAPS (Dovecot, private CA)")
        print(f"Mailbox: {self.mailbox.describe()}")
        print(
            f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"
        )
        print("Tools:   " + "; ".join(f"{k} {v}" for k, v in self.versions.items()))
        print("=" * 96)
        header = (
            f"{'tool':<34}{'msgs/s':>9}{'seconds':>9}{'vs mbsync':>11}{'vs getmail6':>13}"
            f"{'CPU s':>8}{'server':>8}{'others':>8}{'peak RSS':>10}"
        )
        print(header)
        print("-" * len(header))

        def line(label: str, seconds: float | None, run: RunResult | None = None) -> None:
            r = rate(n, seconds)
            cpu = f"{run.cpu_seconds:.1f}" if run else ""
            server = f"{run.server_cpu_seconds:.1f}" if run else ""
            others = f"{run.other_cores:.2f}" if run else ""
            rss = f"{mb(run.memory.tree_rss_kb):.0f} MB" if run else ""
            print(
                f"{label:<34}{fmt_rate(r):>9}{(f'{seconds:.1f}' if seconds else '-'):>9}"
                f"{ratio(r, mbsync_rate):>11}{ratio(r, getmail_rate):>13}"
                f"{cpu:>8}{server:>8}{others:>8}{rss:>10}"
            )

        if self.mbsync:
            label = f"mbsync (C, fsync on), best of {len(self.mbsync_runs)}"
            line(label, self.mbsync.seconds, self.mbsync)
        for name, error in self.errors.items():
            print(f"{name:<34}  FAILED (see below): {error.splitlines()[0][:40]}...")
        if self.getmail:
            line("getmail6 (Python)", self.getmail.seconds, self.getmail)
        p = self.postroom
        if p:
            line("Postroom stored (headers parsed)", p.stored_at)
            line("Postroom complete (all extracted)", p.complete_at)
            line("  postroom sync, whole process", p.run.seconds, p.run)
        elif self.postroom_error:
            print(f"{'Postroom':<34}  FAILED: {self.postroom_error.splitlines()[0]}")
        print(
            "  Seconds run from process start to the event (start-up and login count). CPU s: user+sys\n"
            "  of the tool and its children; server: Dovecot's CPU s meanwhile; others: cores kept busy\n"
            "  by everything else on the machine meanwhile (0 on a quiet machine: more skews the row);\n"
            "  peak RSS: largest sampled sum of RSS over the tool's process tree."
        )
        runs_measured = [*self.mbsync_runs, self.getmail, p.run if p else None]
        busiest = max((r.other_cores for r in runs_measured if r), default=0.0)
        if busiest > BUSY_MACHINE_CORES:
            print(
                f"  WARNING: other work kept up to {busiest:.2f} of {os.cpu_count()} cores busy during "
                "a measurement: the figures and ratios are skewed; rerun on a quiet machine."
            )

        if len(self.mbsync_runs) > 1:
            runs = ", ".join(
                f"{r.seconds:.1f} s ({n / r.seconds:,.0f} msgs/s, others {r.other_cores:.2f})"
                for r in self.mbsync_runs
            )
            print(f"  mbsync runs (just before and just after Postroom's sync): {runs}")
        for result in (self.mbsync, self.getmail):
            for note in result.notes if result else []:
                print(f"  note: {note}")
        if p:
            m = p.run.memory
            print()
            print(
                f"Postroom memory: process tree peak {mb(m.tree_rss_kb):.0f} MB (sampled every {SAMPLE_SECONDS * 1000:.0f} ms, "
                f"{m.processes} processes); main process VmHWM {mb(m.root_hwm_kb):.0f} MB; "
                f"sum of every process's VmHWM {mb(m.sum_hwm_kb):.0f} MB; wait4 ru_maxrss {mb(m.wait4_maxrss_kb):.0f} MB"
            )
            if self.postroom_startup is not None:
                print(
                    f"Postroom CLI start-up (`postroom sync --help`): {self.postroom_startup:.2f} s, "
                    "included in the Postroom times above"
                )
            print(
                f"Postroom sync --json: {json.dumps(p.report) if p.report else '(no JSON on stdout)'}"
            )
            print(
                f"Postroom store: {p.rows:,} messages, {p.quarantined} quarantined, {p.headers_left} still at 'headers'"
            )
        if self.big:
            b = self.big
            print(
                f"Big run ({self.big_count:,} messages, Postroom only): stored {fmt_rate(rate(self.big_count, b.stored_at))} msgs/s, "
                f"complete {fmt_rate(rate(self.big_count, b.complete_at))} msgs/s, tree peak {mb(b.run.memory.tree_rss_kb):.0f} MB, "
                f"main VmHWM {mb(b.run.memory.root_hwm_kb):.0f} MB"
            )
        elif self.big_error:
            print(f"Big run FAILED: {self.big_error}")
        if self.latency:
            lat = self.latency
            print(
                f"New-mail latency (APPEND -> visible in GET /api/v1/messages), {len(lat.samples)} trials, "
                f"{lat.timeouts} not visible within 15 s: p50 {lat.quantile(0.5):.3f} s, p95 {lat.quantile(0.95):.3f} s, "
                f"p99 {lat.quantile(0.99):.3f} s, max {max(lat.samples, default=float('nan')):.3f} s"
            )
        elif self.latency_error:
            print(f"New-mail latency FAILED: {self.latency_error.splitlines()[0]}")

        print()
        print(f"{'target (issue 3)':<52}{'measured':>14}{'goal':>12}  result")
        print("-" * 86)

        def target(label: str, measured: str, goal: str, ok: bool | None) -> None:
            print(f"{label:<52}{measured:>14}{goal:>12}  {verdict(ok)}")

        stored_rate = rate(n, p.stored_at) if p else None
        complete_rate = rate(n, p.complete_at) if p else None
        for label, value, goal in (
            ("stored vs mbsync", stored_rate, TARGET_STORED_VS_MBSYNC),
            ("complete vs mbsync", complete_rate, TARGET_COMPLETE_VS_MBSYNC),
        ):
            ok = value / mbsync_rate >= goal if value and mbsync_rate else None
            target(label, ratio(value, mbsync_rate), f">= {goal:.2f}x", ok)
        for label, value in (
            ("stored vs getmail6 (far ahead)", stored_rate),
            ("complete vs getmail6 (far ahead)", complete_rate),
        ):
            ok = value > getmail_rate if value and getmail_rate else None
            target(label, ratio(value, getmail_rate), "> 1x", ok)
        peak = p.run.memory.tree_rss_kb if p else None
        target(
            f"peak RSS, {n:,} messages",
            f"{mb(peak):.0f} MB" if peak else "-",
            f"< {TARGET_RSS_MB:.0f} MB",
            (mb(peak) < TARGET_RSS_MB) if peak else None,
        )
        if self.big or self.big_error:
            big_peak = self.big.run.memory.tree_rss_kb if self.big else None
            target(
                f"peak RSS, {self.big_count:,} messages",
                f"{mb(big_peak):.0f} MB" if big_peak else "-",
                f"< {TARGET_RSS_MB:.0f} MB",
                (mb(big_peak) < TARGET_RSS_MB) if big_peak else None,
            )
            flat = big_peak / peak if big_peak and peak else None
            target(
                "peak RSS flat (big / small)",
                f"{flat:.2f}x" if flat else "-",
                f"<= {1 + RSS_FLAT_TOLERANCE:.2f}x",
                (flat <= 1 + RSS_FLAT_TOLERANCE) if flat else None,
            )
        latency = self.latency
        p99 = latency.quantile(0.99) if latency and latency.samples else None
        trials = len(latency.samples) + latency.timeouts if latency else 0
        target(
            f"new-mail latency p99 ({trials} trials)",
            f"{p99:.3f} s" if p99 is not None else "-",
            f"<= {TARGET_LATENCY_P99:.1f} s",
            (p99 <= TARGET_LATENCY_P99 and latency is not None and latency.timeouts == 0)
            if p99 is not None
            else None,
        )
        print("=" * 96)


# ====================================================================== main


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--messages", type=int, default=20_000, help="messages in the mailbox (default 20000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument(
        "--trials", type=int, default=100, help="new-mail latency trials (default 100)"
    )
    parser.add_argument(
        "--big",
        action="store_true",
        help="also sync a second, bigger mailbox with Postroom (peak RSS)",
    )
    parser.add_argument(
        "--big-messages",
        type=int,
        default=100_000,
        help="size of the --big mailbox (default 100000)",
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=["mbsync", "getmail", "postroom", "latency"],
        help="leave a measurement out (repeatable; for trying the bench out)",
    )  # fmt: skip
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the run's directories (Maildirs, data dir, Dovecot)",
    )
    args = parser.parse_args(argv)

    wall = time.perf_counter()
    try:
        tools = find_tools()
    except BenchError as exc:
        print(f"sync_bench: {exc}", file=sys.stderr)
        return 2
    skip = set(args.skip)
    log(
        f"load average at start: {load_average()} ({os.cpu_count()} CPUs); other work on this machine skews every figure"
    )

    mailbox, stats = cached_mailbox(args.messages, args.seed)
    log(f"mailbox: {stats.describe()}")
    big_mailbox: tuple[Path, MailboxStats] | None = None
    if args.big:
        big_mailbox = cached_mailbox(args.big_messages, args.seed)
        log(f"big mailbox: {big_mailbox[1].describe()}")

    workdir = Path(tempfile.mkdtemp(prefix="postroom-bench-run-"))
    # getmail runs as the unprivileged mail owner when we are root: let it reach its files.
    workdir.chmod(0o711)
    server: Server | None = None
    report = Report(count=args.messages, mailbox=stats)
    report.versions = {
        "mbsync": tool_version([tools.mbsync, "--version"]),
        "getmail": tool_version([tools.getmail, "--version"])
        + " (run with its child-wait race fixed: bench/getmail_launcher.py)",
        "dovecot": tool_version([tools.dovecot, "--version"]),
    }
    try:
        server = start_dovecot(workdir, args.keep)
        log(f"dovecot: imaps on {server.host}:{server.port} ({server.dovecot.directory})")
        filled = fill_inbox(server, BENCH_USER, mailbox, args.messages)
        log(
            f"dovecot: INBOX of {BENCH_USER} holds {args.messages:,} messages (linked and indexed in {filled:.1f} s)"
        )

        def reference(name: str, runner: Callable[[], RunResult]) -> RunResult | None:
            log(f"{name}: pulling INBOX ... (load average {load_average()})")
            try:
                result = runner()
            except BenchError as exc:
                # A reference that fails must not cost the Postroom figures: report it.
                report.errors[name] = str(exc)
                log(f"{name}: FAILED: {exc}")
                return None
            for note in result.notes:
                log(f"{name}: note: {note}")
            log(f"{name}: {result.seconds:.1f} s, {args.messages / result.seconds:,.0f} msgs/s")
            return result

        if "mbsync" not in skip:
            first = reference(
                "mbsync", lambda: run_mbsync(tools, server, BENCH_USER, workdir, args.messages)
            )
            report.mbsync_runs += [first] if first else []
        postroom: Postroom | None = None
        if "postroom" not in skip:
            missing, report.postroom_startup = check_postroom_sync(tools)
            if missing is not None:
                report.postroom_error = f"`postroom sync` is not available yet: {missing}"
                log(f"postroom: {report.postroom_error}")
            else:
                try:
                    postroom = prepare_postroom(tools, server, BENCH_USER, workdir / "postroom")
                    log(
                        "postroom: first sync into a fresh SQLite data directory ... "
                        f"(load average {load_average()})"
                    )
                    report.postroom = run_postroom_sync(postroom, args.messages, "postroom-sync")
                    p = report.postroom
                    log(
                        f"postroom: stored after {p.stored_at or float('nan'):.1f} s, complete after "
                        f"{p.complete_at or float('nan'):.1f} s, exit after {p.run.seconds:.1f} s"
                    )
                    if p.rows != args.messages:
                        log(
                            f"postroom: WARNING: {p.rows} messages stored, expected {args.messages}"
                        )
                except BenchError as exc:
                    report.postroom_error = str(exc)
                    log(f"postroom: FAILED: {exc}")
                    postroom = None

        if report.mbsync_runs and report.postroom is not None:
            again = reference(
                "mbsync",
                lambda: run_mbsync(
                    tools, server, BENCH_USER, workdir, args.messages, label="mbsync-after"
                ),
            )
            report.mbsync_runs += [again] if again else []
        # getmail6 takes longest by far: after the runs that are compared most closely.
        if "getmail" not in skip:
            report.getmail = reference(
                "getmail", lambda: run_getmail(tools, server, BENCH_USER, workdir, args.messages)
            )

        if "latency" not in skip and postroom is not None and report.postroom is not None:
            log(f"latency: {args.trials} trials with postroom watch + postroom run --no-watch ...")
            try:
                report.latency = measure_latency(
                    postroom, server, BENCH_USER, args.trials, args.seed
                )
            except BenchError as exc:
                report.latency_error = str(exc)
                log(f"latency: FAILED: {exc}")

        if big_mailbox is not None and report.postroom is not None:
            report.big_count = args.big_messages
            try:
                filled = fill_inbox(server, BIG_USER, big_mailbox[0], args.big_messages)
                log(
                    f"dovecot: INBOX of {BIG_USER} holds {args.big_messages:,} messages ({filled:.1f} s)"
                )
                big = prepare_postroom(tools, server, BIG_USER, workdir / "postroom-big")
                log("postroom: big first sync ...")
                report.big = run_postroom_sync(big, args.big_messages, "postroom-sync-big")
            except BenchError as exc:
                report.big_error = str(exc)
                log(f"big run FAILED: {exc}")
    except BenchError as exc:
        print(f"sync_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.dovecot.stop()
        if args.keep:
            log(f"kept: {workdir} (and Dovecot's {server.dovecot.directory if server else '-'})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report.show()
    if report.postroom_error:
        print(f"\nPostroom FAILED:\n{report.postroom_error}")
    if report.latency_error:
        print(f"\nLatency FAILED:\n{report.latency_error}")
    for name, error in report.errors.items():
        print(f"\n{name} FAILED:\n{error}")
    print(
        f"\nload average at end: {load_average()}; whole bench took {time.perf_counter() - wall:.0f} s"
    )
    return 0 if report.postroom is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
