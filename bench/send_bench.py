"""Outgoing-mail benchmark: Postroom's outbox worker against smtp-source, smtplib and
django-post-office.

Run from the repository root (it is a script that prints figures, not a test)::

    .venv/bin/python bench/send_bench.py                    # 20,000 messages
    .venv/bin/python bench/send_bench.py --messages 500     # a quick try
    .venv/bin/python bench/send_bench.py --skip postgres    # leave out a measurement

In one run, for N messages of about 10 KB, each with two recipients and its text rendered
for those recipients (greeting, order number, a different selection of paragraphs), it
measures, each time into a fresh Postfix ``smtp-sink`` on 127.0.0.1 (the Postfix daemon is
never started):

1. ``smtp-source`` with 10 sessions, N messages of 10 KB with 2 recipients — the raw limit
   of the sink;
2. a plain Python loop sending the N pre-rendered messages over ONE reused ``smtplib``
   connection — the raw single-connection Python limit;
3. django-post-office (in its own virtualenv, cached under ``/tmp/postroom-bench-cache``,
   with a minimal Django project on SQLite): ``mail.send(..., priority='medium')`` for the N
   messages, then ``manage.py send_queued_mail`` timed until the queue is drained;
4. Postroom on a fresh ``POSTROOM_DATA_DIR`` (SQLite): ``postroom migrate``,
   ``postroom account add`` pointing at the sink, N messages queued in-process through
   ``postroom.outgoing.actions.do_queue_message`` (queueing timed separately), then
   ``postroom worker`` timed from a full queue until no recipient is left non-final
   (the bench polls the database); and again on PostgreSQL (a fresh database created and
   dropped by the run) with TWO worker processes.

Every sink's own counter is checked against the expected number of messages. Peak RSS is
the kernel's high-water mark (``VmHWM``, or ``ru_maxrss`` of the reaped process). "Flat
memory": the worker's RSS once a quarter of the queue is sent, against its peak over the
whole drain. It ends with a table and the targets of issue 4 ("Performance") marked PASS or
MISS. Nothing is hard-coded: every figure is measured in the run.
"""

# A bench script: it runs local tools with arguments it builds itself.
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CACHE_ROOT = Path(tempfile.gettempdir()) / "postroom-bench-cache"
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
SENDER = "bench@example.test"
SOURCE_SESSIONS = 10
POST_OFFICE_SPEC = "django-post-office"
DJANGO_SPEC = "Django>=5.2,<5.3"
POLL_SECONDS = 0.05

# Targets of issue 4, "Performance".
TARGET_SQLITE_VS_SMTPLIB = 1.5
# "Flat memory": RSS may grow at most this much after the first quarter of the drain.
RSS_FLAT_TOLERANCE = 0.10
RSS_FLAT_SLACK_MB = 8.0


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


# ================================================================= the messages

_WORDS = (
    "the of and to in is for on that with as this by be are from at it or an was have we "
    "will your our you not can all has more about which their one been they there would "
    "invoice order delivery payment meeting schedule report quarter budget contract review "
    "attached please find below regards thanks update project customer account shipment "
    "warehouse pallet tracking number reference agreement proposal draft final version "
    "approval deadline friday monday tomorrow next week office team manager support ticket "
    "reminder overdue statement renewal subscription license server backup migration"
).split()
_FIRST = "Anna Bruno Chiara Dmitri Eva Farid Greta Hiro Ines Jonas Kasia Liam Mei Nils".split()
_LAST = "Novak Rossi Schmidt Tanaka Kowalski Dubois Larsen Silva Okafor Berg Weber".split()


def _paragraphs(seed: int, count: int = 64) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(90, 140))]
        text = " ".join(words).capitalize() + "."
        out.append(textwrap.fill(text, 76))
    return out


@dataclass(frozen=True)
class Rendered:
    to: tuple[str, str]
    subject: str
    text: str


class Messages:
    """The N messages of a run, rendered per message for its two recipients (seeded)."""

    def __init__(self, count: int, seed: int, size: int = 10_000) -> None:
        self.count = count
        self.seed = seed
        self.size = size
        self._pool = _paragraphs(seed)

    def render(self, i: int) -> Rendered:
        rng = random.Random(self.seed * 1_000_003 + i)
        people = []
        for n in range(2):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            people.append((f"{first} {last}", f"{first.lower()}.{last.lower()}.{i}.{n}@rcpt.test"))
        order = rng.randint(100_000, 999_999)
        lines = [
            f"Dear {people[0][0]} and {people[1][0]},",
            "",
            f"thank you for order {order}. Your reference is BENCH-{i:06d}; "
            f"the total due is {rng.randint(10, 9999)}.{rng.randint(0, 99):02d} EUR.",
            "",
        ]
        body = "\n".join(lines)
        while len(body) < self.size - 200:
            body += "\n" + rng.choice(self._pool) + "\n"
        body = body[: self.size - 120].rstrip() + "\n\nKind regards,\nThe bench team\n"
        return Rendered(
            to=(people[0][1], people[1][1]),
            subject=f"Order {order} confirmed (BENCH-{i:06d})",
            text=body,
        )

    def mime(self, i: int) -> bytes:
        r = self.render(i)
        msg = MIMEText(r.text, "plain", "us-ascii")  # the text is ASCII: 7bit, as sent
        msg["From"] = SENDER
        msg["To"] = ", ".join(r.to)
        msg["Subject"] = r.subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain="example.test")
        return msg.as_bytes()


# ================================================================= processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


class Sink:
    """A Postfix smtp-sink on a free port, counting the messages it accepts (-c)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.out_path = workdir / f"sink-{self.port}.out"
        argv = [SMTP_SINK, "-c"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # smtp-sink refuses to run as root without -u
        argv += [f"127.0.0.1:{self.port}", "1024"]
        self._out = self.out_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def messages(self) -> int:
        found = re.findall(rb"mesg=(\d+)", self.out_path.read_bytes())
        return int(found[-1]) if found else 0

    def wait_for(self, expected: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.messages() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def proc_status(pid: int, key: str) -> float | None:
    """A ``/proc/PID/status`` memory figure in MB (VmRSS, VmHWM), or None when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a ``postroom worker`` forks sending processes)."""
    out = [pid]
    for current in out:
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    out.extend(int(child) for child in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def reap(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> tuple[int, float]:
    """Wait for ``proc``; (exit status, its peak RSS in MB).

    The peak is the kernel's VmHWM, sampled until the process exits. Not ``ru_maxrss``:
    Linux carries it over ``execve`` from the forked copy of this bench process, so it
    would report the bench's own RSS for every small child.
    """
    deadline = time.monotonic() + timeout
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, proc_status(proc.pid, "VmHWM") or 0.0)
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        time.sleep(POLL_SECONDS)
    return int(proc.returncode), peak


# ================================================================= results


@dataclass
class Result:
    tool: str
    messages: int
    seconds: float
    rss_mb: float | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def check_delivered(sink: Sink, expected: int, what: str, notes: list[str]) -> int:
    got = sink.wait_for(expected)
    if got != expected:
        notes.append(f"{what}: the sink counted {got} messages, {expected} expected")
    return got


# ================================================================= 1. smtp-source


def bench_smtp_source(n: int, size: int, workdir: Path, notes: list[str]) -> Result:
    sink = Sink(workdir)
    try:
        argv = [
            SMTP_SOURCE,
            "-s",
            str(SOURCE_SESSIONS),
            "-m",
            str(n),
            "-l",
            str(size),
            "-r",
            "2",
            "-d",
            "-f",
            SENDER,
            "-t",
            "rcpt@rcpt.test",
            f"127.0.0.1:{sink.port}",
        ]
        started = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise BenchError(f"smtp-source failed: {result.stderr.strip() or result.stdout}")
        check_delivered(sink, n, "smtp-source", notes)
    finally:
        sink.stop()
    return Result(f"smtp-source ({SOURCE_SESSIONS} sessions)", n, seconds)


# ================================================================= 2. smtplib loop


def bench_smtplib(msgs: Messages, workdir: Path, notes: list[str]) -> Result:
    started = time.perf_counter()
    prepared = [(msgs.render(i).to, msgs.mime(i)) for i in range(msgs.count)]
    render_s = time.perf_counter() - started
    sink = Sink(workdir)
    try:
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
            for to, raw in prepared:
                smtp.sendmail(SENDER, list(to), raw)
        seconds = time.perf_counter() - started
        check_delivered(sink, msgs.count, "smtplib", notes)
    finally:
        sink.stop()
    avg = sum(len(raw) for _, raw in prepared) / max(1, len(prepared))
    del prepared
    return Result(
        "smtplib loop (1 connection)",
        msgs.count,
        seconds,
        note=f"rendered beforehand in {render_s:.1f} s, not timed; mean size {avg / 1024:.1f} KiB",
        extra={"mean_bytes": avg},
    )


# ================================================================= 3. django-post-office

PO_SETTINGS = """\
import os
from pathlib import Path
BASE = Path(__file__).resolve().parent
SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "post_office"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE / "po.sqlite3")}}
EMAIL_BACKEND = "post_office.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ["BENCH_SINK_PORT"])
EMAIL_USE_TLS = False
POST_OFFICE = {"BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "root": {"handlers": [], "level": "WARNING"}}
"""

PO_MANAGE = """\
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "po_settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""

PO_QUEUE = """\
import json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, sys.argv[1])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "po_settings")
import django
django.setup()
from post_office import mail
from post_office.models import Email, STATUS
if sys.argv[2] == "count":
    print(json.dumps({s: Email.objects.filter(status=v).count()
                      for s, v in (("sent", STATUS.sent), ("failed", STATUS.failed),
                                   ("queued", STATUS.queued))}))
    sys.exit(0)
from send_bench import SENDER, Messages
msgs = Messages(int(sys.argv[2]), int(sys.argv[3]))
started = time.perf_counter()
for i in range(msgs.count):
    r = msgs.render(i)
    mail.send(list(r.to), sender=SENDER, subject=r.subject, message=r.text, priority="medium")
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def post_office_python(notes: list[str]) -> Path:
    """A cached virtualenv with Django 5.2 and django-post-office (not the project's venv)."""
    venv = CACHE_ROOT / "post-office-venv"
    python = venv / "bin" / "python"
    if python.exists():
        ok = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; m.version('django-post-office')"],
            capture_output=True,
            check=False,
        )
        if ok.returncode == 0:
            return python
        shutil.rmtree(venv)
    log(f"creating {venv} with {POST_OFFICE_SPEC} (once; cached for later runs)")
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", DJANGO_SPEC, POST_OFFICE_SPEC],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise BenchError(f"pip install {POST_OFFICE_SPEC} failed:\n{result.stderr[-2000:]}")
    return python


def bench_post_office(msgs: Messages, workdir: Path, notes: list[str]) -> Result:
    python = post_office_python(notes)
    version = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(m.version('django-post-office'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    project = workdir / "post_office_project"
    project.mkdir()
    (project / "po_settings.py").write_text(PO_SETTINGS)
    (project / "manage.py").write_text(PO_MANAGE)
    (project / "po_queue.py").write_text(PO_QUEUE)
    sink = Sink(workdir)
    env = {**os.environ, "BENCH_SINK_PORT": str(sink.port)}
    try:
        run = subprocess.run(
            [str(python), "manage.py", "migrate", "-v", "0"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise BenchError(f"post-office migrate failed:\n{run.stderr[-2000:]}")
        log(f"django-post-office {version}: queueing {msgs.count} messages")
        run = subprocess.run(
            [str(python), "po_queue.py", str(BENCH_DIR), str(msgs.count), str(msgs.seed)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise BenchError(f"post-office queueing failed:\n{run.stderr[-2000:]}")
        queue_s = json.loads(run.stdout.strip().splitlines()[-1])["seconds"]
        log(f"django-post-office: queued in {queue_s:.1f} s; send_queued_mail")
        po_log = (workdir / "send_queued_mail.log").open("wb")
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(python), "manage.py", "send_queued_mail"],
            cwd=project,
            env=env,
            stdout=po_log,
            stderr=subprocess.STDOUT,
        )
        # The command drains the queue, then exits.
        code, rss = reap(proc, timeout=24 * 3600)
        seconds = time.perf_counter() - started
        po_log.close()
        if code != 0:
            output = (workdir / "send_queued_mail.log").read_text(errors="replace")
            raise BenchError(f"send_queued_mail exited {code}:\n{output[-2000:]}")
        check_delivered(sink, msgs.count, "django-post-office", notes)
        counts = json.loads(
            subprocess.run(
                [str(python), "po_queue.py", str(BENCH_DIR), "count"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        if counts["sent"] != msgs.count:
            notes.append(f"django-post-office: {counts} after send_queued_mail")
    finally:
        sink.stop()
    return Result(
        f"django-post-office {version} (SQLite)",
        msgs.count,
        seconds,
        rss,
        note=f"queued in {queue_s:.1f} s ({msgs.count / queue_s:.0f}/s), not in msgs/s",
        extra={"queue_s": queue_s},
    )


# ================================================================= 4. Postroom

PR_QUEUE = """\
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postroom.settings")
import django
django.setup()
from postroom.accounts.models import EmailAccount
from postroom.outgoing.actions import do_queue_message
from send_bench import Messages
account = EmailAccount.objects.get(email=sys.argv[4])
msgs = Messages(int(sys.argv[2]), int(sys.argv[3]))
started = time.perf_counter()
for i in range(msgs.count):
    r = msgs.render(i)
    do_queue_message(account, actor=None, to=list(r.to), subject=r.subject, text=r.text)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def postroom_bin() -> str:
    path = Path(sys.executable).parent / "postroom"
    found = str(path) if path.exists() else shutil.which("postroom")
    if not found:
        raise BenchError(
            "postroom is not installed: run with the project's venv after pip install -e ."
        )
    return found


def postroom_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_") and k != "DATABASE_URL"
    }
    env.update(POSTROOM_DATA_DIR=str(data_dir), POSTROOM_LOG_LEVEL="WARNING")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _pg(sql: str) -> None:
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    )


class PendingCounter:
    """Counts recipients still not final, read straight from the database."""

    SQL = (
        "SELECT count(*) FROM outgoing_outboxrecipient "
        "WHERE status NOT IN ('sent', 'failed', 'bounced', 'cancelled')"
    )

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        if database_url:
            import psycopg

            self._conn = psycopg.connect(database_url, autocommit=True)
        else:
            db = data_dir / "postroom.sqlite3"
            self._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)

    def pending(self) -> int:
        for _ in range(50):
            try:
                return int(self._conn.execute(self.SQL).fetchone()[0])
            except sqlite3.OperationalError:  # "database is locked" while a writer commits
                time.sleep(0.02)
        return int(self._conn.execute(self.SQL).fetchone()[0])

    def statuses(self) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT status, count(*) FROM outgoing_outboxrecipient GROUP BY status"
        ).fetchall()
        return {str(s): int(c) for s, c in rows}

    def close(self) -> None:
        self._conn.close()


def bench_postroom(
    msgs: Messages,
    workdir: Path,
    notes: list[str],
    *,
    label: str,
    workers: int,
    postgres: bool,
    timeout: float,
) -> Result:
    binary = postroom_bin()
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    data_dir = workdir / f"postroom-{slug}"
    data_dir.mkdir()
    database_url = None
    dbname = f"bench_send_{os.getpid()}"
    if postgres:
        _pg(f"DROP DATABASE IF EXISTS {dbname}")
        _pg(f"CREATE DATABASE {dbname}")
        database_url = f"postgres://postgres@127.0.0.1:5432/{dbname}"
    env = postroom_env(data_dir, database_url)
    sink = Sink(workdir)
    counter = None
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for argv in (
            [binary, "migrate"],
            [
                binary,
                "account",
                "add",
                "--email",
                SENDER,
                "--name",
                "bench",
                "--smtp-host",
                "127.0.0.1",
                "--smtp-port",
                str(sink.port),
                "--smtp-security",
                "none",
                "--smtp-no-auth",
                "--no-incoming",
                "--skip-check",
            ],
        ):
            run = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if run.returncode != 0:
                raise BenchError(
                    f"{' '.join(argv[1:3])} failed ({run.returncode}):\n"
                    f"{(run.stderr or run.stdout)[-2000:]}"
                )
        log(f"Postroom {label}: queueing {msgs.count} messages through do_queue_message")
        queue_py = workdir / "postroom_queue.py"
        queue_py.write_text(PR_QUEUE)
        run = subprocess.run(
            [
                sys.executable,
                str(queue_py),
                str(BENCH_DIR),
                str(msgs.count),
                str(msgs.seed),
                SENDER,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise BenchError(f"Postroom queueing failed:\n{run.stderr[-3000:]}")
        queue_s = json.loads(run.stdout.strip().splitlines()[-1])["seconds"]
        counter = PendingCounter(data_dir, database_url)
        total = counter.pending()
        if total != 2 * msgs.count:
            notes.append(f"Postroom {label}: {total} pending recipients after queueing")
        log(f"Postroom {label}: queued in {queue_s:.1f} s; {workers} x postroom worker")
        started = time.perf_counter()
        for n in range(workers):
            out = (workdir / f"worker-{slug}-{n}.log").open("wb")
            logs.append(out)
            procs.append(
                subprocess.Popen([binary, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)
            )
        # RSS of every worker at a quarter of the drain, then its peak: "flat memory".
        # Each process of each worker's tree (the worker forks sending processes).
        quarter_rss: dict[int, float] = {}
        pending = total
        deadline = time.monotonic() + timeout
        while pending > 0:
            time.sleep(POLL_SECONDS)
            pending = counter.pending()
            if pending <= total * 0.75:
                # Each process's RSS at the first look after a quarter of the drain at
                # which its worker is up (it has printed its start line), so a worker or
                # a sending process still starting is not judged on its start-up.
                for n, p in enumerate(procs):
                    if not (workdir / f"worker-{slug}-{n}.log").stat().st_size:
                        continue
                    for pid in process_tree(p.pid):
                        if pid not in quarter_rss:
                            quarter_rss[pid] = proc_status(pid, "VmRSS") or 0.0
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                raise BenchError(
                    f"Postroom {label}: a worker exited with {dead[0].returncode} "
                    f"while {pending} recipients were pending (see {logs[0].name})"
                )
            if time.monotonic() > deadline:
                notes.append(
                    f"Postroom {label}: gave up after {timeout:.0f} s with {pending} of "
                    f"{total} recipients pending: {counter.statuses()}"
                )
                break
        seconds = time.perf_counter() - started
        done = total - pending
        tree_peaks = {
            pid: proc_status(pid, "VmHWM") or 0.0 for p in procs for pid in process_tree(p.pid)
        }
        peaks = list(tree_peaks.values())
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            reap(p, timeout=90)
        statuses = counter.statuses()
        if statuses.get("sent", 0) != total:
            notes.append(f"Postroom {label}: recipient statuses at the end: {statuses}")
        check_delivered(sink, msgs.count, f"Postroom {label}", notes)
        for out in logs:
            out.flush()
        errors = _worker_errors(workdir, slug)
        if errors:
            notes.append(f"Postroom {label}: worker log says:\n{errors}")
        flat = (
            all(
                peak <= q * (1 + RSS_FLAT_TOLERANCE) + RSS_FLAT_SLACK_MB
                for pid, peak in tree_peaks.items()
                if (q := quarter_rss.get(pid)) is not None
            )
            if quarter_rss
            else None
        )
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for out in logs:
            out.close()
        if counter is not None:
            counter.close()
        sink.stop()
        if postgres:
            try:
                _pg(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            except subprocess.CalledProcessError as exc:
                notes.append(f"could not drop {dbname}: {exc.stderr}")
    messages_done = done // 2
    quarter = ", ".join(f"{rss:.0f}" for rss in quarter_rss.values())
    return Result(
        f"Postroom {label}",
        messages_done,
        seconds,
        max(peaks),
        note=(
            f"queued in {queue_s:.1f} s ({msgs.count / queue_s:.0f}/s), not in msgs/s; "
            f"{len(peaks)} processes; RSS at 1/4: {quarter} MB, peak: "
            f"{', '.join(f'{p:.0f}' for p in peaks)} MB"
        ),
        extra={"queue_s": queue_s, "flat": float(flat) if flat is not None else -1.0},
    )


def _worker_errors(workdir: Path, slug: str, limit: int = 2500) -> str:
    text = ""
    for path in sorted(workdir.glob(f"worker-{slug}-*.log")):
        content = path.read_text(errors="replace").strip()
        # The start-up line ("Sending queued mail as ...") is not worth a note.
        if re.search(r"Traceback|ERROR|WARNING|Error|rror:", content):
            text += f"--- {path.name}\n{content[-limit:]}\n"
    return text.strip()


# ================================================================= report


def report(results: dict[str, Result], notes: list[str], n: int, wall: float) -> None:
    smtplib_r = results.get("smtplib")
    po = results.get("post_office")

    def ratio(r: Result, base: Result | None) -> str:
        return f"{r.rate / base.rate:.2f}x" if base and base.rate else "-"

    print()
    print(f"Outgoing mail, {n} messages, 2 recipients each (issue 4, Performance)")
    header = f"{'tool':44} {'msgs/s':>9} {'vs smtplib':>10} {'vs p-o':>8} {'peak RSS':>9}  seconds"
    print(header)
    print("-" * len(header))
    for key, r in results.items():
        is_pr = key.startswith("postroom")
        rss = f"{r.rss_mb:.0f} MB" if r.rss_mb else "-"
        print(
            f"{r.tool:44} {r.rate:9.0f} {ratio(r, smtplib_r) if is_pr else '':>10} "
            f"{ratio(r, po) if is_pr else '':>8} {rss:>9}  {r.seconds:7.1f}"
        )
    print()
    for r in results.values():
        if r.note:
            print(f"  {r.tool}: {r.note}")
    print()
    print("Targets")
    pr = results.get("postroom_sqlite")

    def verdict(ok: bool | None) -> str:
        return "n/a " if ok is None else ("PASS" if ok else "MISS")

    if pr:
        base = smtplib_r.rate if smtplib_r else 0
        ok = pr.rate >= TARGET_SQLITE_VS_SMTPLIB * base if smtplib_r else None
        print(
            f"  [{verdict(ok)}] Postroom SQLite >= {TARGET_SQLITE_VS_SMTPLIB}x smtplib loop: "
            f"{pr.rate:.0f}/s vs {TARGET_SQLITE_VS_SMTPLIB}x{base:.0f} = "
            f"{TARGET_SQLITE_VS_SMTPLIB * base:.0f}/s"
        )
        ok = pr.rate > po.rate if po else None
        print(
            f"  [{verdict(ok)}] Postroom SQLite ahead of django-post-office: "
            f"{pr.rate:.0f}/s vs {po.rate if po else 0:.0f}/s"
        )
    for key in ("postroom_sqlite", "postroom_postgres"):
        r = results.get(key)
        if r:
            flat = r.extra.get("flat", -1.0)
            print(
                f"  [{verdict(None if flat < 0 else bool(flat))}] {r.tool}: flat memory "
                f"(peak <= RSS at 1/4 of the drain +{RSS_FLAT_TOLERANCE:.0%} +{RSS_FLAT_SLACK_MB:.0f} MB)"
            )
    pg = results.get("postroom_postgres")
    if pg:
        print(
            f"  [info] {pg.tool}: {pg.rate:.0f}/s = {ratio(pg, smtplib_r)} smtplib, "
            f"{ratio(pg, po)} django-post-office"
        )
    if notes:
        print()
        print("Notes")
        for note in notes:
            print("  - " + note.replace("\n", "\n    "))
    print()
    load = os.getloadavg()
    print(
        f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{os.cpu_count()} CPUs; whole run {wall:.0f} s"
    )


# ================================================================= main

STEPS = ("source", "smtplib", "post_office", "sqlite", "postgres")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", "-n", type=int, default=20_000, help="N (default 20,000)")
    parser.add_argument("--seed", type=int, default=1, help="message seed (default 1)")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=STEPS,
        help="leave out a measurement (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="give up on a Postroom drain after this many seconds",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    for tool in (SMTP_SINK, SMTP_SOURCE):
        if not os.access(tool, os.X_OK):
            print(f"{tool} is missing: apt-get install -y postfix (never start its daemon)")
            return 2
    wall = time.perf_counter()
    load = os.getloadavg()
    log(f"{args.messages} messages; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    msgs = Messages(args.messages, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="postroom-send-bench-"))
    notes: list[str] = []
    results: dict[str, Result] = {}
    try:
        if "source" not in args.skip:
            log("smtp-source")
            results["source"] = bench_smtp_source(args.messages, 10_240, workdir, notes)
        if "smtplib" not in args.skip:
            log("smtplib loop")
            results["smtplib"] = bench_smtplib(msgs, workdir, notes)
        if "post_office" not in args.skip:
            results["post_office"] = bench_post_office(msgs, workdir, notes)
        if "sqlite" not in args.skip:
            results["postroom_sqlite"] = bench_postroom(
                msgs,
                workdir,
                notes,
                label="SQLite (1 worker)",
                workers=1,
                postgres=False,
                timeout=args.timeout,
            )
        if "postgres" not in args.skip:
            results["postroom_postgres"] = bench_postroom(
                msgs,
                workdir,
                notes,
                label="PostgreSQL (2 workers)",
                workers=2,
                postgres=True,
                timeout=args.timeout,
            )
    except BenchError as exc:
        notes.append(f"STOPPED: {exc}")
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, notes, args.messages, time.perf_counter() - wall)
    return 1 if any(n.startswith("STOPPED") for n in notes) else 0


if __name__ == "__main__":
    sys.exit(main())
