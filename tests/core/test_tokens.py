"""API tokens: "last used" is kept to the minute, without a write per request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from postroom.core.actions import authenticate_token, do_create_api_token
from postroom.core.models import ApiToken

pytestmark = pytest.mark.django_db


def _writes(raw: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert authenticate_token(raw) is not None
    return sum(1 for q in queries if q["sql"].lstrip().upper().startswith("UPDATE"))


def test_last_used_is_written_at_most_once_a_minute() -> None:
    token, raw = do_create_api_token(User.objects.create_user("poller"), "poll")
    assert _writes(raw) == 1
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    assert _writes(raw) == 0  # polling again at once writes nothing
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    assert _writes(raw) == 1
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first - timedelta(minutes=2)  # type: ignore[operator]


def test_a_wrong_or_revoked_token_is_refused() -> None:
    from postroom.core.actions import do_revoke_api_token

    token, raw = do_create_api_token(User.objects.create_user("gone"), "gone")
    assert authenticate_token(raw + "x") is None
    do_revoke_api_token(token)
    assert authenticate_token(raw) is None
