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
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from postroom.outgoing.actions import queue_changed
from postroom.outgoing.models import OutboxItem, WorkerHeartbeat
from postroom.outgoing.queue import Courier, lease_seconds, writing
from postroom.webhooks import delivery as webhooks

logger = logging.getLogger(__name__)

HEARTBEAT_MAX_SECONDS = 10.0
# B11: how often the worker looks for unreplied threads (postroom.records.unreplied).
UNREPLIED_SECONDS = 60.0


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
    ) -> None:
        self.worker_id = worker_id or make_worker_id()
        self.threads = max(1, threads or int(settings.POSTROOM_WORKER_THREADS))
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

    def run(self) -> None:
        """Send until stopped; returns after every thread has finished its message."""
        logger.info("outgoing worker %s started with %d thread(s)", self.worker_id, self.threads)
        started = timezone.now()
        threads = [
            threading.Thread(target=self._send_loop, args=(c,), name=f"send-{n}", daemon=True)
            for n, c in enumerate(self._couriers)
        ]
        threads.append(
            threading.Thread(
                target=webhooks.loop,
                args=(self._webhooks, self.stop_event),
                name="webhooks",
                daemon=True,
            )
        )
        threads.append(threading.Thread(target=self._unreplied_loop, name="unreplied", daemon=True))
        for thread in threads:
            thread.start()
        interval = min(HEARTBEAT_MAX_SECONDS, lease_seconds() / 3)
        try:
            while not self.stop_event.is_set():
                try:
                    close_old_connections()
                    self._heartbeat(started)
                except Exception:
                    logger.exception("outgoing worker heartbeat failed")
                self.stop_event.wait(interval)
        finally:
            for thread in threads:
                thread.join(timeout=60)
            try:
                WorkerHeartbeat.objects.filter(worker_id=self.worker_id).delete()
            except Exception:
                logger.exception("could not remove the worker heartbeat")
            connection.close()
            logger.info("outgoing worker %s stopped", self.worker_id)

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
        from postroom.records.unreplied import check_unreplied

        try:
            while not self.stop_event.wait(self.unreplied_seconds):
                close_old_connections()
                try:
                    check_unreplied()
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
