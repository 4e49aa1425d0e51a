"""Signing in and out, and A7: asking owners for the passwords of accounts made for them."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, LogoutView
from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _

from postroom.accounts.actions import AccountCheckFailed, ConnectionReport, do_save_account
from postroom.accounts.forms import AccountForm
from postroom.accounts.models import EmailAccount
from postroom.web.forms import AwaitingPasswordForm, account_form_data
from postroom.web.views.common import AuthedRequest


def awaiting_accounts(user: Any) -> QuerySet[EmailAccount]:
    """Accounts made for ``user`` that still wait for their password (A7)."""
    if not user.is_authenticated:
        return EmailAccount.objects.none()
    return EmailAccount.objects.filter(owner=user, awaiting_password=True, is_template=False)


class SignInView(LoginView):
    template_name = "web/login.html"
    redirect_authenticated_user = True

    def get_success_url(self) -> str:
        url = super().get_success_url()
        if awaiting_accounts(self.request.user).exists():
            return reverse("web:passwords") + "?" + urlencode({"next": url})
        return url


class SignOutView(LogoutView):
    """POST only (Django refuses GET logouts): a link cannot sign anyone out."""


def _safe_next(request: AuthedRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("web:home")


@login_required
def awaiting_passwords(request: AuthedRequest) -> HttpResponse:
    """One small form per waiting account; each save runs the full check (A5)."""
    accounts = list(awaiting_accounts(request.user).select_related("domain"))
    next_url = _safe_next(request)
    if not accounts:
        return HttpResponseRedirect(next_url)
    forms = {a.pk: AwaitingPasswordForm(initial={"account": a.pk}) for a in accounts}
    reports: dict[int, ConnectionReport] = {}
    errors: dict[int, list[str]] = {}

    if request.method == "POST":
        posted = AwaitingPasswordForm(request.POST)
        target = next((a for a in accounts if str(a.pk) == request.POST.get("account")), None)
        if target is not None:
            forms[target.pk] = posted
            if posted.is_valid():
                data = account_form_data(target) | {
                    "password": posted.cleaned_data["password"],
                    "smtp_password": posted.cleaned_data["smtp_password"],
                    # The password is being given now: the form must insist on it.
                    "awaiting_password": False,
                    "skip_check": False,
                }
                form = AccountForm(data, instance=target)
                if form.is_valid():
                    password, smtp_password = form.passwords()
                    try:
                        do_save_account(
                            form.save(commit=False),
                            actor=request.user,
                            password=password,
                            smtp_password=smtp_password,
                        )
                    except AccountCheckFailed as exc:
                        reports[target.pk] = exc.report
                    else:
                        messages.success(
                            request,
                            _("The password for %(email)s was saved.") % {"email": target.email},
                        )
                        return redirect(
                            reverse("web:passwords") + "?" + urlencode({"next": next_url})
                        )
                else:
                    # Problems with the account's other settings: the owner cannot fix
                    # them here, but must see them rather than a silent refusal.
                    errors[target.pk] = [str(e) for errs in form.errors.values() for e in errs]

    items = [
        {"account": a, "form": forms[a.pk], "report": reports.get(a.pk), "errors": errors.get(a.pk)}
        for a in accounts
    ]
    return render(request, "web/passwords.html", {"items": items, "next": next_url})
