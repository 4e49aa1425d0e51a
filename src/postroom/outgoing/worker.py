"""``postroom worker``: deliver the outgoing queue, on as many machines as you like.

A worker runs a few sending threads, each with its own
:class:`~postroom.outgoing.queue.Courier` (so its own SMTP connection per
account and its own worker id, which is what leases name), and a heartbeat
loop that renews the leases those threads hold and records that the worker
is alive (``postroom send --wait`` delivers in the foreground when none is).
Two more threads deliver webhooks and, once a minute, report threads nobody
answered in time (B11, :mod:`postroom.records.unreplied`).
Stopping (SIGTERM, SIGINT) lets every thread finish the message it is on and
gives back what it had claimed but not started.

Python runs one thread at a time, so a worker started from a program's main
thread (``postroom worker``) also forks ``processes - 1`` sending processes
(``POSTROOM_WORKER_PROCESSES``, default one per CPU, at most 4): each runs its
own sending threads and heartbeat under its own worker id, the parent's id with
``.N`` appended; webhooks and the unreplied check run in the parent only. The
parent passes SIGTERM/SIGINT on and waits for them; they are killed by the
kernel when the parent dies (``PR_SET_PDEATHSIG``), so a killed worker leaves no
sender behind. The embedded worker of ``postroom run`` runs in a thread and
never forks.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import timedelta
from typing import NoReturn

from django.conf import settings
from django.db import close_old_connections, connection, connections
from django.utils import timezone

from postroom.outgoing.actions import queue_changed
from postroom.outgoing.models import OutboxItem, WorkerHeartbeat
from postroom.outgoing.queue import Courier, lease_seconds, writing
from postroom.webhooks import delivery as webhooks

logger = logging.getLogger(__name__)

HEARTBEAT_MAX_SECONDS = 10.0
# B11: how often the worker looks for unreplied threads (postroom.records.unreplied).
UNREPLIED_SECONDS = 60.0


def default_processes() -> int:
    configured = int(settings.POSTROOM_WORKER_PROCESSES)
    if configured > 0:
        return configured
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when its parent dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError) as exc:
            logger.warning("sending process cannot follow its parent: %s", exc)
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(0)


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def worker_running(within: float | None = None) -> bool:
    """Whether some worker (here or elsewhere) reported in recently."""
    seconds = within if within is not None else 3 * HEARTBEAT_MAX_SECONDS
    since = timezone.now() - timedelta(seconds=seconds)
    return WorkerHeartbeat.objects.filter(seen_at__gte=since).exists()


class Worker:
    def __init__(
        self,
        *,
        threads: int | None = None,
        batch: int | None = None,
        poll_seconds: float | None = None,
        worker_id: str | None = None,
        processes: int | None = None,
        helpers: bool = True,
    ) -> None:
        self.worker_id = worker_id or make_worker_id()
        self.threads = max(1, threads or int(settings.POSTROOM_WORKER_THREADS))
        self.processes = max(1, processes or default_processes())
        # Webhooks and the unreplied check: once per worker, not per sending process.
        self.helpers = helpers
        self._children: list[int] = []
        self.batch = max(1, batch or int(settings.POSTROOM_OUTBOX_BATCH))
        self.poll_seconds = poll_seconds or float(settings.POSTROOM_OUTBOX_POLL_SECONDS)
        self.stop_event = threading.Event()
        self._couriers = [Courier(f"{self.worker_id}/{n}") for n in range(self.threads)]
        # One more thread delivers webhooks (postroom.webhooks.delivery).
        self._webhooks = webhooks.Deliverer(f"{self.worker_id}/webhooks")
        self.unreplied_seconds = UNREPLIED_SECONDS

    @property
    def holder_ids(self) -> list[str]:
        return [courier.worker_id for courier in self._couriers]

    def stop(self) -> None:
        self.stop_event.set()
        for courier in self._couriers:
            courier.stopping = True
        self._webhooks.stopping = True
        queue_changed.set()
        webhooks.deliveries_changed.set()
        for pid in self._children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self) -> None:
        """Send until stopped; returns after every thread (and process) has finished its message."""
        if (
            self.processes > 1
            and threading.current_thread() is threading.main_thread()
            and not self.stop_event.is_set()
        ):
            self._fork_senders()
        logger.info("outgoing worker %s started with %d thread(s)", self.worker_id, self.threads)
        started = timezone.now()
        threads = [
            threading.Thread(target=self._send_loop, args=(c,), name=f"send-{n}", daemon=True)
            for n, c in enumerate(self._couriers)
        ]
        if self.helpers:
            threads.append(
                threading.Thread(
                    target=webhooks.loop,
                    args=(self._webhooks, self.stop_event),
                    name="webhooks",
                    daemon=True,
                )
            )
            threads.append(
                threading.Thread(target=self._unreplied_loop, name="unreplied", daemon=True)
            )
        for thread in threads:
            thread.start()
        interval = min(HEARTBEAT_MAX_SECONDS, lease_seconds() / 3)
        try:
            while not self.stop_event.is_set():
                try:
                    close_old_connections()
                    self._heartbeat(started)
                    self._check_senders()
                except Exception:
                    logger.exception("outgoing worker heartbeat failed")
                self.stop_event.wait(interval)
        finally:
            for thread in threads:
                thread.join(timeout=60)
            self._reap_senders()
            try:
                WorkerHeartbeat.objects.filter(worker_id=self.worker_id).delete()
            except Exception:
                logger.exception("could not remove the worker heartbeat")
            connection.close()
            logger.info("outgoing worker %s stopped", self.worker_id)

    def _fork_senders(self) -> None:
        """Start ``processes - 1`` sending processes (before any thread exists here)."""
        connections.close_all()  # a forked process must open its own
        parent = os.getpid()
        for n in range(1, self.processes):
            pid = os.fork()
            if pid:
                self._children.append(pid)
                continue
            self._sending_process(n, parent)

    def _sending_process(self, n: int, parent: int) -> NoReturn:
        """The body of forked sending process ``n``: a worker without helpers, then exit."""
        self._children = []  # this copy of the parent's worker signals nobody
        code = 1
        try:
            _die_with_parent(parent)
            child = Worker(
                threads=self.threads,
                batch=self.batch,
                poll_seconds=self.poll_seconds,
                worker_id=f"{self.worker_id}.{n}",
                processes=1,
                helpers=False,
            )
            signal.signal(signal.SIGTERM, lambda *_: child.stop())
            signal.signal(signal.SIGINT, lambda *_: child.stop())
            child.run()
            code = 0
        except BaseException:
            logger.exception("sending process %s.%d failed", self.worker_id, n)
        finally:
            logging.shutdown()
            os._exit(code)

    def _check_senders(self) -> None:
        """Say so when a sending process has died (its leases expire; the others go on)."""
        for pid in list(self._children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                self._children.remove(pid)
                logger.error(
                    "sending process %d of worker %s ended (status %d); its messages are "
                    "sent by the others once their leases expire",
                    pid,
                    self.worker_id,
                    status,
                )

    def _reap_senders(self, timeout: float = 90.0) -> None:
        """Wait for the sending processes (each finishes its message); kill the late ones."""
        deadline = time.monotonic() + timeout
        for pid in self._children:  # again: one may have started after stop()
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in self._children:
            while True:
                try:
                    done, _status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.05)
        self._children = []

    def _heartbeat(self, started: object) -> None:
        now = timezone.now()
        with writing():
            OutboxItem.objects.filter(lease_holder__in=self.holder_ids).update(
                lease_expires_at=now + timedelta(seconds=lease_seconds())
            )
        WorkerHeartbeat.objects.update_or_create(
            worker_id=self.worker_id, defaults={"seen_at": now, "started_at": started}
        )

    def _unreplied_loop(self) -> None:
        """B11: report threads nobody answered in time, every ``unreplied_seconds``."""
        from postroom.records.unreplied import do_check_unreplied

        try:
            while not self.stop_event.wait(self.unreplied_seconds):
                close_old_connections()
                try:
                    do_check_unreplied()
                except Exception:
                    logger.exception("unreplied check failed")
        finally:
            connection.close()

    def _send_loop(self, courier: Courier) -> None:
        try:
            while not self.stop_event.is_set():
                close_old_connections()
                try:
                    claimed = courier.deliver_due(self.batch)
                except Exception:
                    logger.exception("outgoing delivery failed")
                    claimed = 0
                if claimed:
                    continue
                courier.close_idle()
                if queue_changed.wait(self.poll_seconds):
                    queue_changed.clear()
        finally:
            courier.close()
            connection.close()
