"""Outgoing mail: the outbox, one item's delivery attempts, the suppression list.

The outbox lists the items of every account the user has any right on (read
or send: managing implies both); cancel and retry need the send right on the
item's account, as in the API and the CLI.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from postroom.accounts.models import Right
from postroom.accounts.permissions import accounts_for, can_manage_domains, visible_accounts
from postroom.outgoing.actions import (
    NothingToCancel,
    NothingToRetry,
    do_cancel,
    do_retry_now,
    do_unsuppress,
)
from postroom.outgoing.models import ItemState, OutboxItem
from postroom.outgoing.queries import (
    attempts_of,
    outbox_items,
    queue_depth,
    suppressions,
    worker_running,
)
from postroom.web.views.common import AuthedRequest, account_or_404, redirect_back

PER_PAGE = 50


def _item_or_404(request: AuthedRequest, pk: int, right: Right | None = None) -> OutboxItem:
    """The item if its account is visible to the user, else 404; 403 without ``right``."""
    item = outbox_items(visible_accounts(request.user)).filter(pk=pk).first()
    if item is None:
        raise Http404(_("No such outbox item."))
    if right is not None:
        account_or_404(request, item.account_id, right)
    return item


@login_required
@require_GET
def outbox(request: AuthedRequest) -> HttpResponse:
    visible = visible_accounts(request.user).order_by("name")
    account = None
    account_param = request.GET.get("account", "")
    if account_param.isdigit():
        account = account_or_404(request, int(account_param))
    state = request.GET.get("state", "")
    if state not in ItemState.values:
        state = ""
    scope = visible.filter(pk=account.pk) if account is not None else visible
    items = outbox_items(scope, state=state or None).order_by("-created_at", "-pk")
    page = Paginator(items, PER_PAGE).get_page(request.GET.get("page"))
    sendable = set(accounts_for(request.user, Right.SEND).values_list("pk", flat=True))
    depth = queue_depth(scope)
    return render(
        request,
        "web/outbox/list.html",
        {
            "page": page,
            "accounts": visible,
            "account": account,
            "state": state,
            "states": [(s.value, s.label, depth.get(s.value, 0)) for s in ItemState],
            "sendable": sendable,
            "worker_running": worker_running(),
            "can_see_suppressions": can_manage_domains(request.user),
        },
    )


@login_required
@require_GET
def outbox_item(request: AuthedRequest, pk: int) -> HttpResponse:
    item = _item_or_404(request, pk)
    can_send = item.account_id in set(
        accounts_for(request.user, Right.SEND).values_list("pk", flat=True)
    )
    return render(
        request,
        "web/outbox/detail.html",
        {"item": item, "attempts": attempts_of(item), "can_send": can_send},
    )


@login_required
@require_POST
def outbox_cancel(request: AuthedRequest, pk: int) -> HttpResponse:
    item = _item_or_404(request, pk, Right.SEND)
    try:
        do_cancel(item, actor=request.user)
    except NothingToCancel as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Cancelled the recipients not yet sent to."))
    return redirect_back(request, "web:outbox_item", item.pk)


@login_required
@require_POST
def outbox_retry(request: AuthedRequest, pk: int) -> HttpResponse:
    item = _item_or_404(request, pk, Right.SEND)
    try:
        do_retry_now(item, actor=request.user)
    except NothingToRetry as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("The message will be sent again now."))
    return redirect_back(request, "web:outbox_item", item.pk)


# -- the suppression list ------------------------------------------------------------
#
# The list is site-wide, not per account: one entry stops every account of the
# site from sending to that address, and the entries come from bounces of
# other people's mail (they reveal who wrote to whom). So, like the domains'
# server settings, it belongs to those who run the site's mail: superusers and
# users with the domain-management permission (superusers hold every
# permission, so can_manage_domains covers both).


def _require_suppression_rights(request: AuthedRequest) -> None:
    if not can_manage_domains(request.user):
        raise PermissionDenied


@login_required
@require_GET
def outbox_suppressions(request: AuthedRequest) -> HttpResponse:
    _require_suppression_rights(request)
    rows = suppressions().select_related("item")
    query = request.GET.get("q", "").strip()
    if query:
        rows = rows.filter(address__icontains=query)
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "web/outbox/suppressions.html", {"page": page, "q": query})


@login_required
@require_POST
def outbox_unsuppress(request: AuthedRequest) -> HttpResponse:
    _require_suppression_rights(request)
    address = request.POST.get("address", "").strip()
    if address and do_unsuppress(address, actor=request.user):
        messages.success(
            request,
            _("%(a)s was removed from the suppression list; mail to it is sent again.")
            % {"a": address},
        )
    else:
        messages.error(request, _("%(a)s is not on the suppression list.") % {"a": address})
    return redirect("web:outbox_suppressions")
