"""Home, API tokens, site settings (A16) and the event log."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from postroom.accounts.permissions import visible_accounts
from postroom.core.actions import do_create_api_token, do_revoke_api_token, do_update_site_settings
from postroom.core.models import ApiToken, Event, SiteSettings
from postroom.web.forms import EventFilterForm, SiteSettingsForm, TokenForm
from postroom.web.views.common import AuthedRequest

EVENT_LIMIT = 200


@login_required
def home(request: AuthedRequest) -> HttpResponse:
    return redirect("web:account_list")


@never_cache  # the page that shows a new token must not stay in any cache
@login_required
def tokens(request: AuthedRequest) -> HttpResponse:
    form = TokenForm(request.POST if request.method == "POST" else None)
    raw: str | None = None
    if request.method == "POST" and form.is_valid():
        _token, raw = do_create_api_token(request.user, form.cleaned_data["name"])
        # Rendered directly, not redirected: the raw token exists only in this response.
        form = TokenForm()
    return render(
        request,
        "web/tokens.html",
        {"form": form, "raw": raw, "tokens": ApiToken.objects.filter(user=request.user)},
    )


@login_required
@require_POST
def token_revoke(request: AuthedRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    do_revoke_api_token(token)
    messages.success(request, _("Token %(name)s revoked.") % {"name": token.name})
    return redirect("web:tokens")


@login_required
def site_settings(request: AuthedRequest) -> HttpResponse:
    if not request.user.is_superuser:
        raise PermissionDenied
    site = SiteSettings.load()
    form = SiteSettingsForm(
        request.POST if request.method == "POST" else None,
        initial={"allow_pop3_for_new_accounts": site.allow_pop3_for_new_accounts},
    )
    if request.method == "POST" and form.is_valid():
        do_update_site_settings(
            allow_pop3_for_new_accounts=form.cleaned_data["allow_pop3_for_new_accounts"]
        )
        messages.success(request, _("Settings saved."))
        return redirect("web:site_settings")
    return render(request, "web/settings.html", {"form": form})


@login_required
def events(request: AuthedRequest) -> HttpResponse:
    """Recent events (E1): all for superusers, else only those of accounts the user can see.

    Filtered by account, kind (prefix: "sync" finds every sync.* event), level
    and text, on top of that permission filter, never instead of it.
    """
    accounts = visible_accounts(request.user)
    rows = Event.objects.select_related("account")
    if not request.user.is_superuser:
        rows = rows.filter(account__in=accounts)
    kinds = rows.order_by("kind").values_list("kind", flat=True).distinct()
    filters = EventFilterForm(request.GET or None, accounts=accounts)
    if filters.is_bound and filters.is_valid():
        data = filters.cleaned_data
        if data["account"] is not None:
            rows = rows.filter(account=data["account"])
        if data["kind"]:
            rows = rows.filter(kind__startswith=data["kind"])
        if data["level"]:
            rows = rows.filter(level=data["level"])
        if data["q"]:
            rows = rows.filter(message__icontains=data["q"])
    elif filters.is_bound:
        rows = rows.none()  # an invalid filter (someone else's account) matches nothing
    return render(
        request,
        "web/events.html",
        {"events": rows[:EVENT_LIMIT], "filters": filters, "kinds": list(kinds)},
    )
