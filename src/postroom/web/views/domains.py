"""Domain pages (A1): every signed-in user may look, only domain managers change."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from postroom.accounts.actions import DomainInUse, do_delete_domain, do_save_domain
from postroom.accounts.forms import DomainForm
from postroom.accounts.models import EmailDomain
from postroom.accounts.permissions import can_manage_domains
from postroom.web.hints import domain_warnings
from postroom.web.views.common import AuthedRequest

# The inputs the live warnings read; hx-include selects them by this attribute.
_WARNING_FIELDS = (
    "incoming_protocol",
    "incoming_port",
    "incoming_security",
    "smtp_port",
    "smtp_security",
)


def _require_manager(request: AuthedRequest) -> None:
    if not can_manage_domains(request.user):
        raise PermissionDenied


@login_required
def domain_list(request: AuthedRequest) -> HttpResponse:
    domains = EmailDomain.objects.annotate(account_count=Count("accounts"))
    return render(
        request,
        "web/domains/list.html",
        {"domains": domains, "can_manage": can_manage_domains(request.user)},
    )


def _domain_form(request: AuthedRequest, domain: EmailDomain | None) -> HttpResponse:
    _require_manager(request)
    form = DomainForm(request.POST if request.method == "POST" else None, instance=domain)
    for name in _WARNING_FIELDS:
        form.fields[name].widget.attrs["data-hint"] = name
    if form.is_bound and form.is_valid():
        saved = do_save_domain(form.save(commit=False), actor=request.user)
        messages.success(request, _("Domain %(name)s saved.") % {"name": saved.name})
        # Warnings never block: the admin may know the server really is odd.
        for warning in form.warnings:
            messages.warning(request, warning)
        return redirect("web:domain_list")
    values = form.data if form.is_bound else {n: form[n].value() for n in _WARNING_FIELDS}
    return render(
        request,
        "web/domains/form.html",
        {"form": form, "domain": domain, "warnings": domain_warnings(values)},
    )


@login_required
def domain_create(request: AuthedRequest) -> HttpResponse:
    return _domain_form(request, None)


@login_required
def domain_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    return _domain_form(request, get_object_or_404(EmailDomain, pk=pk))


@login_required
def domain_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    _require_manager(request)
    domain = get_object_or_404(EmailDomain, pk=pk)
    if request.method == "POST":
        try:
            do_delete_domain(domain, actor=request.user)
        except DomainInUse as exc:
            messages.error(request, str(exc))
            return redirect("web:domain_list")
        messages.success(request, _("Domain %(name)s deleted.") % {"name": domain.name})
        return redirect("web:domain_list")
    return render(request, "web/domains/delete.html", {"domain": domain})


@login_required
@require_GET
def domain_warnings_view(request: AuthedRequest) -> HttpResponse:
    """htmx: warn about odd port/security pairs while the domain form is filled in."""
    return render(request, "web/_warnings.html", {"warnings": domain_warnings(request.GET)})
