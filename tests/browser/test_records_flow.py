"""Issue 5's "done when", in Chromium: support@ appends to Issue, mail becomes an Issue,
replies from both sides thread onto it in the UI and the API.

The mail server side is real: a private Dovecot holds the support mailbox and
aiosmtpd takes what we send. Sync and delivery are driven from the test (the
live server runs neither the watcher nor the worker), exactly as they run in
``postroom run``: ``do_sync_account`` and the outbox's ``deliver_due``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Page, expect

from postroom.accounts.actions import do_save_account
from postroom.accounts.models import EmailAccount
from postroom.core.actions import do_create_api_token
from postroom.incoming.actions import do_sync_account
from postroom.outgoing.queue import deliver_due
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.records.conftest import mail
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpServer

pytestmark = [pytest.mark.browser]


def test_support_mail_becomes_an_issue_and_both_sides_reply_on_it(
    page: Page,
    live_server: Any,
    admin: User,
    dovecot: Dovecot,
    smtp_server_factory: Callable[..., SmtpServer],
) -> None:
    base = live_server.url
    user = dovecot.new_user("support")
    smtp = smtp_server_factory()
    support = do_save_account(
        EmailAccount(
            name="Support",
            email=user.name,
            owner=admin,
            incoming_protocol="imap",
            incoming_host=dovecot.host,
            incoming_port=dovecot.imaps_port,
            incoming_security="ssl",
            ca_cert=dovecot.ca_pem,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            smtp_auth=False,
            always_use_account_email_as_sender=True,
        ),
        actor=None,
        password=user.password,
        check=False,
    )
    sign_in(page, base)

    # The admin sets support@ to append to Issue.
    page.goto(f"{base}/accounts/{support.pk}/")
    page.get_by_role("link", name="Routing").first.click()
    page.select_option('select[data-folder=""]', "issue")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("ul.messages")).to_be_visible()

    # Mail arrives and becomes an Issue.
    dovecot.append(user.name, "INBOX", mail("Printer on fire", to=user.name))
    do_sync_account(support)
    page.get_by_role("link", name="Records").first.click()
    expect(page.locator("main")).to_contain_text("ISSUE-1")
    page.get_by_role("link", name="Printer on fire").first.click()
    expect(page.locator("#record-status")).to_have_attribute("data-status", "Open")
    expect(page.locator("#timeline li")).to_have_count(1)

    # We reply from the record's timeline.
    page.locator("#timeline li").first.get_by_role("link", name="Reply", exact=True).click()
    page.fill("#id_text", "Please unplug it.\n")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#timeline li")).to_have_count(2)
    expect(page.locator("#timeline li[data-kind=sent]")).to_have_count(1)
    expect(page.locator("#record-status")).to_have_attribute("data-status", "Replied")
    record_url = page.url

    # It goes out; the customer answers with only In-Reply-To.
    while deliver_due("browser-worker", 10):
        pass
    [sent] = smtp.wait_for_messages(1)
    assert sent.message["In-Reply-To"]
    dovecot.append(
        user.name,
        "INBOX",
        mail("Re: Printer on fire", to=user.name, in_reply_to=sent.message["Message-ID"]),
    )
    do_sync_account(support)
    page.goto(record_url)
    expect(page.locator("#timeline li")).to_have_count(3)
    expect(page.locator("#record-status")).to_have_attribute("data-status", "Open")
    page.screenshot(path=str(SCREENSHOTS / "postroom-record-timeline.png"), full_page=True)

    # The API shows the same record and timeline.
    _token, raw = do_create_api_token(admin, "browser")
    api = Client(headers={"Authorization": f"Bearer {raw}"})
    listing = json.loads(api.get("/api/v1/records", {"type": "issue"}).content)
    items = listing["items"] if isinstance(listing, dict) else listing
    [record] = [r for r in items if r["reference"] == "ISSUE-1"]
    detail = json.loads(api.get(f"/api/v1/records/{record['id']}").content)
    assert len(detail["timeline"]) == 3
