"""E3: the signed-in user's notifications; marking them read.

Everyone sees only their own: every lookup goes through
:func:`postroom.core.notify.notifications_of`, so somebody else's
notification is indistinguishable from a missing one (404).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from postroom.core.notify import (
    do_mark_all_notifications_read,
    do_mark_notification_read,
    notifications_of,
)
from postroom.web.views.common import AuthedRequest, redirect_back

PER_PAGE = 50


@login_required
@require_GET
def notification_list(request: AuthedRequest) -> HttpResponse:
    unread_only = request.GET.get("unread") == "1"
    rows = notifications_of(request.user).select_related("account")
    if unread_only:
        rows = rows.filter(read_at__isnull=True)
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "web/notifications/list.html",
        {"page": page, "unread_only": unread_only},
    )


@login_required
@require_POST
def notification_read(request: AuthedRequest, pk: int) -> HttpResponse:
    notification = get_object_or_404(notifications_of(request.user), pk=pk)
    do_mark_notification_read(notification)
    return redirect_back(request, "web:notification_list")


@login_required
@require_POST
def notification_read_all(request: AuthedRequest) -> HttpResponse:
    changed = do_mark_all_notifications_read(request.user)
    if changed:
        messages.success(
            request,
            ngettext("%(n)d notification marked read.", "%(n)d notifications marked read.", changed)
            % {"n": changed},
        )
    else:
        messages.info(request, _("Nothing was unread."))
    return redirect_back(request, "web:notification_list")
