"""The REST API, mounted at ``/api/v1/`` (OpenAPI document at ``/api/v1/openapi.json``).

Every operation needs ``Authorization: Bearer <token>``; tokens are created
and revoked in the web UI or with ``postroom token``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import ValidationError as SchemaValidationError

from postroom.accounts.permissions import can_add_accounts, can_manage_domains
from postroom.api import (
    accounts,
    compose,
    domains,
    messages,
    notifications,
    outbox,
    records,
    routing,
    webhooks,
)
from postroom.api.common import ApiError, TokenAuth, current_user
from postroom.api.schemas import MeOut, PresetOut
from postroom.core.models import ApiToken
from postroom.mail.presets import load_presets
from postroom.webhooks.events import markdown as webhook_events

api = NinjaAPI(
    title="Postroom API",
    version="1",
    urls_namespace="api",
    auth=TokenAuth(),
    description="Mail accounts, domains and connection tests. "
    "Authenticate with `Authorization: Bearer <token>`.\n\n" + webhook_events(),
)
api.add_router("/accounts", accounts.router)
api.add_router("/domains", domains.router)
api.add_router("/outbox", outbox.router)
api.add_router("/notifications", notifications.router)
api.add_router("/webhooks", webhooks.router)
# Full paths inside: /messages, /quarantine and /accounts/{id}/sync.
api.add_router("", messages.router)
# /records, /contacts, /record-types; /accounts/{id}/routing and /accounts/{id}/rules.
api.add_router("", records.router)
api.add_router("", routing.router)
# /messages/{id}/reply and /records/{id}/messages: answering mail, writing from a record.
api.add_router("", compose.router)


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return api.create_response(request, exc.body(), status=exc.status)


@api.exception_handler(SchemaValidationError)
def _schema_error(request: HttpRequest, exc: SchemaValidationError) -> HttpResponse:
    """Wrong JSON types: the same ``errors`` shape as the form's messages."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        # loc is e.g. ("body", "payload", "incoming_port") or ("query", "port");
        # ("body", "payload") alone means the body is missing or not JSON at all.
        loc = [str(part) for part in error.get("loc", ())]
        if loc[:1] == ["body"]:
            field = loc[2] if len(loc) > 2 else "__all__"
        else:
            field = loc[-1] if loc else "__all__"
        errors.setdefault(field, []).append(str(error.get("msg", "")))
    body = {
        "detail": _("The input is not valid; see errors for each field."),
        "code": "invalid",
        "errors": errors,
    }
    return api.create_response(request, body, status=422)


@api.get("/me", response=MeOut, tags=["me"], summary="Who the token belongs to")
def me(request: HttpRequest) -> dict[str, Any]:
    user = current_user(request)
    token = request.auth  # type: ignore[attr-defined]
    assert isinstance(token, ApiToken)
    return {
        "username": user.get_username(),
        "is_superuser": bool(getattr(user, "is_superuser", False)),
        "can_add_accounts": can_add_accounts(user),
        "can_manage_domains": can_manage_domains(user),
        "token_name": token.name,
    }


@api.get("/presets", response=list[PresetOut], tags=["presets"], summary="Provider presets")
def presets(request: HttpRequest) -> list[dict[str, Any]]:
    current_user(request)
    result = []
    for preset in load_presets():
        data = dataclasses.asdict(preset)
        # The data file is English; its notes are shown in the caller's language.
        data.update(
            login_hint=_(preset.login_hint),
            note=_(preset.note),
            outgoing_only=preset.outgoing_only,
        )
        result.append(data)
    return result
