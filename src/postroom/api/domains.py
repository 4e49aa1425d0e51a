"""``/domains``: the server settings that accounts in a domain inherit (A1).

Anyone signed in may read them (they hold no secret and are needed to pick a
domain for an account); changing them needs the domain-management permission.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Router, Status

from postroom.accounts.actions import DomainInUse, do_delete_domain, do_save_domain
from postroom.accounts.forms import DomainForm
from postroom.accounts.models import EmailDomain
from postroom.accounts.permissions import can_manage_domains
from postroom.api.binding import bind_domain_form, domain_data, domain_defaults, overlay
from postroom.api.common import Conflict, Forbidden, InvalidInput, NotFound, current_user
from postroom.api.schemas import (
    DomainCreateIn,
    DomainOut,
    DomainSavedOut,
    DomainUpdateIn,
    ErrorOut,
    FieldErrorsOut,
)
from postroom.api.serialize import domain_dict

router = Router(tags=["domains"])


def _get(domain_id: int) -> EmailDomain:
    domain = EmailDomain.objects.filter(pk=domain_id).first()
    if domain is None:
        raise NotFound(_("No domain with this id."))
    return domain


def _require_manager(user: AbstractBaseUser) -> None:
    if not can_manage_domains(user):
        raise Forbidden(_("You do not have the right to manage domains."))


def _save(
    user: AbstractBaseUser, data: dict[str, Any], instance: EmailDomain | None
) -> dict[str, Any]:
    form = bind_domain_form(data, instance)
    if not form.is_valid():
        raise InvalidInput.from_form(form)
    domain = do_save_domain(form.save(commit=False), actor=user)
    return {**domain_dict(domain), "warnings": form.warnings}


@router.get("", response=list[DomainOut], summary="List the domains")
def list_domains(request: HttpRequest) -> list[dict[str, Any]]:
    current_user(request)
    return [domain_dict(d) for d in EmailDomain.objects.all()]


@router.post(
    "",
    response={201: DomainSavedOut, 403: ErrorOut, 422: FieldErrorsOut},
    summary="Create a domain",
)
def create_domain(request: HttpRequest, payload: DomainCreateIn) -> Status[dict[str, Any]]:
    user = current_user(request)
    _require_manager(user)
    data = overlay(domain_defaults(), payload.model_dump(exclude_unset=True), DomainForm)
    return Status(201, _save(user, data, None))


@router.get("/{domain_id}", response={200: DomainOut, 404: ErrorOut}, summary="One domain")
def get_domain(request: HttpRequest, domain_id: int) -> dict[str, Any]:
    current_user(request)
    return domain_dict(_get(domain_id))


@router.patch(
    "/{domain_id}",
    response={200: DomainSavedOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="Change a domain: only the fields sent change",
)
def update_domain(request: HttpRequest, domain_id: int, payload: DomainUpdateIn) -> dict[str, Any]:
    user = current_user(request)
    _require_manager(user)
    domain = _get(domain_id)
    data = overlay(domain_data(domain), payload.model_dump(exclude_unset=True), DomainForm)
    return _save(user, data, domain)


@router.delete(
    "/{domain_id}",
    response={204: None, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Delete a domain no account uses",
)
def delete_domain(request: HttpRequest, domain_id: int) -> Status[None]:
    user = current_user(request)
    _require_manager(user)
    domain = _get(domain_id)
    try:
        do_delete_domain(domain, actor=user)
    except DomainInUse as exc:
        raise Conflict(str(exc)) from exc
    return Status(204, None)
