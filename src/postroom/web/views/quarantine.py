"""Quarantine: messages that could not be parsed, kept raw with their error.

Listed across every account whose mail the user may read; re-processing
(parse them again, e.g. after a parser fix) is per account and needs the
manage right, as in the API.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import accounts_for
from postroom.incoming.actions import do_reprocess_quarantined
from postroom.incoming.models import Message, ParseState
from postroom.web.mailbox import NEWEST_FIRST
from postroom.web.views.common import AuthedRequest, account_or_404, redirect_back

PER_PAGE = 50


@login_required
@require_GET
def quarantine(request: AuthedRequest) -> HttpResponse:
    readable = accounts_for(request.user, Right.READ)
    rows = Message.objects.filter(
        account__in=readable, parse_state=ParseState.QUARANTINED
    ).select_related("account")
    per_account = dict(
        rows.order_by().values("account_id").annotate(n=Count("id")).values_list("account_id", "n")
    )
    managed = set(accounts_for(request.user, Right.MANAGE).values_list("pk", flat=True))
    accounts = [
        {"account": account, "count": per_account[account.pk], "can_manage": account.pk in managed}
        for account in EmailAccount.objects.filter(pk__in=per_account).order_by("name")
    ]
    page = Paginator(rows.order_by(*NEWEST_FIRST), PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "web/quarantine.html", {"accounts": accounts, "page": page})


@login_required
@require_POST
def quarantine_reprocess(request: AuthedRequest, pk: int) -> HttpResponse:
    """Parse the account's quarantined messages again; back to where the button was."""
    account = account_or_404(request, pk, Right.MANAGE)
    report = do_reprocess_quarantined(account, actor=request.user)
    processed, remaining = report.processed, report.quarantined
    messages.success(
        request,
        ngettext(
            "%(n)d message parsed again; %(left)d still quarantined.",
            "%(n)d messages parsed again; %(left)d still quarantined.",
            processed,
        )
        % {"n": processed, "left": remaining},
    )
    return redirect_back(request, "web:quarantine")
