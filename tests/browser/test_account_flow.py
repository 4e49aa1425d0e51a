"""The issue's browser scenario, in Debian's Chromium driven by Playwright.

Sign in as an admin, add a domain that points at the test Dovecot (IMAPS, this
run's CA pasted in) and the test SMTP server, add an account from that domain,
test the connection and see both sides green; then save a wrong password
without the check and see the incoming side fail with auth_failed.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpServer
from tests.servers.users import ALICE, ALICE_PASSWORD, LOCAL_DOMAIN

pytestmark = [pytest.mark.browser]


def add_domain(page: Page, base: str, dovecot: Dovecot, smtp: SmtpServer) -> None:
    page.goto(base + "/domains/new/")
    page.fill("#id_name", LOCAL_DOMAIN)
    page.select_option("#id_incoming_protocol", "imap")
    page.fill("#id_incoming_host", dovecot.host)
    page.fill("#id_incoming_port", str(dovecot.imaps_port))
    page.select_option("#id_incoming_security", "ssl")
    page.fill("#id_smtp_host", smtp.host)
    page.fill("#id_smtp_port", str(smtp.port))
    page.select_option("#id_smtp_security", "starttls")
    page.check("#id_smtp_auth")
    expect(page.locator("#id_verify_cert")).to_be_checked()
    page.fill("#id_ca_cert", dovecot.ca_pem)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("ul.messages")).to_contain_text(f"Domain {LOCAL_DOMAIN} saved.")
    expect(page.locator("#domains")).to_contain_text(str(dovecot.imaps_port))


def test_add_account_from_domain_test_it_then_break_the_password(
    page: Page, live_server: Any, admin: User, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    base = live_server.url
    sign_in(page, base)
    add_domain(page, base, dovecot, smtp_server)

    # Add the account: typing the address makes the form show what it inherits (htmx).
    page.get_by_role("link", name="Accounts").click()
    page.get_by_role("link", name="Add account").click()
    page.fill("#id_email", ALICE)
    page.locator("#id_email").blur()
    expect(page.locator("#inherited")).to_contain_text(LOCAL_DOMAIN)
    expect(page.locator("#id_incoming_port")).to_have_attribute(
        "placeholder", str(dovecot.imaps_port)
    )
    # Port/security warnings appear while filling in, before anything is tried.
    page.fill("#id_smtp_port", "587")
    page.select_option("#id_smtp_security", "ssl")
    expect(page.locator("#port-warnings")).to_contain_text("Port 587 normally uses STARTTLS")
    page.fill("#id_smtp_port", "")
    page.select_option("#id_smtp_security", "")
    expect(page.locator("#port-warnings li")).to_have_count(0)
    # A12: the risk text shows only while certificate verification is off.
    expect(page.locator(".confirm-no-verify")).to_be_hidden()
    page.uncheck("#id_verify_cert")
    expect(page.locator(".confirm-no-verify")).to_be_visible()
    page.check("#id_verify_cert")

    page.fill("#id_password", ALICE_PASSWORD)
    page.get_by_role("button", name="Save").click()  # checks both servers first (A5)
    expect(page.locator("ul.messages")).to_contain_text(f"Account {ALICE} saved.")
    detail_url = page.url

    # Test connection: both sides green.
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-incoming")).to_have_attribute("data-ok", "true")
    expect(page.locator("#test-outgoing")).to_have_attribute("data-ok", "true")
    expect(page.locator("#test-incoming")).to_contain_text("Connection and login succeeded.")
    assert page.url == detail_url  # htmx swapped the result in; no navigation
    page.screenshot(path=str(SCREENSHOTS / "postroom-test-green.png"), full_page=True)

    # A wrong password, saved without asking the servers.
    page.get_by_role("link", name="Edit").click()
    expect(page.locator("#id_password")).to_have_value("")  # never rendered back
    expect(page.locator("#row-password")).to_contain_text("A password is set")
    page.fill("#id_password", "not-" + ALICE_PASSWORD)
    page.check("#id_skip_check")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("ul.messages")).to_contain_text("saved")

    page.get_by_role("button", name="Test connection").click()
    incoming = page.locator("#test-incoming")
    expect(incoming).to_have_attribute("data-ok", "false")
    expect(incoming).to_have_attribute("data-code", "auth_failed")
    expect(incoming).to_contain_text("The server rejected the login.")
    expect(page.locator("#test-outgoing")).to_have_attribute("data-ok", "false")
    page.screenshot(path=str(SCREENSHOTS / "postroom-test-auth-failed.png"), full_page=True)
    assert ALICE_PASSWORD not in page.content()

    # The same page in Arabic is laid out right to left.
    page.locator("form.languages button[lang=ar]").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    expect(page.get_by_role("button", name="اختبار الاتصال")).to_be_visible()
    page.get_by_role("button", name="اختبار الاتصال").click()
    expect(page.locator("#test-incoming")).to_have_attribute("data-code", "auth_failed")
    page.screenshot(path=str(SCREENSHOTS / "postroom-test-auth-failed-ar.png"), full_page=True)
