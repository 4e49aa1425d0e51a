"""Feeding API and CLI input to the shared forms, and reading their errors back.

The web UI, the REST API and the CLI all validate with
:class:`~postroom.accounts.forms.AccountForm` and
:class:`~postroom.accounts.forms.DomainForm`. This module only translates
between a plain data dict and a bound form; it must never add a validation
rule of its own, or the interfaces would start to disagree.

No django-ninja import here: the CLI uses this module too.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.forms.models import model_to_dict
from django.utils.translation import gettext_lazy as _

from postroom.accounts.forms import AccountForm, DomainForm
from postroom.accounts.models import EmailAccount, EmailDomain

# Form fields that are not model fields: write-only secrets and flags.
ACCOUNT_EXTRA_FIELDS = ("password", "smtp_password", "confirm_no_verify", "skip_check")

# Shown when a domain or owner given by name does not exist. The web form
# picks them from a list by id; the API and CLI name them, so "not one of the
# available choices" would not tell the user what is wrong.
_UNKNOWN_DOMAIN = _(
    "There is no domain %(value)s. Add it first, or give the servers or a preset instead."
)
_UNKNOWN_OWNER = _("There is no active user named %(value)s.")


def _choose_by(field: forms.Field, attribute: str, message: Any) -> None:
    assert isinstance(field, forms.ModelChoiceField)
    field.to_field_name = attribute
    field.error_messages = {**field.error_messages, "invalid_choice": message}


def _model_fields(form_class: type[forms.ModelForm[Any]]) -> list[str]:
    return list(form_class._meta.fields or [])


def account_defaults() -> dict[str, Any]:
    """What a new account holds before the user says anything.

    Starting from the model's defaults matters: a boolean missing from form
    data means "unticked", so an omitted ``incoming_enabled`` would silently
    switch incoming off.
    """
    data = model_to_dict(EmailAccount(), fields=_model_fields(AccountForm))
    data.update(domain=None, owner=None, smtp_auth=None)
    return data


def account_data(account: EmailAccount) -> dict[str, Any]:
    """The stored values of ``account`` as form data (domain and owner by name).

    Passwords are not included: an absent password keeps the stored one.
    """
    data = model_to_dict(account, fields=_model_fields(AccountForm))
    data["domain"] = account.domain.name if account.domain is not None else None
    data["owner"] = account.owner.get_username() if account.owner is not None else None
    return data


def bind_account_form(data: dict[str, Any], instance: EmailAccount | None = None) -> AccountForm:
    """A bound AccountForm that takes the domain by name and the owner by username."""
    clean = {key: value for key, value in data.items() if value is not None}
    form = AccountForm(data=clean, instance=instance)
    _choose_by(form.fields["domain"], "name", _UNKNOWN_DOMAIN)
    _choose_by(form.fields["owner"], get_user_model().USERNAME_FIELD, _UNKNOWN_OWNER)
    return form


def domain_defaults() -> dict[str, Any]:
    """A new domain's model defaults (see :func:`account_defaults` for why)."""
    return model_to_dict(EmailDomain(), fields=_model_fields(DomainForm))


def domain_data(domain: EmailDomain) -> dict[str, Any]:
    return model_to_dict(domain, fields=_model_fields(DomainForm))


def bind_domain_form(data: dict[str, Any], instance: EmailDomain | None = None) -> DomainForm:
    clean = {key: value for key, value in data.items() if value is not None}
    return DomainForm(data=clean, instance=instance)


def overlay(
    base: dict[str, Any], given: dict[str, Any], form_class: type[forms.ModelForm[Any]]
) -> dict[str, Any]:
    """``base`` with the values in ``given`` on top.

    ``None`` clears a text or number, but for a yes/no field it means "not
    given": a missing checkbox reads as "no", which a client sending null
    surely did not mean.
    """
    fields = form_class.base_fields
    merged = dict(base)
    for key, value in given.items():
        field = fields.get(key)
        is_plain_boolean = isinstance(field, forms.BooleanField) and not isinstance(
            field, forms.NullBooleanField
        )
        if value is None and is_plain_boolean:
            continue
        merged[key] = value
    return merged


def owner_change_refused(
    user: AbstractBaseUser | None, requested: str | None, current: str | None
) -> str | None:
    """Why ``user`` may not make ``requested`` the owner, or None when allowed.

    Administrators (and the CLI's site operator, ``user`` None) hand accounts
    to anyone; everyone else keeps the current owner or takes the account
    themselves, so nobody can push an account onto another user.
    """
    if user is None or getattr(user, "is_superuser", False):
        return None
    if requested in {current, user.get_username()}:
        return None
    return str(_("Only an administrator can give an account to another user."))


def form_errors(form: forms.BaseForm) -> dict[str, list[str]]:
    """``{field: [message, ...]}`` with the form's own (translated) messages."""
    return {
        field: [str(item["message"]) for item in items]
        for field, items in form.errors.get_json_data().items()
    }
