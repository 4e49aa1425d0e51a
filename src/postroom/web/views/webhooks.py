"""Webhooks (F3): subscriptions, their secret (shown once), a test event, the delivery log.

Every view needs the permission to manage webhooks (403 without it); a
subscription the user may not see (another account's, or one for every
account when the user is not a superuser) is a 404, as in the API. See
:mod:`postroom.webhooks.permissions`.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from postroom.web.views.common import AuthedRequest
from postroom.webhooks.actions import (
    WebhookError,
    do_create_subscription,
    do_delete_subscription,
    do_redeliver,
    do_rotate_secret,
    do_send_test,
    do_update_subscription,
)
from postroom.webhooks.events import EVENT_DOCS, ORDERING
from postroom.webhooks.forms import SubscriptionForm, initial_for
from postroom.webhooks.models import DeliveryState, WebhookDelivery, WebhookSubscription
from postroom.webhooks.permissions import can_manage_webhooks, manageable_subscriptions
from postroom.webhooks.queries import delivery_counts

PER_PAGE = 25


def _require_manager(request: AuthedRequest) -> None:
    if not can_manage_webhooks(request.user):
        raise PermissionDenied


def _subscription_or_404(request: AuthedRequest, pk: int) -> WebhookSubscription:
    _require_manager(request)
    found = manageable_subscriptions(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404(_("No such webhook."))
    return found


def _show_secret(
    request: AuthedRequest, subscription: WebhookSubscription, secret: str, *, created: bool
) -> HttpResponse:
    # Rendered directly, never redirected: the secret exists only in this response.
    return render(
        request,
        "web/webhooks/secret.html",
        {"subscription": subscription, "secret": secret, "created": created},
    )


@login_required
@require_GET
def webhook_list(request: AuthedRequest) -> HttpResponse:
    _require_manager(request)
    subscriptions = list(manageable_subscriptions(request.user).select_related("created_by"))
    counts = delivery_counts([s.pk for s in subscriptions])
    rows = [
        {
            "subscription": s,
            "pending": counts.get(s.pk, {}).get(DeliveryState.PENDING, 0),
            "failed": counts.get(s.pk, {}).get(DeliveryState.FAILED, 0),
        }
        for s in subscriptions
    ]
    return render(
        request,
        "web/webhooks/list.html",
        {"rows": rows, "events": EVENT_DOCS, "ordering": ORDERING},
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def webhook_create(request: AuthedRequest) -> HttpResponse:
    _require_manager(request)
    form = SubscriptionForm(
        request.POST if request.method == "POST" else None,
        user=request.user,
        initial={"active": True},
    )
    if request.method == "POST" and form.is_valid():
        subscription, secret = do_create_subscription(actor=request.user, **form.cleaned_data)
        return _show_secret(request, subscription, secret, created=True)
    return render(request, "web/webhooks/form.html", {"form": form, "subscription": None})


@login_required
@require_http_methods(["GET", "POST"])
def webhook_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    subscription = _subscription_or_404(request, pk)
    form = SubscriptionForm(
        request.POST if request.method == "POST" else None,
        user=request.user,
        initial=initial_for(subscription),
    )
    if request.method == "POST" and form.is_valid():
        do_update_subscription(subscription, actor=request.user, **form.cleaned_data)
        messages.success(request, _("Webhook %(name)s saved.") % {"name": subscription.name})
        return redirect("web:webhook_list")
    return render(request, "web/webhooks/form.html", {"form": form, "subscription": subscription})


@login_required
@require_http_methods(["GET", "POST"])
def webhook_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    subscription = _subscription_or_404(request, pk)
    if request.method == "POST":
        do_delete_subscription(subscription, actor=request.user)
        messages.success(request, _("Webhook %(name)s deleted.") % {"name": subscription.name})
        return redirect("web:webhook_list")
    return render(request, "web/webhooks/delete.html", {"subscription": subscription})


@never_cache
@login_required
@require_POST
def webhook_rotate(request: AuthedRequest, pk: int) -> HttpResponse:
    subscription = _subscription_or_404(request, pk)
    secret = do_rotate_secret(subscription, actor=request.user)
    return _show_secret(request, subscription, secret, created=False)


@login_required
@require_POST
def webhook_test(request: AuthedRequest, pk: int) -> HttpResponse:
    subscription = _subscription_or_404(request, pk)
    try:
        do_send_test(subscription, actor=request.user)
    except WebhookError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, _("A test event is on its way; its delivery appears in the log below.")
        )
    return redirect("web:webhook_deliveries", subscription.pk)


@login_required
@require_GET
def webhook_deliveries(request: AuthedRequest, pk: int) -> HttpResponse:
    subscription = _subscription_or_404(request, pk)
    state = request.GET.get("state", "")
    if state not in DeliveryState.values:
        state = ""
    rows = WebhookDelivery.objects.filter(subscription=subscription).prefetch_related("log")
    if state:
        rows = rows.filter(state=state)
    page = Paginator(rows.order_by("-pk"), PER_PAGE).get_page(request.GET.get("page"))
    counts = delivery_counts([subscription.pk]).get(subscription.pk, {})
    context = {
        "subscription": subscription,
        "page": page,
        "state": state,
        "states": [(s.value, s.label, counts.get(s.value, 0)) for s in DeliveryState],
        "pending": counts.get(DeliveryState.PENDING, 0),
    }
    if request.htmx and request.htmx.target == "deliveries":
        return render(request, "web/webhooks/_deliveries.html", context)
    return render(request, "web/webhooks/deliveries.html", context)


@login_required
@require_POST
def webhook_redeliver(request: AuthedRequest, pk: int, delivery_pk: int) -> HttpResponse:
    subscription = _subscription_or_404(request, pk)
    delivery = (
        WebhookDelivery.objects.filter(pk=delivery_pk, subscription=subscription)
        .select_related("subscription", "subscription__account")
        .first()
    )
    if delivery is None:
        raise Http404(_("No such delivery."))
    try:
        do_redeliver(delivery, actor=request.user)
    except WebhookError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("The delivery will be sent again now."))
    return redirect("web:webhook_deliveries", subscription.pk)
