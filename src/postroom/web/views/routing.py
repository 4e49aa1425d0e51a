"""Per-account routing: settings with append-to, the rules editor, held mail and errors.

Every page here needs the *manage* right on the account: 404 when the user
cannot see the account, 403 when they see it without managing it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from postroom.accounts.models import EmailAccount, Right
from postroom.incoming.models import Message
from postroom.records.actions import (
    RecordError,
    do_delete_rule,
    do_move_rule,
    do_save_routing_settings,
    do_save_rule,
    do_set_append_to,
    routing_settings,
)
from postroom.records.forms import (
    ACTION_ROWS,
    CONDITION_ROWS,
    RoutingSettingsForm,
    RuleForm,
    add_record_error,
)
from postroom.records.models import AppendTo, RecordType, RoutedMessage, RouteOutcome, Rule
from postroom.records.queries import held_or_failed
from postroom.records.release import do_release_held, do_reroute_account
from postroom.records.rules import RuleInvalid
from postroom.web.views.common import AuthedRequest, account_or_404

PER_PAGE = 50


def _folders(account: EmailAccount) -> list[str]:
    """ "" (every folder) and the folders the account syncs, plus any with a stored setting."""
    names = [str(f) for f in (account.folders or [])]
    for row in AppendTo.objects.filter(account=account):
        if row.folder and row.folder not in names:
            names.append(row.folder)
    return ["", *names]


def _append_rows(account: EmailAccount, data: Any = None) -> list[dict[str, Any]]:
    current = {
        row.folder: row.record_type.key
        for row in AppendTo.objects.filter(account=account).select_related("record_type")
    }
    rows = []
    for i, folder in enumerate(_folders(account)):
        chosen = data.get(f"append_{i}", "") if data is not None else current.get(folder, "")
        rows.append({"index": i, "folder": folder, "chosen": chosen, "error": ""})
    return rows


@login_required
def routing_settings_view(request: AuthedRequest, pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    current = routing_settings(account)
    types = list(RecordType.objects.filter(active=True))
    by_key = {t.key: t for t in RecordType.objects.all()}
    if request.method == "POST":
        form = RoutingSettingsForm(request.POST, instance=current)
        rows = _append_rows(account, request.POST)
        rows_ok = True
        for row in rows:
            if row["chosen"] and row["chosen"] not in by_key:
                row["error"] = _("There is no record type by this key.")
                rows_ok = False
        if form.is_valid() and rows_ok:
            values = {name: form.cleaned_data[name] for name in RoutingSettingsForm.Meta.fields}
            try:
                with transaction.atomic():
                    do_save_routing_settings(account, actor=request.user, **values)
                    stored = {
                        r.folder: r.record_type.key
                        for r in AppendTo.objects.filter(account=account).select_related(
                            "record_type"
                        )
                    }
                    for row in rows:
                        if stored.get(row["folder"], "") != row["chosen"]:
                            do_set_append_to(
                                account,
                                by_key.get(row["chosen"]),
                                folder=row["folder"],
                                actor=request.user,
                            )
            except RecordError as exc:
                add_record_error(form, exc)
            else:
                messages.success(request, _("Routing settings saved."))
                return redirect("web:account_routing", pk=account.pk)
        status = 422
    else:
        form = RoutingSettingsForm(instance=current)
        rows = _append_rows(account)
        status = 200
    return render(
        request,
        "web/routing/settings.html",
        {
            "account": account,
            "form": form,
            "append_rows": rows,
            "types": types,
            "rules": Rule.objects.filter(account=account),
            "held_count": RoutedMessage.objects.filter(
                message__account=account, outcome__in=[RouteOutcome.HELD, RouteOutcome.ERROR]
            ).count(),
        },
        status=status,
    )


# -- rules ---------------------------------------------------------------------------


def _rule_or_404(account: EmailAccount, rule_pk: int) -> Rule:
    rule = Rule.objects.filter(account=account, pk=rule_pk).first()
    if rule is None:
        raise Http404(_("No such rule."))
    return rule


@login_required
@require_GET
def rule_list(request: AuthedRequest, pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    return render(
        request,
        "web/routing/rules.html",
        {"account": account, "rules": list(Rule.objects.filter(account=account))},
    )


@login_required
def rule_edit(request: AuthedRequest, pk: int, rule_pk: int | None = None) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    rule = _rule_or_404(account, rule_pk) if rule_pk is not None else None
    rows = {
        "condition_rows": max(CONDITION_ROWS, len(rule.conditions) + 1) if rule else CONDITION_ROWS,
        "action_rows": max(ACTION_ROWS, len(rule.actions) + 1) if rule else ACTION_ROWS,
    }
    status = 200
    if request.method == "POST":
        form = RuleForm(request.POST, **rows)
        if form.is_valid():
            try:
                saved = do_save_rule(account, form.spec(), rule=rule, actor=request.user)
            except (RuleInvalid, RecordError) as exc:
                form.add_rule_error(exc)
            else:
                messages.success(request, _("Rule %(name)s saved.") % {"name": saved.name})
                return redirect("web:account_rules", pk=account.pk)
        status = 422
    elif rule is not None:
        form = RuleForm(initial=RuleForm.initial_for(rule), **rows)
    else:
        form = RuleForm(initial={"match": "all", "enabled": True}, **rows)
    return render(
        request,
        "web/routing/rule_form.html",
        {"account": account, "rule": rule, "form": form},
        status=status,
    )


@login_required
@require_POST
def rule_delete(request: AuthedRequest, pk: int, rule_pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    rule = _rule_or_404(account, rule_pk)
    name = rule.name
    do_delete_rule(rule, actor=request.user)
    messages.success(request, _("Rule %(name)s deleted.") % {"name": name})
    return redirect("web:account_rules", pk=account.pk)


@login_required
@require_POST
def rule_move(request: AuthedRequest, pk: int, rule_pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    rule = _rule_or_404(account, rule_pk)
    offset = -1 if request.POST.get("direction") == "up" else 1
    do_move_rule(rule, offset, actor=request.user)
    return redirect("web:account_rules", pk=account.pk)


# -- held mail and routing errors ------------------------------------------------------


@login_required
@require_GET
def held_list(request: AuthedRequest, pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    rows = held_or_failed(account)
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    failed = rows.filter(outcome=RouteOutcome.ERROR).exists()
    return render(
        request, "web/routing/held.html", {"account": account, "page": page, "failed": failed}
    )


def _held_message(account: EmailAccount, request: AuthedRequest) -> Message:
    value = request.POST.get("message", "")
    message = (
        Message.objects.filter(account=account, pk=int(value)).first() if value.isdigit() else None
    )
    if message is None:
        raise Http404(_("No such message."))
    return message


@login_required
@require_POST
def held_release(request: AuthedRequest, pk: int) -> HttpResponse:
    account = account_or_404(request, pk, Right.MANAGE)
    message = _held_message(account, request)
    try:
        record = do_release_held(message, actor=request.user)
    except RecordError as exc:
        messages.error(request, str(exc))
    else:
        if record is not None:
            messages.success(
                request,
                _("Released; the message is on %(ref)s.") % {"ref": record.reference},
            )
        else:
            messages.success(request, _("Released; it did not create a record."))
    return redirect("web:account_held", pk=account.pk)


@login_required
@require_POST
def held_reroute(request: AuthedRequest, pk: int) -> HttpResponse:
    """Route again one failed message (``message``) or every failed one of the account."""
    account = account_or_404(request, pk, Right.MANAGE)
    if request.POST.get("message"):
        chosen = [_held_message(account, request)]
    else:
        chosen = list(Message.objects.filter(account=account, routing__outcome=RouteOutcome.ERROR))
    report = do_reroute_account(account, chosen, actor=request.user)
    messages.success(
        request,
        _("Routed %(routed)d message(s) again: %(created)d record(s) created, %(failed)d failed.")
        % {"routed": report.routed, "created": report.created, "failed": report.failed},
    )
    return redirect("web:account_held", pk=account.pk)


@login_required
@require_GET
def held_redirect(request: AuthedRequest) -> HttpResponse:
    """``/records/held/?account=N``, the address held-mail notifications link to."""
    value = request.GET.get("account", "")
    if not value.isdigit():
        raise Http404(_("No such account."))
    account = account_or_404(request, int(value), Right.MANAGE)
    return redirect("web:account_held", pk=account.pk)
