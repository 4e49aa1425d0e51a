"""``/accounts``: list, read, create, change, delete and test mail accounts.

Each call validates with the web UI's AccountForm and changes state only
through the ``do_*`` actions; rights come from accounts.permissions, so the
API can never do more than the same user could in the browser.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Status

from postroom.accounts.actions import (
    AccountCheckFailed,
    do_delete_account,
    do_save_account,
    do_test_account,
)
from postroom.accounts.forms import AccountForm
from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import can_add_accounts, has_right, visible_accounts
from postroom.api.binding import (
    account_data,
    account_defaults,
    bind_account_form,
    overlay,
    owner_change_refused,
)
from postroom.api.common import (
    CheckFailed,
    Forbidden,
    InvalidInput,
    current_user,
    managed_account,
    report_dict,
    visible_account,
)
from postroom.api.filtering import filter_accounts
from postroom.api.schemas import (
    AccountCreateIn,
    AccountFilters,
    AccountOut,
    AccountSavedOut,
    AccountUpdateIn,
    CheckFailedOut,
    ConnectionReportOut,
    ErrorOut,
    FieldErrorsOut,
)
from postroom.api.serialize import account_dict, rights_by_account

router = Router(tags=["accounts"])

_SAVE_ERRORS: dict[int, Any] = {
    403: ErrorOut,
    404: ErrorOut,
    422: FieldErrorsOut | CheckFailedOut,
}


def _rights(user: AbstractBaseUser, account: EmailAccount) -> list[str]:
    return [str(right) for right in Right if has_right(user, account, right)]


def _refuse_owner_change(
    user: AbstractBaseUser, given: dict[str, Any], current_owner: str | None
) -> None:
    if "owner" in given:
        refusal = owner_change_refused(user, given["owner"], current_owner)
        if refusal:
            raise InvalidInput({"owner": [refusal]})


def _save(
    user: AbstractBaseUser, data: dict[str, Any], instance: EmailAccount | None
) -> dict[str, Any]:
    form = bind_account_form(data, instance)
    if not form.is_valid():
        raise InvalidInput.from_form(form)
    account = form.save(commit=False)
    password, smtp_password = form.passwords()
    try:
        do_save_account(
            account,
            actor=user,
            password=password,
            smtp_password=smtp_password,
            check=not form.cleaned_data.get("skip_check"),
        )
    except AccountCheckFailed as exc:
        raise CheckFailed(exc.report) from exc
    return {**account_dict(account, rights=_rights(user, account)), "warnings": form.warnings}


@router.get("", response=list[AccountOut], summary="List the accounts you can see")
def list_accounts(request: HttpRequest, filters: Query[AccountFilters]) -> list[dict[str, Any]]:
    user = current_user(request)
    accounts = filter_accounts(visible_accounts(user), **filters.model_dump())
    rights = rights_by_account(user)
    return [account_dict(a, rights=rights.get(a.pk, [])) for a in accounts]


@router.post(
    "",
    response={201: AccountSavedOut, **_SAVE_ERRORS},
    summary="Create an account (checked against its servers unless skip_check)",
)
def create_account(request: HttpRequest, payload: AccountCreateIn) -> Status[dict[str, Any]]:
    user = current_user(request)
    if not can_add_accounts(user):
        raise Forbidden(_("You do not have the right to add accounts."))
    given = payload.model_dump(exclude_unset=True)
    _refuse_owner_change(user, given, None)
    base = {**account_defaults(), "owner": user.get_username()}
    data = overlay(base, given, AccountForm)
    return Status(201, _save(user, data, None))


@router.get("/{account_id}", response={200: AccountOut, 404: ErrorOut}, summary="One account")
def get_account(request: HttpRequest, account_id: int) -> dict[str, Any]:
    user = current_user(request)
    account = visible_account(user, account_id)
    return account_dict(account, rights=_rights(user, account))


@router.patch(
    "/{account_id}",
    response={200: AccountSavedOut, **_SAVE_ERRORS},
    summary="Change an account: only the fields sent change, the result is validated whole",
)
def update_account(
    request: HttpRequest, account_id: int, payload: AccountUpdateIn
) -> dict[str, Any]:
    user = current_user(request)
    account = managed_account(user, account_id)
    given = payload.model_dump(exclude_unset=True)
    current_owner = account.owner.get_username() if account.owner is not None else None
    _refuse_owner_change(user, given, current_owner)
    return _save(user, overlay(account_data(account), given, AccountForm), account)


@router.delete(
    "/{account_id}",
    response={204: None, 403: ErrorOut, 404: ErrorOut},
    summary="Delete an account",
)
def delete_account(request: HttpRequest, account_id: int) -> Status[None]:
    user = current_user(request)
    account = managed_account(user, account_id)
    do_delete_account(account, actor=user)
    return Status(204, None)


@router.post(
    "/{account_id}/test",
    response={200: ConnectionReportOut, 403: ErrorOut, 404: ErrorOut},
    summary="Test connection: try incoming and outgoing, report each side",
)
def test_account(request: HttpRequest, account_id: int) -> dict[str, Any]:
    user = current_user(request)
    account = managed_account(user, account_id)
    return report_dict(do_test_account(account, actor=user))
