"""Webhook delivery: claim due deliveries under a lease, POST them signed, retry, give up.

What a receiver gets
--------------------
One ``POST`` per event and subscription, body the JSON event
``{"id", "type", "created_at", "data"}`` (the event types and their ``data``
are listed in :mod:`postroom.webhooks.events` and in the API's OpenAPI
description), with these headers:

``Content-Type: application/json``
``X-Postroom-Event``: the event type, e.g. ``record.created``
``X-Postroom-Delivery``: the event id (a UUID); the same on every retry of the
    event, so a receiver that stores it can drop duplicates
``X-Postroom-Timestamp``: when this attempt was sent, in Unix seconds
``X-Postroom-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed with the
    subscription's secret (UTF-8), of ``<timestamp>.<raw body>``

How a receiver verifies (see :func:`verify_signature`, which does exactly this):

1. take the raw body bytes as received (before any JSON parsing);
2. compute ``hmac_sha256(secret, timestamp_header + "." + body)`` and compare
   its hex digest with the header after ``sha256=``, in constant time;
3. reject a timestamp more than five minutes away from its own clock, so a
   captured request cannot be replayed later (every retry is signed afresh
   with its own timestamp).

Answering 2xx means delivered. Anything else (3xx included: redirects are not
followed), a network error, a TLS certificate that does not verify, or no
answer within ``POSTROOM_WEBHOOK_TIMEOUT`` seconds (10) means "try again":
after about 30 seconds, doubling with jitter up to one hour, until the
delivery is ``POSTROOM_WEBHOOK_MAX_AGE_HOURS`` old (72); then it is marked
failed, written to the event log, and shown in the UI and the API, where a
person can send it again.

Order and claiming
------------------
Deliveries of one subscription with the same ``ordering_key`` (a record, an
outbox item, an account) go out strictly in ``id`` order: a delivery is not
claimed while an earlier one of the same key is still pending, so a receiver
that is down gets everything, in order, once it is back. Claiming works as in
the outbox (:mod:`postroom.outgoing.queue`): ``SELECT ... FOR UPDATE SKIP
LOCKED`` on PostgreSQL, the serialised writer on SQLite, and a lease that a
dead worker's deliveries come back from.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.core import secrets
from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel
from postroom.outgoing.queue import writing
from postroom.webhooks.emit import deliveries_changed
from postroom.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery

logger = logging.getLogger(__name__)

BACKOFF_BASE = 30.0  # seconds before the first retry (about)
BACKOFF_CAP = 3600.0
EXCERPT_CHARS = 500  # of the response body, kept in the delivery log
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between timestamp and now
USER_AGENT = "Postroom-Webhooks/1"

__all__ = [
    "Deliverer",
    "backoff",
    "claim_due",
    "deliver_due",
    "deliveries_changed",
    "sign",
    "verify_signature",
]


# -- signing ---------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Postroom-Signature`` value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None = None,
    tolerance: int = SIGNATURE_TOLERANCE,
) -> bool:
    """What a receiver does with the two headers: True only for a fresh, authentic request."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


# -- timing ----------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """About 30 s after the first failed attempt, doubling, at most about an hour."""
    ceiling = BACKOFF_BASE * 2 ** max(0, min(attempts - 1, 20))
    return timedelta(seconds=min(BACKOFF_CAP, ceiling * random.uniform(0.8, 1.2)))


def max_age() -> timedelta:
    return timedelta(hours=float(settings.POSTROOM_WEBHOOK_MAX_AGE_HOURS))


def timeout() -> float:
    return float(settings.POSTROOM_WEBHOOK_TIMEOUT)


def deadline(delivery: WebhookDelivery) -> datetime:
    """After this a failing delivery is given up (counted again from a manual resend)."""
    return (delivery.requeued_at or delivery.created_at) + max_age()


def lease_seconds(limit: int) -> int:
    # Long enough for every claimed delivery to time out once, with room to spare.
    return int(limit * (timeout() + 5) + 60)


# -- claiming --------------------------------------------------------------------


def due_deliveries(now: datetime) -> Any:
    """Pending, due, not leased, of an active subscription, and first of their ordering key."""
    earlier = WebhookDelivery.objects.filter(
        subscription_id=OuterRef("subscription_id"),
        ordering_key=OuterRef("ordering_key"),
        state=DeliveryState.PENDING,
        pk__lt=OuterRef("pk"),
    )
    return (
        WebhookDelivery.objects.filter(
            state=DeliveryState.PENDING, next_attempt_at__lte=now, subscription__active=True
        )
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(Q(ordering_key="") | ~Exists(earlier))
        .order_by("next_attempt_at", "pk")
    )


def claim_due(holder: str, limit: int, *, now: datetime | None = None) -> list[int]:
    """Lease up to ``limit`` due deliveries to ``holder``; returns their ids, oldest first."""
    now = now or timezone.now()
    until = now + timedelta(seconds=lease_seconds(limit))
    with writing():
        due = due_deliveries(now)
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        ids = list(due.values_list("pk", flat=True)[:limit])
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(
                lease_holder=holder, lease_expires_at=until
            )
    return ids


def release(ids: Sequence[int], holder: str) -> None:
    """Give back claimed deliveries that were not attempted (the worker is stopping)."""
    if ids:
        with writing():
            WebhookDelivery.objects.filter(pk__in=list(ids), lease_holder=holder).update(
                lease_holder="", lease_expires_at=None
            )


# -- sending ---------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx answer is the receiver's answer: following it could lead anywhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    # The default context verifies the certificate chain and the host name.
    return urllib.request.build_opener(
        _NoRedirect(), urllib.request.HTTPSHandler(context=ssl.create_default_context())
    )


@dataclass
class Response:
    status_code: int | None
    excerpt: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _excerpt(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")[:EXCERPT_CHARS]


def _network_error(exc: BaseException, seconds: float) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError | socket.timeout):
        return _("No answer within %(s)s seconds.") % {"s": f"{seconds:g}"}
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _("The receiver's TLS certificate is not valid: %(e)s") % {
            "e": exc.verify_message or exc
        }
    if isinstance(exc, ssl.SSLError):
        return _("TLS failed: %(e)s") % {"e": exc}
    if isinstance(exc, ConnectionRefusedError):
        return _("Connection refused: nothing listens at that address and port.")
    if isinstance(exc, socket.gaierror):
        return _("The host name could not be resolved: %(e)s") % {"e": exc}
    return _("Network error: %(e)s") % {"e": f"{type(exc).__name__}: {exc}"}


def post(url: str, body: bytes, headers: dict[str, str], seconds: float) -> Response:
    """One POST; never raises for what the network or the receiver does."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 -- the form allows http(s) only
    started = time.monotonic()
    code: int | None = None
    excerpt = error = ""
    try:
        with _opener().open(request, timeout=seconds) as answer:
            code = answer.status
            excerpt = _excerpt(answer.read(EXCERPT_CHARS * 4))
    except urllib.error.HTTPError as exc:
        code = exc.code
        try:
            excerpt = _excerpt(exc.read(EXCERPT_CHARS * 4))
        except (OSError, http.client.HTTPException):
            excerpt = ""
        finally:
            exc.close()
        if 300 <= code < 400:
            error = _("Redirects are not followed; give the final URL.")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        error = _network_error(exc, seconds)
    duration = int((time.monotonic() - started) * 1000)
    return Response(code, excerpt, error, duration)


def request_for(delivery: WebhookDelivery, secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt, signed with a fresh timestamp."""
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Postroom-Event": delivery.event_type,
        "X-Postroom-Delivery": str(delivery.event_id),
        "X-Postroom-Timestamp": str(stamp),
        "X-Postroom-Signature": sign(secret, stamp, body),
    }
    return body, headers


# -- recording -------------------------------------------------------------------


def _record(
    delivery: WebhookDelivery, holder: str, answer: Response, now: datetime
) -> DeliveryState:
    attempts = delivery.attempts + 1
    error = answer.error
    if not answer.ok and not error and answer.status_code is not None:
        error = _("The receiver answered %(code)d.") % {"code": answer.status_code}
    fields: dict[str, Any] = {
        "attempts": F("attempts") + 1,
        "last_status_code": answer.status_code,
        "last_error": error[:2000],
        "lease_holder": "",
        "lease_expires_at": None,
    }
    give_up_at = deadline(delivery)
    if answer.ok:
        state = DeliveryState.DELIVERED
        fields.update(state=state, delivered_at=now, last_error="")
    elif now >= give_up_at:
        state = DeliveryState.FAILED
        fields.update(state=state)
    else:
        state = DeliveryState.PENDING
        fields.update(next_attempt_at=min(now + backoff(attempts), give_up_at))
    subscription = delivery.subscription
    with writing():
        current = WebhookDelivery.objects.filter(pk=delivery.pk)
        if connection.features.has_select_for_update:
            current = current.select_for_update()  # a delete of the webhook waits for us
        if not list(current.values_list("pk", flat=True)):
            return state  # deleted with its webhook meanwhile: nothing to record
        WebhookAttempt.objects.create(
            delivery=delivery,
            status_code=answer.status_code,
            error=error[:2000],
            response_excerpt=answer.excerpt,
            duration_ms=answer.duration_ms,
        )
        updated = WebhookDelivery.objects.filter(
            pk=delivery.pk, lease_holder=holder, state=DeliveryState.PENDING
        ).update(**fields)
        if updated and state == DeliveryState.FAILED:
            do_log_event(
                kind="webhook.failed",
                level=EventLevel.ERROR,
                account=subscription.account,
                message=_(
                    "Webhook %(name)s: gave up on a %(event)s delivery after %(n)d attempts. "
                    "Last error: %(error)s"
                )
                % {
                    "name": subscription.name,
                    "event": delivery.event_type,
                    "n": attempts,
                    "error": error,
                },
                data={
                    "subscription": subscription.pk,
                    "delivery": delivery.pk,
                    "event_id": str(delivery.event_id),
                    "status_code": answer.status_code,
                },
            )
    if not updated:
        logger.info("webhook delivery %s: lease lost while sending", delivery.pk)
    elif state == DeliveryState.PENDING:
        logger.info(
            "webhook delivery %s to %s failed (%s), retrying",
            delivery.pk,
            subscription.pk,
            error,
        )
    return state


class Deliverer:
    """Claims and sends deliveries; one per thread, each with its own ``holder`` id."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.stopping = False

    def deliver_due(self, limit: int | None = None, *, now: datetime | None = None) -> int:
        """Claim up to ``limit`` due deliveries and send them; returns how many were claimed.

        ``now`` (tests) is the queue's clock: what is due, and when the next
        attempt is; the signed timestamp is always the real time.
        """
        limit = max(1, limit or int(settings.POSTROOM_WEBHOOK_BATCH))
        ids = claim_due(self.holder, limit, now=now)
        if not ids:
            return 0
        rows = WebhookDelivery.objects.select_related(
            "subscription", "subscription__account"
        ).in_bulk(ids)
        for index, pk in enumerate(ids):
            if self.stopping:
                release(ids[index:], self.holder)
                break
            delivery = rows.get(pk)
            if delivery is None:
                continue
            try:
                self.send(delivery, now=now)
            except Exception:
                # A bug or a database hiccup must not stop the batch; the lease expires.
                logger.exception("webhook delivery %s failed", pk)
        return len(ids)

    def send(self, delivery: WebhookDelivery, *, now: datetime | None = None) -> DeliveryState:
        try:
            secret = secrets.decrypt(delivery.subscription.secret_encrypted)
        except secrets.SecretUnreadable:
            answer = Response(
                None,
                "",
                _(
                    "The webhook's secret cannot be decrypted (the encryption key changed); "
                    "rotate the secret."
                ),
                0,
            )
        else:
            body, headers = request_for(delivery, secret)
            answer = post(delivery.subscription.url, body, headers, timeout())
        return _record(delivery, self.holder, answer, now or timezone.now())


def deliver_due(holder: str, limit: int | None = None, *, now: datetime | None = None) -> int:
    """Claim and send due deliveries once (what the worker's webhook thread calls in a loop)."""
    return Deliverer(holder).deliver_due(limit, now=now)


def loop(deliverer: Deliverer, stop: Any, poll_seconds: float = 2.0) -> None:
    """The worker's webhook thread: send what is due, then wait for an emit or the poll."""
    from django.db import close_old_connections

    try:
        while not stop.is_set():
            close_old_connections()
            try:
                claimed = deliverer.deliver_due()
            except Exception:
                logger.exception("webhook delivery round failed")
                claimed = 0
            if claimed:
                continue
            if deliveries_changed.wait(poll_seconds):
                deliveries_changed.clear()
    finally:
        connection.close()
