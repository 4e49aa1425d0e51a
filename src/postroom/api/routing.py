"""``/accounts/{id}/routing`` and ``/accounts/{id}/rules``: what an account does with its mail.

Both need the *manage* right on the account, as the web pages do (404 when
the account is invisible, 403 when it is only visible). Settings are checked
by the web form (``RoutingSettingsForm``); rules by ``rules.validate_rule``,
whose errors name the part (``conditions[0].op``) as the 422's field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.db import transaction
from django.forms.models import model_to_dict
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema, Status

from postroom.accounts.models import EmailAccount
from postroom.api.common import Conflict, InvalidInput, NotFound, current_user, managed_account
from postroom.api.schemas import ErrorOut, FieldErrorsOut
from postroom.incoming.models import Message
from postroom.records.actions import (
    RecordError,
    RuleSpec,
    do_delete_rule,
    do_move_rule,
    do_save_routing_settings,
    do_save_rule,
    do_set_append_to,
    routing_settings,
)
from postroom.records.forms import RoutingSettingsForm
from postroom.records.models import AppendTo, RecordType, RouteOutcome, Rule
from postroom.records.queries import held_or_failed
from postroom.records.release import do_release_held, do_reroute_account
from postroom.records.rules import RuleInvalid

router = Router(tags=["routing"])

SETTINGS_FIELDS = list(RoutingSettingsForm.Meta.fields)


class AppendToItem(Schema):
    folder: str = Field("", description='IMAP folder; "" for every folder without its own')
    record_type: str = Field(description="Record type key")


class RoutingOut(Schema):
    append_to: list[AppendToItem]
    create_contacts: bool
    plus_address_replies: bool
    auto_reply_enabled: bool
    auto_reply_subject: str
    auto_reply_text: str
    auto_reply_starts_at: datetime | None
    auto_reply_ends_at: datetime | None
    auto_reply_interval_days: int
    unreplied_after_minutes: int | None
    unreplied_notify: list[str]
    loop_limit: int = Field(description="Most records from one sender within the window")
    loop_window_minutes: int


class RoutingIn(Schema):
    """Omitted fields keep their value; ``append_to``, when given, replaces every row."""

    append_to: list[AppendToItem] | None = None
    create_contacts: bool | None = None
    plus_address_replies: bool | None = None
    auto_reply_enabled: bool | None = None
    auto_reply_subject: str | None = None
    auto_reply_text: str | None = None
    auto_reply_starts_at: datetime | None = None
    auto_reply_ends_at: datetime | None = None
    auto_reply_interval_days: int | None = None
    unreplied_after_minutes: int | None = None
    unreplied_notify: list[str] | None = None
    loop_limit: int | None = None
    loop_window_minutes: int | None = None


class RuleOut(Schema):
    id: int
    position: int
    name: str
    enabled: bool
    match: str
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]


class RuleIn(Schema):
    name: str
    match: str = Field("all", description="all or any")
    enabled: bool = True
    conditions: list[dict[str, Any]] = Field(
        description='{"field", "op", "value", "header"}: see the rules documentation'
    )
    actions: list[dict[str, Any]] = Field(description='{"action", "value"}')


class MoveIn(Schema):
    direction: Literal["up", "down"]


def routing_dict(account: EmailAccount) -> dict[str, Any]:
    settings = routing_settings(account)
    data = {name: getattr(settings, name) for name in SETTINGS_FIELDS}
    data["append_to"] = [
        {"folder": row.folder, "record_type": row.record_type.key}
        for row in AppendTo.objects.filter(account=account).select_related("record_type")
    ]
    return data


def rule_dict(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "position": rule.position,
        "name": rule.name,
        "enabled": rule.enabled,
        "match": rule.match,
        "conditions": rule.conditions,
        "actions": rule.actions,
    }


@router.get(
    "/accounts/{account_id}/routing",
    response={200: RoutingOut, 403: ErrorOut, 404: ErrorOut},
    summary="The account's routing settings and append-to",
)
def get_routing(request: HttpRequest, account_id: int) -> dict[str, Any]:
    return routing_dict(managed_account(current_user(request), account_id))


@router.put(
    "/accounts/{account_id}/routing",
    response={200: RoutingOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="Change the account's routing settings and append-to",
)
def put_routing(request: HttpRequest, account_id: int, payload: RoutingIn) -> dict[str, Any]:
    user = current_user(request)
    account = managed_account(user, account_id)
    current = routing_settings(account)
    sent = payload.dict(exclude_unset=True)
    data = model_to_dict(current, fields=SETTINGS_FIELDS)
    data.update({k: v for k, v in sent.items() if k in SETTINGS_FIELDS})
    # A form's unticked box is a missing key: keep only the true ones.
    for name in ("create_contacts", "plus_address_replies", "auto_reply_enabled"):
        if not data.get(name):
            data.pop(name, None)
    form = RoutingSettingsForm(data, instance=current)
    if not form.is_valid():
        raise InvalidInput.from_form(form)
    rows: list[tuple[str, RecordType]] | None = None
    if payload.append_to is not None:
        rows = []
        errors: dict[str, list[str]] = {}
        for i, item in enumerate(payload.append_to):
            record_type = RecordType.objects.filter(key=item.record_type).first()
            if record_type is None:
                errors[f"append_to[{i}].record_type"] = [_("There is no record type by this key.")]
            elif item.folder.strip() in {f for f, _t in rows}:
                errors[f"append_to[{i}].folder"] = [_("Each folder may appear only once.")]
            else:
                rows.append((item.folder.strip(), record_type))
        if errors:
            raise InvalidInput(errors)
    values = {name: form.cleaned_data[name] for name in SETTINGS_FIELDS}
    try:
        with transaction.atomic():
            do_save_routing_settings(account, actor=user, **values)
            if rows is not None:
                wanted = dict(rows)
                for row in AppendTo.objects.filter(account=account):
                    if row.folder not in wanted:
                        do_set_append_to(account, None, folder=row.folder, actor=user)
                for folder, record_type in rows:
                    do_set_append_to(account, record_type, folder=folder, actor=user)
    except RecordError as exc:
        raise InvalidInput({exc.field: [str(exc)]}) from exc
    return routing_dict(account)


# -- rules ----------------------------------------------------------------------------------


def _rule(account: EmailAccount, rule_id: int) -> Rule:
    rule = Rule.objects.filter(account=account, pk=rule_id).first()
    if rule is None:
        raise NotFound(_("No rule with this id."))
    return rule


def _save(account: EmailAccount, payload: RuleIn, rule: Rule | None, actor: Any) -> Rule:
    spec = RuleSpec(
        name=payload.name,
        conditions=payload.conditions,
        actions=payload.actions,
        match=payload.match,
        enabled=payload.enabled,
    )
    try:
        return do_save_rule(account, spec, rule=rule, actor=actor)
    except (RuleInvalid, RecordError) as exc:
        raise InvalidInput({exc.field: [str(exc)]}) from exc


@router.get(
    "/accounts/{account_id}/rules",
    response={200: list[RuleOut], 403: ErrorOut, 404: ErrorOut},
    summary="The account's rules in the order they run",
)
def list_rules(request: HttpRequest, account_id: int) -> list[dict[str, Any]]:
    account = managed_account(current_user(request), account_id)
    return [rule_dict(r) for r in Rule.objects.filter(account=account)]


@router.post(
    "/accounts/{account_id}/rules",
    response={201: RuleOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="Add a rule at the end",
)
def create_rule(request: HttpRequest, account_id: int, payload: RuleIn) -> Status[dict[str, Any]]:
    user = current_user(request)
    account = managed_account(user, account_id)
    return Status(201, rule_dict(_save(account, payload, None, user)))


@router.put(
    "/accounts/{account_id}/rules/{rule_id}",
    response={200: RuleOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="Change a rule",
)
def update_rule(
    request: HttpRequest, account_id: int, rule_id: int, payload: RuleIn
) -> dict[str, Any]:
    user = current_user(request)
    account = managed_account(user, account_id)
    return rule_dict(_save(account, payload, _rule(account, rule_id), user))


@router.delete(
    "/accounts/{account_id}/rules/{rule_id}",
    response={204: None, 403: ErrorOut, 404: ErrorOut},
    summary="Delete a rule",
)
def delete_rule(request: HttpRequest, account_id: int, rule_id: int) -> Status[None]:
    user = current_user(request)
    account = managed_account(user, account_id)
    do_delete_rule(_rule(account, rule_id), actor=user)
    return Status(204, None)


@router.post(
    "/accounts/{account_id}/rules/{rule_id}/move",
    response={200: list[RuleOut], 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="Move a rule one place up or down; returns the rules in their new order",
)
def move_rule(
    request: HttpRequest, account_id: int, rule_id: int, payload: MoveIn
) -> list[dict[str, Any]]:
    user = current_user(request)
    account = managed_account(user, account_id)
    do_move_rule(_rule(account, rule_id), -1 if payload.direction == "up" else 1, actor=user)
    return [rule_dict(r) for r in Rule.objects.filter(account=account)]


# -- held mail and routing errors ------------------------------------------------------------


class HeldOut(Schema):
    message: int = Field(description="Id of the message (see /messages/{id})")
    outcome: str = Field(description="held (loop limit) or error (routing failed)")
    detail: str
    sender: str
    subject: str
    routed_at: datetime


class ReleasedOut(Schema):
    record: str | None = Field(description="Reference of the record the message is now on")


class RerouteIn(Schema):
    messages: list[int] | None = Field(
        None, description="Message ids; omitted: every message whose routing failed"
    )


class RerouteOut(Schema):
    routed: int
    created: int
    linked: int
    held: int
    failed: int


@router.get(
    "/accounts/{account_id}/routing/held",
    response={200: list[HeldOut], 403: ErrorOut, 404: ErrorOut},
    summary="Messages held by the loop limit or whose routing failed, newest first",
)
def list_held(request: HttpRequest, account_id: int) -> list[dict[str, Any]]:
    account = managed_account(current_user(request), account_id)
    rows = held_or_failed(account)[:500]
    return [
        {
            "message": row.message_id,
            "outcome": row.outcome,
            "detail": row.detail,
            "sender": row.sender,
            "subject": row.message.subject,
            "routed_at": row.routed_at,
        }
        for row in rows
    ]


@router.post(
    "/accounts/{account_id}/routing/held/{message_id}/release",
    response={200: ReleasedOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Release a held message: route it once more without the loop limit",
)
def release_held(request: HttpRequest, account_id: int, message_id: int) -> dict[str, Any]:
    user = current_user(request)
    account = managed_account(user, account_id)
    message = Message.objects.filter(account=account, pk=message_id).first()
    if message is None:
        raise NotFound(_("No message with this id."))
    try:
        record = do_release_held(message, actor=user)
    except RecordError as exc:
        raise Conflict(str(exc)) from exc
    return {"record": record.reference if record else None}


@router.post(
    "/accounts/{account_id}/routing/reroute",
    response={200: RerouteOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="Route failed (or held) messages again, then everything pending of the account",
)
def reroute(request: HttpRequest, account_id: int, payload: RerouteIn) -> dict[str, Any]:
    user = current_user(request)
    account = managed_account(user, account_id)
    if payload.messages is None:
        chosen = list(Message.objects.filter(account=account, routing__outcome=RouteOutcome.ERROR))
    else:
        chosen = list(Message.objects.filter(account=account, pk__in=payload.messages))
        missing = set(payload.messages) - {m.pk for m in chosen}
        if missing:
            raise InvalidInput(
                {"messages": [_("No message with the id %(id)s.") % {"id": min(missing)}]}
            )
    report = do_reroute_account(account, chosen, actor=user)
    return {
        "routed": report.routed,
        "created": report.created,
        "linked": report.linked,
        "held": report.held,
        "failed": report.failed,
    }
