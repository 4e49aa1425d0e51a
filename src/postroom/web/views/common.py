"""Helpers shared by the web views: typed requests and permission-checked lookups."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.middleware import HtmxDetails

from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import has_right, visible_accounts


class AuthedRequest(HttpRequest):
    """What a ``login_required`` view receives (for the type checker)."""

    user: User
    htmx: HtmxDetails


def account_or_404(request: AuthedRequest, pk: int, right: Right | None = None) -> EmailAccount:
    """The account if the user may see it, else 404; 403 when visible but ``right`` is missing.

    Looking up inside ``visible_accounts`` (not ``EmailAccount.objects``) is
    what keeps other people's accounts indistinguishable from missing ones.
    """
    account = get_object_or_404(
        visible_accounts(request.user).select_related("domain", "owner"), pk=pk
    )
    if right is not None and not has_right(request.user, account, right):
        raise PermissionDenied
    return account


def redirect_back(request: HttpRequest, fallback: str, *args: object) -> HttpResponse:
    """To the posted ``next`` when it is on this site, else to the ``fallback`` URL name."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(fallback, *args)
