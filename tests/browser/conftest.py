"""Chromium through Playwright for the browser tests, and signing in as the admin."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "browser-admin-password"
SCREENSHOTS = Path(os.environ.get("POSTROOM_SCREENSHOT_DIR", "/tmp"))


@pytest.fixture(scope="module", autouse=True)
def _chromium_installed() -> None:
    # Fail, never skip: ./scripts/test installs Chromium, so its absence is a
    # broken install step that CI must report.
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing; run ./scripts/test, which installs chromium")


@pytest.fixture(scope="module", autouse=True)
def _allow_orm_next_to_playwright() -> Iterator[None]:
    # Playwright's sync API runs an asyncio loop in this thread; Django then refuses ORM
    # calls from it (fixtures, assertions) unless told that this is deliberate.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(40_000)  # a connection test may take a few seconds per side
    yield page
    context.close()


@pytest.fixture
def admin(transactional_db: None) -> User:
    return User.objects.create_superuser("admin", password=ADMIN_PASSWORD)


def sign_in(page: Page, base: str) -> None:
    page.goto(base + "/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
