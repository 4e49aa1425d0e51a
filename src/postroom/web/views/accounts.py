"""Account pages: list, create, edit, detail, test connection, delete, sharing (A1–A15)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from postroom.accounts.actions import (
    AccountCheckFailed,
    ConnectionReport,
    do_delete_account,
    do_save_account,
    do_share_account,
    do_test_account,
    do_unshare_account,
)
from postroom.accounts.forms import AccountForm
from postroom.accounts.models import AccountAccess, EmailAccount, Right
from postroom.accounts.permissions import can_add_accounts, has_right, visible_accounts
from postroom.accounts.resolve import resolve_servers
from postroom.api.filtering import filter_accounts
from postroom.core.models import Event
from postroom.web.forms import AccountFilterForm, ShareForm
from postroom.web.hints import (
    HINT_FIELDS,
    SERVER_FIELDS,
    account_warnings,
    apply_inherited,
    inherited_from,
    mark_hint_fields,
)
from postroom.web.views.common import AuthedRequest, account_or_404


@dataclass(frozen=True)
class Section:
    key: str
    title: Any
    fields: tuple[str, ...]


# The account form in the order a person fills it in.
SECTIONS = (
    Section("identity", gettext_lazy("Identity"), ("name", "email", "domain", "preset", "owner")),
    Section(
        "incoming",
        gettext_lazy("Incoming"),
        (
            "incoming_enabled",
            "incoming_protocol",
            "incoming_host",
            "incoming_port",
            "incoming_security",
            "folders",
            "login",
            "password",
        ),
    ),
    Section(
        "sync",
        gettext_lazy("Sync"),
        (
            "sync_option",
            "initial_sync_count",
            "poll_interval",
            "max_attachment_size",
            "pop3_delete_after_retrieval",
        ),
    ),
    Section(
        "outgoing",
        gettext_lazy("Outgoing"),
        (
            "outgoing_enabled",
            "smtp_host",
            "smtp_port",
            "smtp_security",
            "smtp_auth",
            "smtp_login",
            "smtp_password",
            "outgoing_transport",
            "charset",
            "bcc_addresses",
            "copy_to_sent",
            "sent_folder",
            "verp_return_path",
            "rate_limit_per_minute",
            "rate_limit_per_hour",
            "rate_limit_per_day",
            "max_queue_age",
        ),
    ),
    Section(
        "security",
        gettext_lazy("Security"),
        (
            "awaiting_password",
            "ascii_password",
            "verify_cert",
            "confirm_no_verify",
            "ca_cert",
            "allow_plaintext_login",
        ),
    ),
    Section(
        "sender",
        gettext_lazy("Sender"),
        ("sender_name", "always_use_account_name_as_sender", "always_use_account_email_as_sender"),
    ),
    Section(
        "defaults",
        gettext_lazy("Defaults"),
        ("default_incoming", "default_outgoing", "use_for_integration"),
    ),
)


# -- list ---------------------------------------------------------------------


@login_required
def account_list(request: AuthedRequest) -> HttpResponse:
    filters = AccountFilterForm(request.GET or None)
    accounts = visible_accounts(request.user)
    if filters.is_bound and filters.is_valid():
        data = filters.cleaned_data
        integration = {"yes": True, "no": False}.get(data.get("integration") or "")
        rows = filter_accounts(
            accounts,
            name=data.get("name") or None,
            owner=data.get("owner") or None,
            email=data.get("address") or None,
            host=data.get("server") or None,
            login=data.get("login") or None,
            port=data.get("port"),
            protocol=data.get("protocol") or None,
            integration=integration,
        )
    elif filters.is_bound:
        rows = []  # an invalid filter (port 99999) matches nothing rather than everything
    else:
        rows = list(accounts.select_related("domain", "owner"))
    return render(
        request,
        "web/accounts/list.html",
        {
            "filters": filters,
            "rows": [(a, resolve_servers(a)) for a in rows],
            "can_add": can_add_accounts(request.user),
        },
    )


# -- create / edit ------------------------------------------------------------


def _account_form(
    request: AuthedRequest, *, instance: EmailAccount | None = None, data: Any = None
) -> AccountForm:
    user = request.user
    initial = {} if instance is not None else {"owner": user.pk}
    form = AccountForm(data, instance=instance, initial=initial)
    if not user.is_superuser:
        # Only an admin gives accounts away; others own what they create (or keep the owner).
        owners = {user.pk} | ({instance.owner_id} if instance and instance.owner_id else set())
        owner = form.fields["owner"]
        owner.queryset = User.objects.filter(pk__in=owners)  # type: ignore[attr-defined]
        # An unowned account (made by an admin) may stay unowned when a manager edits it.
        owner.required = instance is None or instance.owner_id is not None
    form.fields["domain"].empty_label = _("— from the address —")  # type: ignore[attr-defined]
    if instance is not None and instance.has_password:
        form.fields["password"].help_text = _("A password is set. Leave empty to keep it.")
    if instance is not None and instance.smtp_password_encrypted:
        form.fields["smtp_password"].help_text = _(
            "A separate SMTP password is set. Leave empty to keep it."
        )
    mark_hint_fields(form)
    if data is not None:
        source: Any = data
    elif instance is not None:
        source = {"email": instance.email, "domain": instance.domain_id, "preset": instance.preset}
    else:
        source = {}
    apply_inherited(form, inherited_from(source))
    return form


def _render_form(
    request: AuthedRequest,
    form: AccountForm,
    *,
    account: EmailAccount | None,
    report: ConnectionReport | None = None,
    status: int = 200,
) -> HttpResponse:
    # Raw values, bound or not: the hints must also show when other fields have errors.
    values: Any = form.data if form.is_bound else {name: form[name].value() for name in HINT_FIELDS}
    return render(
        request,
        "web/accounts/form.html",
        {
            "form": form,
            "account": account,
            "sections": [(s, [form[name] for name in s.fields]) for s in SECTIONS],
            "inherited": inherited_from(values),
            "warnings": account_warnings(values),
            "report": report,
        },
        status=status,
    )


def _save(request: AuthedRequest, form: AccountForm, account: EmailAccount | None) -> HttpResponse:
    password, smtp_password = form.passwords()
    try:
        saved = do_save_account(
            form.save(commit=False),
            actor=request.user,
            password=password,
            smtp_password=smtp_password,
            check=not form.cleaned_data.get("skip_check"),
        )
    except AccountCheckFailed as exc:
        # A5: nothing was saved; show each side's diagnosis next to the same input.
        return _render_form(request, form, account=account, report=exc.report)
    messages.success(request, _("Account %(name)s saved.") % {"name": saved.name})
    for warning in form.warnings:
        messages.warning(request, warning)
    return redirect("web:account_detail", pk=saved.pk)


@login_required
def account_create(request: AuthedRequest) -> HttpResponse:
    if not can_add_accounts(request.user):
        raise PermissionDenied
    form = _account_form(request, data=request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        return _save(request, form, None)
    return _render_form(request, form, account=None)


@login_required
def account_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    form = _account_form(
        request, instance=account, data=request.POST if request.method == "POST" else None
    )
    if form.is_bound and form.is_valid():
        return _save(request, form, account)
    return _render_form(request, form, account=account)


@login_required
@require_GET
def account_form_servers(request: AuthedRequest) -> HttpResponse:
    """htmx: after the preset, domain or address changed, show what the account inherits.

    Returns the summary plus the server rows re-rendered out of band, keeping
    what the user typed but with the new inherited values as placeholders.
    """
    values = {name: request.GET.get(name, "") for name in SERVER_FIELDS}
    form = _account_form(request)
    form.initial.update(values)
    inherited = inherited_from(request.GET)
    apply_inherited(form, inherited)
    return render(
        request,
        "web/accounts/_servers.html",
        {"inherited": inherited, "rows": [form[name] for name in SERVER_FIELDS]},
    )


@login_required
@require_GET
def account_form_warnings(request: AuthedRequest) -> HttpResponse:
    """htmx: port/security combinations that are almost always wrong, before anything is tried."""
    return render(request, "web/_warnings.html", {"warnings": account_warnings(request.GET)})


# -- detail, test, delete -----------------------------------------------------


def _detail(
    request: AuthedRequest, account: EmailAccount, report: ConnectionReport | None = None
) -> HttpResponse:
    return render(
        request,
        "web/accounts/detail.html",
        {
            "account": account,
            "servers": resolve_servers(account),
            "can_manage": has_right(request.user, account, Right.MANAGE),
            "report": report,
            "events": Event.objects.filter(account=account)[:10],
        },
    )


@login_required
def account_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    return _detail(request, account_or_404(request, pk))


@login_required
@require_POST
def account_test(request: AuthedRequest, pk: int) -> HttpResponse:
    """A14: try both sides now. htmx gets the result partial, a plain POST the whole page."""
    account = account_or_404(request, pk)
    report = do_test_account(account, actor=request.user)
    if request.htmx:
        return render(request, "web/accounts/_report.html", {"report": report})
    return _detail(request, account, report)


@login_required
def account_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    if request.method == "POST":
        do_delete_account(account, actor=request.user)
        messages.success(request, _("Account %(name)s deleted.") % {"name": account.name})
        return redirect("web:account_list")
    return render(request, "web/accounts/delete.html", {"account": account})


# -- sharing (A11) ------------------------------------------------------------


@login_required
def account_sharing(request: AuthedRequest, pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    form = ShareForm(request.POST if request.method == "POST" else None, account=account)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        do_share_account(
            account,
            actor=request.user,
            user=data["user"],
            group=data["group"],
            can_read=data["can_read"],
            can_send=data["can_send"],
            can_manage=data["can_manage"],
        )
        messages.success(request, _("Access saved."))
        return redirect("web:account_sharing", pk=account.pk)
    access = AccountAccess.objects.filter(account=account).select_related("user", "group")
    return render(
        request,
        "web/accounts/sharing.html",
        {"account": account, "form": form, "access": access},
    )


@login_required
@require_POST
def account_unshare(request: AuthedRequest, pk: int, access_pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    access = get_object_or_404(AccountAccess, pk=access_pk, account=account)
    do_unshare_account(access, actor=request.user)
    messages.success(request, _("Access removed."))
    return redirect("web:account_sharing", pk=account.pk)
