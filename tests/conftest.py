from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings

pytest_plugins = ["tests.servers.fixtures"]


def database_url() -> str:
    """The URL of the test database, for postroom processes started by a test."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


@pytest.fixture
def postroom_env() -> dict[str, str]:
    """The environment for a ``postroom`` subprocess that works on the test database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    return env


@pytest.fixture(autouse=True)
def _default_language() -> Iterator[None]:
    """Every test starts in the default language, whatever the previous one switched to."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)
