"""Validation of records, record types, routing settings and rules, shared by the web UI and the API.

The forms check the input's shape and look names up; the rules about values
(statuses of a type, prefixes, rule conditions) stay in the ``do_*`` actions
and ``rules.validate_rule``, whose :class:`RecordError` / ``RuleInvalid``
callers turn into errors on the named field with :func:`add_record_error`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from postroom.accounts.forms import AddressListField
from postroom.accounts.models import EmailAccount
from postroom.records.actions import RecordError, RuleSpec, do_save_contact
from postroom.records.models import Contact, RecordType, RoutingSettings, RuleMatch
from postroom.records.rules import ACTIONS, ACTIONS_WITH_VALUE, FIELDS, TEXT_OPS, RuleInvalid


def add_record_error(form: forms.BaseForm, exc: RecordError | RuleInvalid) -> None:
    """Show an action's refusal next to its field (on the whole form when it has no such field)."""
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, str(exc))


class LinesField(forms.CharField):
    """Texts, one per line in the web form; a JSON list in the API."""

    widget = forms.Textarea(attrs={"rows": 4})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):
            items = [str(v) for v in value]
        else:
            items = (super().to_python(value) or "").splitlines()
        return [item.strip() for item in items if item.strip()]

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(value)
        return value


class RecordTypeChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.display_name)


class UserChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.get_username())


class AccountChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} <{obj.email}>"


def active_users() -> QuerySet[User]:
    return User.objects.filter(is_active=True).order_by("username")


def _owner_field() -> UserChoiceField:
    return UserChoiceField(
        queryset=active_users(),
        to_field_name="username",
        required=False,
        label=gettext_lazy("Owner"),
        empty_label=gettext_lazy("— nobody —"),
        error_messages={"invalid_choice": gettext_lazy("There is no active user by this name.")},
    )


def _contact_field() -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=320,
        label=gettext_lazy("Contact address"),
        validators=[validate_email],
        widget=forms.EmailInput(attrs={"dir": "ltr"}),
    )


def contact_for(email: str, name: str = "", account: EmailAccount | None = None) -> Contact | None:
    """The contact for a typed address (created when new); None for an empty one."""
    if not email.strip():
        return None
    return do_save_contact(email, name, account=account, update_name=bool(name.strip()))


class RecordForm(forms.Form):
    """A new record (web "new record" form and ``POST /records``)."""

    type = RecordTypeChoiceField(
        queryset=RecordType.objects.filter(active=True),
        to_field_name="key",
        label=gettext_lazy("Type"),
        error_messages={"invalid_choice": gettext_lazy("There is no record type by this key.")},
    )
    title = forms.CharField(max_length=2000, label=gettext_lazy("Title"))
    status = forms.CharField(
        required=False,
        max_length=60,
        label=gettext_lazy("Status"),
        help_text=gettext_lazy("Empty: the type's first status."),
    )
    owner = _owner_field()
    contact = _contact_field()
    contact_name = forms.CharField(
        required=False, max_length=300, label=gettext_lazy("Contact name")
    )
    account = AccountChoiceField(
        queryset=EmailAccount.objects.none(),
        required=False,
        label=gettext_lazy("Account"),
        empty_label=gettext_lazy("— none —"),
        help_text=gettext_lazy("Replies to the record are sent from this account."),
        error_messages={
            "invalid_choice": gettext_lazy(
                "You cannot send from this account, or it does not exist."
            )
        },
    )

    def __init__(self, *args: Any, accounts: QuerySet[EmailAccount], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["account"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = accounts.order_by("name")

    def clean_fields(self) -> dict[str, Any]:
        value = self.cleaned_data.get("fields")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValidationError(_("Fields must be a JSON object."))
        return value


# Named like Form.fields, so added after the class (the declaration would shadow it for mypy).
RecordForm.base_fields["fields"] = forms.JSONField(
    required=False, label=gettext_lazy("Fields (JSON object)")
)


class RecordEditForm(forms.Form):
    """Title, owner and contact of an existing record (status has its own form)."""

    title = forms.CharField(max_length=2000, label=gettext_lazy("Title"))
    owner = _owner_field()
    contact = _contact_field()


class StatusForm(forms.Form):
    status = forms.ChoiceField(label=gettext_lazy("Status"))

    def __init__(self, *args: Any, record_type: RecordType, **kwargs: Any) -> None:
        from postroom.records.labels import status_label

        super().__init__(*args, **kwargs)
        field = self.fields["status"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(s, status_label(s)) for s in record_type.statuses]


class ContactForm(forms.Form):
    email = forms.CharField(
        max_length=320,
        label=gettext_lazy("Email address"),
        validators=[validate_email],
        widget=forms.EmailInput(attrs={"dir": "ltr"}),
    )
    name = forms.CharField(required=False, max_length=300, label=gettext_lazy("Name"))


class RecordTypeForm(forms.Form):
    name = forms.CharField(max_length=100, label=gettext_lazy("Name"))
    statuses = LinesField(
        label=gettext_lazy("Statuses"),
        help_text=gettext_lazy("One per line; the first is the status of new records."),
    )
    closed_statuses = LinesField(
        required=False,
        label=gettext_lazy("Closed statuses"),
        help_text=gettext_lazy("One per line, each one of the statuses above."),
    )
    active = forms.BooleanField(required=False, initial=True, label=gettext_lazy("Active"))


# Named like Form.prefix, so added after the class; keeps the form's own field order.
RecordTypeForm.base_fields = {
    "name": RecordTypeForm.base_fields["name"],
    "prefix": forms.CharField(
        max_length=12,
        label=gettext_lazy("Reference prefix"),
        help_text=gettext_lazy("Upper-case letters, as in ISSUE-42."),
    ),
    **{k: v for k, v in RecordTypeForm.base_fields.items() if k != "name"},
}


class RoutingSettingsForm(forms.ModelForm):  # type: ignore[type-arg]
    """Everything of an account's routing except append-to and rules."""

    unreplied_notify = AddressListField(
        required=False,
        label=gettext_lazy("Addresses to notify when unreplied"),
        help_text=gettext_lazy("One per line."),
        widget=forms.Textarea(attrs={"rows": 3, "dir": "ltr"}),
    )

    class Meta:
        model = RoutingSettings
        fields = [
            "create_contacts",
            "plus_address_replies",
            "auto_reply_enabled",
            "auto_reply_subject",
            "auto_reply_text",
            "auto_reply_starts_at",
            "auto_reply_ends_at",
            "auto_reply_interval_days",
            "unreplied_after_minutes",
            "unreplied_notify",
            "loop_limit",
            "loop_window_minutes",
        ]
        widgets = {
            "auto_reply_starts_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
            "auto_reply_ends_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            ),
            "auto_reply_text": forms.Textarea(attrs={"rows": 5}),
        }

    def clean_loop_limit(self) -> int:
        value = self.cleaned_data["loop_limit"]
        if value < 1:
            raise ValidationError(_("Allow at least one record per window."))
        return int(value)

    def clean_loop_window_minutes(self) -> int:
        value = self.cleaned_data["loop_window_minutes"]
        if value < 1:
            raise ValidationError(_("The window is at least one minute."))
        return int(value)

    def clean_auto_reply_interval_days(self) -> int:
        value = self.cleaned_data["auto_reply_interval_days"]
        if value < 1:
            raise ValidationError(_("Auto-reply at most once a day per sender."))
        return int(value)


# -- rules ------------------------------------------------------------------------

CONDITION_ROWS = 4
ACTION_ROWS = 3


def _field_choices() -> list[tuple[str, Any]]:
    labels = {
        "from": gettext_lazy("Sender"),
        "to": gettext_lazy("To"),
        "cc": gettext_lazy("Cc"),
        "recipients": gettext_lazy("To or Cc"),
        "subject": gettext_lazy("Subject"),
        "header": gettext_lazy("Header"),
        "attachment_name": gettext_lazy("Attachment name"),
        "has_attachments": gettext_lazy("Has attachments"),
    }
    return [("", "—")] + [(f, labels.get(f, f)) for f in FIELDS]


def _op_choices() -> list[tuple[str, Any]]:
    labels = {
        "contains": gettext_lazy("contains"),
        "not_contains": gettext_lazy("does not contain"),
        "equals": gettext_lazy("is"),
        "starts_with": gettext_lazy("starts with"),
        "ends_with": gettext_lazy("ends with"),
        "exists": gettext_lazy("exists"),
        "not_exists": gettext_lazy("does not exist"),
        "yes": gettext_lazy("yes (attachments)"),
        "no": gettext_lazy("no (attachments)"),
    }
    return [(o, labels[o]) for o in (*TEXT_OPS, "yes", "no")]


def _action_choices() -> list[tuple[str, Any]]:
    labels = {
        "skip": gettext_lazy("Skip: no record, no auto-reply"),
        "label": gettext_lazy("Add a label"),
        "set_record_type": gettext_lazy("Set the record type (key)"),
        "assign_owner": gettext_lazy("Assign the owner (user name)"),
        "mark_read": gettext_lazy("Mark read"),
        "move_to_folder": gettext_lazy("Move to folder"),
        "stop": gettext_lazy("Stop: no later rule runs"),
    }
    assert set(labels) == set(ACTIONS)
    return [("", "—")] + [(a, labels[a]) for a in ACTIONS]


class RuleForm(forms.Form):
    """A rule as rows: ``cond_N_field/op/header/value`` and ``act_N_action/value``.

    Empty rows are left out; ``validate_rule``'s field names
    (``conditions[1].value``) are mapped back to the row they came from.
    """

    name = forms.CharField(max_length=200, label=gettext_lazy("Name"))
    match = forms.ChoiceField(choices=RuleMatch.choices, label=gettext_lazy("Match"))
    enabled = forms.BooleanField(required=False, initial=True, label=gettext_lazy("Enabled"))

    def __init__(
        self,
        *args: Any,
        condition_rows: int = CONDITION_ROWS,
        action_rows: int = ACTION_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.condition_rows = condition_rows
        self.action_rows = action_rows
        for i in range(condition_rows):
            self.fields[f"cond_{i}_field"] = forms.ChoiceField(
                choices=_field_choices(), required=False, label=gettext_lazy("Field")
            )
            self.fields[f"cond_{i}_op"] = forms.ChoiceField(
                choices=_op_choices(), required=False, label=gettext_lazy("Comparison")
            )
            self.fields[f"cond_{i}_header"] = forms.CharField(
                required=False, max_length=200, label=gettext_lazy("Header name")
            )
            self.fields[f"cond_{i}_value"] = forms.CharField(
                required=False, max_length=500, label=gettext_lazy("Text")
            )
        for i in range(action_rows):
            self.fields[f"act_{i}_action"] = forms.ChoiceField(
                choices=_action_choices(), required=False, label=gettext_lazy("Action")
            )
            self.fields[f"act_{i}_value"] = forms.CharField(
                required=False, max_length=500, label=gettext_lazy("Value")
            )
        self._condition_index: list[int] = []
        self._action_index: list[int] = []

    @staticmethod
    def initial_for(rule: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"name": rule.name, "match": rule.match, "enabled": rule.enabled}
        for i, cond in enumerate(rule.conditions):
            for key in ("field", "op", "header", "value"):
                data[f"cond_{i}_{key}"] = cond.get(key, "")
        for i, act in enumerate(rule.actions):
            data[f"act_{i}_action"] = act.get("action", "")
            data[f"act_{i}_value"] = act.get("value", "")
        return data

    def condition_rows_bound(self) -> list[dict[str, forms.BoundField]]:
        return [
            {k: self[f"cond_{i}_{k}"] for k in ("field", "op", "header", "value")}
            for i in range(self.condition_rows)
        ]

    def action_rows_bound(self) -> list[dict[str, forms.BoundField]]:
        return [
            {k: self[f"act_{i}_{k}"] for k in ("action", "value")} for i in range(self.action_rows)
        ]

    def spec(self) -> RuleSpec:
        """The rule as data (call after ``is_valid``)."""
        data = self.cleaned_data
        conditions: list[dict[str, Any]] = []
        self._condition_index = []
        for i in range(self.condition_rows):
            name = data.get(f"cond_{i}_field") or ""
            if not name:
                continue
            cond: dict[str, Any] = {"field": name, "op": data.get(f"cond_{i}_op") or ""}
            if name == "header":
                cond["header"] = data.get(f"cond_{i}_header") or ""
            if data.get(f"cond_{i}_value"):
                cond["value"] = data[f"cond_{i}_value"]
            conditions.append(cond)
            self._condition_index.append(i)
        actions: list[dict[str, Any]] = []
        self._action_index = []
        for i in range(self.action_rows):
            kind = data.get(f"act_{i}_action") or ""
            if not kind:
                continue
            act: dict[str, Any] = {"action": kind}
            if kind in ACTIONS_WITH_VALUE:
                act["value"] = data.get(f"act_{i}_value") or ""
            actions.append(act)
            self._action_index.append(i)
        return RuleSpec(
            name=data["name"],
            conditions=conditions,
            actions=actions,
            match=data["match"],
            enabled=bool(data.get("enabled")),
        )

    def add_rule_error(self, exc: RuleInvalid | RecordError) -> None:
        """Put ``validate_rule``'s error on the row and column it names."""
        import re

        found = re.fullmatch(r"(conditions|actions)\[(\d+)\]\.(\w+)", exc.field)
        if found:
            part, index, key = found.group(1), int(found.group(2)), found.group(3)
            rows = self._condition_index if part == "conditions" else self._action_index
            prefix = "cond" if part == "conditions" else "act"
            if index < len(rows) and f"{prefix}_{rows[index]}_{key}" in self.fields:
                self.add_error(f"{prefix}_{rows[index]}_{key}", str(exc))
                return
        add_record_error(self, exc)
