"""``/webhooks``: subscriptions, their test event, their delivery log (F3).

Every operation needs the permission ``webhooks.change_webhooksubscription``
(403 without it). A subscription limited to an account is visible only to
users who can read that account; one for every account only to superusers
(others get 404). The secret is in the answer to create and to rotate-secret,
and nowhere else. Changes go through :mod:`postroom.webhooks.actions` only.
The events and their payloads are described in the API description above.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from postroom.api.common import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    current_user,
    newest_first_page,
)
from postroom.api.schemas import ErrorOut, FieldErrorsOut
from postroom.webhooks.actions import (
    WebhookError,
    do_create_subscription,
    do_delete_subscription,
    do_redeliver,
    do_rotate_secret,
    do_send_test,
    do_update_subscription,
)
from postroom.webhooks.events import EVENT_DOCS
from postroom.webhooks.forms import SubscriptionForm, initial_for
from postroom.webhooks.models import (
    DeliveryState,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from postroom.webhooks.permissions import (
    can_manage_webhooks,
    manageable_deliveries,
    manageable_subscriptions,
)
from postroom.webhooks.queries import delivery_counts

router = Router(tags=["webhooks"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
ATTEMPTS_SHOWN = 20


# -- schemas --------------------------------------------------------------------


class SubscriptionIn(Schema):
    name: str
    url: str = Field(description="http:// or https:// (certificates are verified)")
    event_types: list[str] = Field(description="Event types, e.g. record.created")
    account: int | None = Field(
        None, description="Only this account's events; null: every account (superusers only)"
    )
    active: bool = True


class SubscriptionPatch(Schema):
    name: str | None = None
    url: str | None = None
    event_types: list[str] | None = None
    account: int | None = Field(None, description="Give null explicitly for every account")
    active: bool | None = None


class SubscriptionOut(Schema):
    id: int
    name: str
    url: str
    event_types: list[str]
    account: int | None
    active: bool
    created_by: str | None
    created_at: datetime
    pending_deliveries: int
    failed_deliveries: int = Field(description="Given up; each needs a person (redeliver)")


class SubscriptionSecretOut(SubscriptionOut):
    secret: str = Field(
        description="Signs every delivery (X-Postroom-Signature). Shown only in this answer."
    )


class AttemptOut(Schema):
    at: datetime
    status_code: int | None
    error: str
    response_excerpt: str
    duration_ms: int


class DeliveryOut(Schema):
    id: int
    event_id: str = Field(description="X-Postroom-Delivery")
    event_type: str
    ordering_key: str
    state: str = Field(description="pending, delivered or failed (given up)")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    log: list[AttemptOut] = Field(description=f"The latest {ATTEMPTS_SHOWN} attempts, newest first")


class DeliveryPageOut(Schema):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end")


class DeliveryFilters(Schema):
    state: DeliveryState | None = Field(None, description="Only deliveries in this state")
    cursor: str | None = Field(None, description="next_cursor of the previous page")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class EventTypeOut(Schema):
    type: str
    label: str
    sent_when: str
    data: str


# -- helpers --------------------------------------------------------------------


def _manager(request: HttpRequest) -> AbstractBaseUser:
    user = current_user(request)
    if not can_manage_webhooks(user):
        raise Forbidden(_("You do not have the right to manage webhooks."))
    return user


def _subscription(user: AbstractBaseUser, pk: int) -> WebhookSubscription:
    found = manageable_subscriptions(user).filter(pk=pk).first()
    if found is None:
        raise NotFound(_("No webhook with this id."))
    return found


def subscription_dict(
    subscription: WebhookSubscription, counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """``counts``: its deliveries by state, when a list has already counted them in one query."""
    if counts is None:
        counts = delivery_counts([subscription.pk]).get(subscription.pk, {})
    return {
        "id": subscription.pk,
        "name": subscription.name,
        "url": subscription.url,
        "event_types": list(subscription.event_types),
        "account": subscription.account_id,
        "active": subscription.active,
        "created_by": getattr(subscription.created_by, "username", None),
        "created_at": subscription.created_at,
        "pending_deliveries": counts.get(DeliveryState.PENDING, 0),
        "failed_deliveries": counts.get(DeliveryState.FAILED, 0),
    }


def delivery_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    log = WebhookAttempt.objects.filter(delivery=delivery).order_by("-at", "-id")[:ATTEMPTS_SHOWN]
    return {
        "id": delivery.pk,
        "event_id": str(delivery.event_id),
        "event_type": delivery.event_type,
        "ordering_key": delivery.ordering_key,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at
        if delivery.state == DeliveryState.PENDING
        else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
        "payload": delivery.payload,
        "log": [
            {
                "at": a.at,
                "status_code": a.status_code,
                "error": a.error,
                "response_excerpt": a.response_excerpt,
                "duration_ms": a.duration_ms,
            }
            for a in log
        ],
    }


def _valid_form(user: AbstractBaseUser, data: dict[str, Any]) -> SubscriptionForm:
    form = SubscriptionForm(data=data, user=user)
    if not form.is_valid():
        raise InvalidInput.from_form(form)
    return form


def _with_secret(subscription: WebhookSubscription, secret: str) -> dict[str, Any]:
    return {**subscription_dict(subscription), "secret": secret}


# -- operations -----------------------------------------------------------------


@router.get(
    "/events",
    response={200: list[EventTypeOut], 403: ErrorOut},
    summary="The event types and what each one carries",
)
def event_types(request: HttpRequest) -> list[dict[str, str]]:
    _manager(request)
    labels = dict(EventType.choices)
    return [
        {"type": str(event), "label": str(labels[event]), "sent_when": str(when), "data": data}
        for event, when, data in EVENT_DOCS
    ]


@router.get(
    "",
    response={200: list[SubscriptionOut], 403: ErrorOut},
    summary="List the webhooks you may manage",
)
def list_subscriptions(request: HttpRequest) -> list[dict[str, Any]]:
    user = _manager(request)
    subscriptions = list(manageable_subscriptions(user).select_related("created_by"))
    counts = delivery_counts([s.pk for s in subscriptions])
    return [subscription_dict(s, counts.get(s.pk, {})) for s in subscriptions]


@router.post(
    "",
    response={201: SubscriptionSecretOut, 403: ErrorOut, 422: FieldErrorsOut},
    summary="Create a webhook; the answer holds its secret, shown only this once",
)
def create_subscription(request: HttpRequest, payload: SubscriptionIn) -> Status[dict[str, Any]]:
    user = _manager(request)
    form = _valid_form(user, payload.dict())
    subscription, secret = do_create_subscription(actor=user, **form.cleaned_data)
    return Status(201, _with_secret(subscription, secret))


@router.get(
    "/{subscription_id}",
    response={200: SubscriptionOut, 403: ErrorOut, 404: ErrorOut},
    summary="One webhook (never its secret)",
)
def get_subscription(request: HttpRequest, subscription_id: int) -> dict[str, Any]:
    return subscription_dict(_subscription(_manager(request), subscription_id))


@router.patch(
    "/{subscription_id}",
    response={200: SubscriptionOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="Change a webhook: only the fields given",
)
def update_subscription(
    request: HttpRequest, subscription_id: int, payload: SubscriptionPatch
) -> dict[str, Any]:
    user = _manager(request)
    subscription = _subscription(user, subscription_id)
    data = initial_for(subscription)
    data.update(payload.dict(exclude_unset=True))
    form = _valid_form(user, data)
    do_update_subscription(subscription, actor=user, **form.cleaned_data)
    return subscription_dict(_subscription(user, subscription_id))


@router.delete(
    "/{subscription_id}",
    response={204: None, 403: ErrorOut, 404: ErrorOut},
    summary="Delete a webhook with its deliveries",
)
def delete_subscription(request: HttpRequest, subscription_id: int) -> Status[None]:
    user = _manager(request)
    do_delete_subscription(_subscription(user, subscription_id), actor=user)
    return Status(204, None)


@router.post(
    "/{subscription_id}/rotate-secret",
    response={200: SubscriptionSecretOut, 403: ErrorOut, 404: ErrorOut},
    summary="Replace the secret; the answer holds the new one, shown only this once",
)
def rotate_secret(request: HttpRequest, subscription_id: int) -> dict[str, Any]:
    user = _manager(request)
    subscription = _subscription(user, subscription_id)
    secret = do_rotate_secret(subscription, actor=user)
    return _with_secret(subscription, secret)


@router.post(
    "/{subscription_id}/test",
    response={202: DeliveryOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Queue a webhook.test event for this webhook only",
)
def send_test(request: HttpRequest, subscription_id: int) -> Status[dict[str, Any]]:
    user = _manager(request)
    subscription = _subscription(user, subscription_id)
    try:
        delivery = do_send_test(subscription, actor=user)
    except WebhookError as exc:
        raise Conflict(str(exc)) from exc
    return Status(202, delivery_dict(delivery))


@router.get(
    "/{subscription_id}/deliveries",
    response={200: DeliveryPageOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="The delivery log, newest first (cursor pagination)",
)
def list_deliveries(
    request: HttpRequest, subscription_id: int, filters: Query[DeliveryFilters]
) -> dict[str, Any]:
    user = _manager(request)
    subscription = _subscription(user, subscription_id)
    rows = WebhookDelivery.objects.filter(subscription=subscription)
    if filters.state is not None:
        rows = rows.filter(state=filters.state.value)
    page, next_cursor = newest_first_page(rows, filters.cursor, filters.limit)
    return {"items": [delivery_dict(d) for d in page], "next_cursor": next_cursor}


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/redeliver",
    response={200: DeliveryOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Send a failed (given-up) delivery again",
)
def redeliver(request: HttpRequest, subscription_id: int, delivery_id: int) -> dict[str, Any]:
    user = _manager(request)
    subscription = _subscription(user, subscription_id)
    delivery = (
        manageable_deliveries(user)
        .filter(pk=delivery_id, subscription=subscription)
        .select_related("subscription", "subscription__account")
        .first()
    )
    if delivery is None:
        raise NotFound(_("No delivery with this id."))
    try:
        delivery = do_redeliver(delivery, actor=user)
    except WebhookError as exc:
        raise Conflict(str(exc)) from exc
    return delivery_dict(delivery)
