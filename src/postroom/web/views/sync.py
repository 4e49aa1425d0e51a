"""The sync status page (E2): every readable account's sync, "sync now" and the switch.

The figures are the API's (``sync_status_dict``), so the page, ``GET
/accounts/{id}/sync`` and ``postroom sync`` never disagree. The page lists
the accounts whose mail the user may read (as the API does for one account);
"sync now" needs that read right too, the on/off switch the manage right.

While an account is syncing, or a watcher is about to serve a "sync now",
the table re-renders itself every few seconds through htmx; once nothing is
moving the returned table carries no trigger and the polling stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import accounts_for
from postroom.api.messages import sync_status_dict
from postroom.incoming import leases
from postroom.incoming.actions import do_request_sync, do_set_sync_enabled
from postroom.incoming.models import SyncState, SyncStatus
from postroom.web.views.common import AuthedRequest, account_or_404


@dataclass(frozen=True)
class Notice:
    level: str  # a django.contrib.messages tag: success, warning, error
    text: str


def _pending(status: dict[str, Any]) -> bool:
    """A "sync now" that a running watcher has not started yet."""
    requested, started = status["sync_requested_at"], status["last_run_started_at"]
    return bool(status["watched"] and requested and (started is None or requested > started))


def _rows(request: AuthedRequest) -> list[dict[str, Any]]:
    # Shipped templates (disabled until completed) have no sync to show.
    accounts = list(
        accounts_for(request.user, Right.READ).filter(is_template=False).order_by("name")
    )
    # Read only: an account that never synced gets an unsaved status, not a row
    # written by a GET (status_for would create one).
    statuses = {s.account_id: s for s in SyncStatus.objects.filter(account__in=accounts)}
    managed = set(accounts_for(request.user, Right.MANAGE).values_list("pk", flat=True))
    rows = []
    for account in accounts:
        status = sync_status_dict(account, statuses.get(account.pk) or SyncStatus(account=account))
        rows.append(
            {
                "account": account,
                "status": status,
                "state_label": SyncState(status["state"]).label,
                "can_manage": account.pk in managed,
                "pending": _pending(status),
            }
        )
    return rows


def _render(
    request: AuthedRequest, *, notices: list[Notice] | None = None, partial: bool
) -> HttpResponse:
    rows = _rows(request)
    context = {
        "rows": rows,
        "notices": notices or [],
        "polling": any(r["status"]["state"] == SyncState.SYNCING or r["pending"] for r in rows),
    }
    template = "web/sync/_table.html" if partial else "web/sync/status.html"
    return render(request, template, context)


@login_required
@require_GET
def sync_status(request: AuthedRequest) -> HttpResponse:
    """The page; htmx (the polling table) gets the table alone."""
    return _render(request, partial=bool(request.htmx))


def _after_change(request: AuthedRequest, notices: list[Notice]) -> HttpResponse:
    if request.htmx:
        return _render(request, notices=notices, partial=True)
    for notice in notices:
        messages.add_message(request, getattr(messages, notice.level.upper()), notice.text)
    return redirect("web:sync_status")


def _sync_refused(account: EmailAccount) -> str | None:
    if not (account.incoming_enabled and account.sync_enabled):
        return _("Sync is switched off for this account; switch it on first.")
    if account.awaiting_password:
        return _("This account is awaiting its password; nothing can be synced.")
    return None


@login_required
@require_POST
def sync_now(request: AuthedRequest, pk: int) -> HttpResponse:
    """Ask the watcher holding the account for a pass now; the page shows it start."""
    account = account_or_404(request, pk, Right.READ)
    refused = _sync_refused(account)
    if refused:
        return _after_change(request, [Notice("error", refused)])
    do_request_sync(account)
    notices = [Notice("success", _("Sync of %(name)s requested.") % {"name": account.name})]
    if leases.current_holder(account.pk) is None:
        notices.append(
            Notice(
                "warning",
                _(
                    "No watcher is running for this account: the sync starts when "
                    "“postroom run” (or “postroom watch”) is running."
                ),
            )
        )
    return _after_change(request, notices)


@login_required
@require_POST
def sync_switch(request: AuthedRequest, pk: int) -> HttpResponse:
    """Switch the account's sync on or off (manage right)."""
    account = account_or_404(request, pk, Right.MANAGE)
    enabled = request.POST.get("enabled") == "on"
    do_set_sync_enabled(account, enabled, actor=request.user)
    text = (
        _("Sync of %(name)s switched on.") if enabled else _("Sync of %(name)s switched off.")
    ) % {"name": account.name}
    return _after_change(request, [Notice("success", text)])
