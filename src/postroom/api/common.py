"""Authentication, error responses and permission look-ups shared by the API routers."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja.security import HttpBearer

from postroom.accounts.actions import ConnectionReport
from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import has_right, visible_accounts
from postroom.api.binding import form_errors
from postroom.core.actions import authenticate_token
from postroom.core.models import ApiToken


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>``; tokens are stored hashed (see core.actions)."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        api_token = authenticate_token(token)
        if api_token is not None:
            # Views and permission checks then see the token's owner as the user,
            # exactly as a signed-in user in the web UI.
            request.user = api_token.user
        return api_token


def current_user(request: HttpRequest) -> AbstractBaseUser:
    token = request.auth  # type: ignore[attr-defined]
    assert isinstance(token, ApiToken)
    return token.user


# -- errors: raised by views, turned into responses by the handlers in urls.py --


class ApiError(Exception):
    status = 400
    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code}


class NotFound(ApiError):
    """Also used for objects the caller may not see: never reveal that they exist."""

    status = 404
    code = "not_found"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or _("Not found."))


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class InvalidInput(ApiError):
    status = 422
    code = "invalid"

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        super().__init__(detail or _("The input is not valid; see errors for each field."))
        self.errors = errors

    @classmethod
    def from_form(cls, form: Any) -> InvalidInput:
        return cls(form_errors(form))

    def body(self) -> dict[str, Any]:
        return {**super().body(), "errors": self.errors}


class CheckFailed(ApiError):
    """A5: the servers refused the settings; the report says why, side by side."""

    status = 422
    code = "check_failed"

    def __init__(self, report: ConnectionReport) -> None:
        super().__init__(_("The mail servers did not accept these settings; nothing was saved."))
        self.report = report

    def body(self) -> dict[str, Any]:
        return {**super().body(), "report": report_dict(self.report)}


def report_dict(report: ConnectionReport) -> dict[str, Any]:
    return {"ok": report.ok, **report.as_dict()}


# -- accounts the caller may use -------------------------------------------


def visible_account(user: AbstractBaseUser, account_id: int) -> EmailAccount:
    """The account if ``user`` has any right on it, else 404 (even if it exists)."""
    account = visible_accounts(user).select_related("domain", "owner").filter(pk=account_id).first()
    if account is None:
        raise NotFound(_("No account with this id."))
    return account


def managed_account(user: AbstractBaseUser, account_id: int) -> EmailAccount:
    """The account if ``user`` may manage it: 404 when invisible, 403 when only visible."""
    account = visible_account(user, account_id)
    if not has_right(user, account, Right.MANAGE):
        raise Forbidden(_("You do not have the right to manage this account."))
    return account


# -- cursor pagination (keyset on id, newest first) -------------------------------

_Row = TypeVar("_Row", bound=Model)


def encode_pk_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([pk]).encode()).decode().rstrip("=")


def decode_pk_cursor(cursor: str) -> int:
    """The id in ``cursor``; 422 on the ``cursor`` field when it is not one of ours."""
    try:
        (pk,) = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(pk, int) or isinstance(pk, bool):
            raise ValueError(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidInput(
            {"cursor": [_("This cursor is not valid; start again without it.")]}
        ) from exc
    return pk


def newest_first_page(
    rows: QuerySet[_Row], cursor: str | None, limit: int
) -> tuple[list[_Row], str | None]:
    """One page by descending id after ``cursor``, and the cursor of the page after it."""
    if cursor:
        rows = rows.filter(pk__lt=decode_pk_cursor(cursor))
    found = list(rows.order_by("-pk")[: limit + 1])
    if len(found) > limit:
        found = found[:limit]
        return found, encode_pk_cursor(found[-1].pk)
    return found, None
