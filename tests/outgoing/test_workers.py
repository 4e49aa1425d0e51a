"""Crash safety and concurrency with real ``postroom worker`` processes.

* SIGKILL at random points while 2,000 messages are delivered to an aiosmtpd
  server in this process, at least ten times, then a restart: every
  recipient ends ``sent``; a message arrives twice only if it was in the
  documented window when the worker died (its recipients were still
  ``sending``: sent, or being sent, since its thread's last outcome commit;
  see ``postroom/outgoing/queue.py``), once more per such kill, and at most
  ``POSTROOM_OUTBOX_RECORD_EVERY`` (default 1: the message cut inside its
  DATA phase) messages per sending thread per kill;
  nothing is left ``sending``.
* Two workers against one queue: every message delivered exactly once.

Both run on whatever DATABASE_URL the suite uses (SQLite or PostgreSQL).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings

from postroom.outgoing.models import (
    DeliveryAttempt,
    ItemState,
    OutboxItem,
    OutboxRecipient,
    RecipientStatus,
)
from postroom.outgoing.worker import default_processes
from tests.outgoing.conftest import make_smtp_account, queue
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.django_db(transaction=True)

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.I | re.M)


def postroom_bin() -> str:
    found = shutil.which("postroom") or str(Path(sys.executable).parent / "postroom")
    assert os.path.exists(found)
    return found


def start_worker(env: dict[str, str], *, lease: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [postroom_bin(), "worker", "--threads", "2"],
        env={
            **env,
            "POSTROOM_OUTBOX_LEASE_SECONDS": str(lease),
            "POSTROOM_OUTBOX_POLL_SECONDS": "0.2",
            "POSTROOM_LOG_LEVEL": "WARNING",
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def deliveries(server: SmtpServer) -> Counter[tuple[str, str]]:
    """How often the server received each (Message-ID, recipient)."""
    counts: Counter[tuple[str, str]] = Counter()
    for message in list(server.messages):
        match = _MESSAGE_ID.search(message.data)
        assert match is not None
        for rcpt in message.rcpt_tos:
            counts[(match.group(1).decode(), rcpt)] += 1
    return counts


def all_final() -> bool:
    return not OutboxItem.objects.exclude(state=ItemState.SENT).exists()


def queue_many(account, count: int) -> None:
    for i in range(count):
        to = [f"r{i}@example.test"] + ([f"s{i}@example.test"] if i % 3 == 0 else [])
        queue(account, to=to, subject=f"Message {i}", text=f"Body {i}\n" * 20)


def test_sigkill_at_random_points_sends_each_recipient_once(smtp_server_factory, postroom_env):
    server = smtp_server_factory()
    account = make_smtp_account(server)
    queue_many(account, 2000)
    rng = random.Random(20261123)
    cut_in_flight: Counter[str] = Counter()  # Message-IDs whose recipients were "sending"
    kills = 0
    while kills < 12 and not all_final():
        before = len(server.messages)
        proc = start_worker(postroom_env, lease=2)
        try:
            # Kill while it delivers: after its first message, at a random moment.
            wait_until(
                lambda: len(server.messages) > before or proc.poll() is not None,  # noqa: B023
                60,
                "the worker to start delivering",
            )
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        cut_in_flight.update(
            OutboxItem.objects.filter(recipients__status=RecipientStatus.SENDING)
            .values_list("message_id", flat=True)
            .distinct()
        )
    assert kills >= 10, "the queue drained before the worker could be killed ten times"
    assert not all_final()

    final = start_worker(postroom_env, lease=2)
    try:
        wait_until(all_final, 240, "the restarted worker to drain the queue")
    finally:
        stop(final)

    counts = deliveries(server)
    rows = list(OutboxRecipient.objects.values_list("item__message_id", "address", "status"))
    assert len(rows) == 2000 + 667
    assert {status for _mid, _address, status in rows} == {RecipientStatus.SENT}
    duplicated: list[str] = []
    extra = 0
    for message_id, address, _status in rows:
        seen = counts[(message_id, address)]
        assert seen >= 1, f"{address} of {message_id} never arrived"
        if seen > 1:
            duplicated.append(message_id)
            extra += seen - 1
            # Only a message in the window (sent, outcome not yet committed), once per cut.
            assert message_id in cut_in_flight, f"{message_id} arrived {seen} times"
            assert seen <= 1 + cut_in_flight[message_id]
    # The window's bound: RECORD_EVERY messages per sending thread (2 per process).
    window = settings.POSTROOM_OUTBOX_RECORD_EVERY * 2 * default_processes()
    resent = len(server.messages) - 2000  # transactions beyond one per message
    assert resent <= kills * window, f"{resent} messages resent in {kills} kills, window {window}"
    assert sum(counts.values()) == len(rows) + extra  # nothing arrived that was not queued
    assert not OutboxItem.objects.exclude(lease_holder="").exists()
    assert not OutboxRecipient.objects.filter(status=RecipientStatus.SENDING).exists()
    print(
        f"\n{kills} kills; {len(cut_in_flight)} messages cut in flight; "
        f"{len(set(duplicated))} delivered twice, {resent} resent (window {window} per kill)"
    )


def test_two_workers_deliver_every_message_exactly_once(smtp_server_factory, postroom_env):
    server = smtp_server_factory()
    account = make_smtp_account(server)
    queue_many(account, 1000)
    workers = [start_worker(postroom_env, lease=10) for _ in range(2)]
    try:
        wait_until(all_final, 240, "two workers to drain the queue")
    finally:
        for proc in workers:
            stop(proc)
    counts = deliveries(server)
    rows = list(OutboxRecipient.objects.values_list("item__message_id", "address"))
    assert len(rows) == 1000 + 334
    assert all(counts[row] == 1 for row in rows), "a message was delivered twice"
    assert sum(counts.values()) == len(rows)
    pids = {
        worker.split(":")[1] for worker in DeliveryAttempt.objects.values_list("worker", flat=True)
    }
    assert pids == {str(proc.pid) for proc in workers}, "both workers should have sent mail"
    assert DeliveryAttempt.objects.count() == 1000  # one attempt per message: no overlap


def test_postroom_run_sends_queued_mail_without_another_process(smtp_server_factory, postroom_env):
    import socket

    server = smtp_server_factory()
    account = make_smtp_account(server)
    item = queue(account, subject="From the embedded worker")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [postroom_bin(), "run", "--no-watch", "--port", str(port)],
        env={**postroom_env, "POSTROOM_ADMIN_PASSWORD": "run-admin-pw-123"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server.wait_for_messages(1, timeout=60)
        wait_until(all_final, 30, "the item to be recorded as sent")
    finally:
        stop(proc)
    item.refresh_from_db()
    assert item.state == ItemState.SENT
    assert server.messages[0].message["Subject"] == "From the embedded worker"
