"""The mail pages in Debian's Chromium: the status table polls, opening marks read.

What only a browser shows: htmx really polls the sync table while an account
syncs, the message page's own "opened" POST runs (and reaches Dovecot), and
the page's Content-Security-Policy lets our htmx work while blocking the
mail's remote images. Screenshots go to $POSTROOM_SCREENSHOT_DIR (default /tmp).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import ConsoleMessage, Page, expect

from postroom.incoming.actions import do_sync_account
from postroom.incoming.models import Message, SyncState, SyncStatus
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.servers.dovecot import Dovecot, DovecotUser
from tests.web.conftest import make_account
from tests.web.test_mailbox_flags import dovecot_account
from tests.web.test_mailbox_pages import html_mail, mail_with_attachments, plain_mail

pytestmark = [pytest.mark.browser]


def test_status_table_polls_and_opening_a_message_marks_it_read(
    page: Page, live_server: Any, admin: User, dovecot: Dovecot, dovecot_user: DovecotUser
) -> None:
    uid = dovecot.append(dovecot_user.name, "INBOX", html_mail("Spring newsletter"))
    dovecot.append(dovecot_user.name, "INBOX", mail_with_attachments("Invoice March"))
    dovecot.append(dovecot_user.name, "INBOX", plain_mail("Lunch on Friday?"))
    account = dovecot_account(dovecot, dovecot_user, owner=admin)
    do_sync_account(account)
    busy = make_account("big-mailbox@example.test", owner=admin)
    status = SyncStatus.objects.create(
        account=busy, state=SyncState.SYNCING, progress_done=1200, progress_total=5000
    )
    locked = make_account("password-changed@example.test", owner=admin)
    SyncStatus.objects.create(
        account=locked,
        state=SyncState.AUTH_ERROR,
        last_error_code="auth_failed",
        last_error_message="Login refused 3 times in a row: sync stopped until the password is changed.",
    )
    off = make_account("switched-off@example.test", owner=admin, sync_enabled=False)
    SyncStatus.objects.create(account=off, state=SyncState.DISABLED)

    csp_errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text and "img-src" not in message.text:
            csp_errors.append(message.text)

    page.on("console", on_console)
    base = live_server.url
    sign_in(page, base)

    # The status table refreshes itself while an account syncs.
    page.get_by_role("link", name="Sync status").click()
    row = page.locator(f"#sync-row-{busy.pk}")
    expect(row).to_contain_text("1200 of 5000")
    page.screenshot(path=str(SCREENSHOTS / "postroom-sync-status.png"), full_page=True)
    SyncStatus.objects.filter(pk=status.pk).update(progress_done=4100)
    expect(row).to_contain_text("4100 of 5000", timeout=10_000)
    expect(page.locator(f"#sync-row-{locked.pk}")).to_contain_text("repeated login failures")

    # Sync now (htmx) answers in the table.
    page.locator(f"#sync-row-{account.pk}").get_by_role("button", name="Sync now").click()
    expect(page.locator("#sync-table ul.messages")).to_contain_text("requested")

    # Open the newsletter: it is shown sanitised, and marked read here and on the server.
    page.get_by_role("link", name="Mail", exact=True).click()
    page.get_by_role("link", name=account.name).click()
    expect(page.locator("#messages tbody tr")).to_have_count(3)
    page.screenshot(path=str(SCREENSHOTS / "postroom-mailbox.png"), full_page=True)
    page.get_by_role("link", name="Spring newsletter").click()
    expect(page.locator("#mail-html")).to_contain_text("Hello reader")
    expect(page.locator("#mark-unread")).to_be_visible()  # the "opened" POST ran
    assert "\\Seen" in dovecot.flags(dovecot_user.name)[uid]
    message = Message.objects.get(account=account, subject="Spring newsletter")
    assert message.seen
    expect(page.locator("#remote-images")).to_contain_text(
        "2 remote images were blocked"
    )  # the pixel and a background
    page.screenshot(path=str(SCREENSHOTS / "postroom-message.png"), full_page=True)

    # Flag it with the button (htmx), then allow the remote images.
    page.locator("#flag").click()
    expect(page.locator("#unflag")).to_be_visible()
    assert "\\Flagged" in dovecot.flags(dovecot_user.name)[uid]
    page.get_by_role("button", name="Show remote images").click()
    expect(page.locator("#remote-images")).to_have_count(0)
    expect(page.locator("#mail-html img[src^='https://tracker.example.org/']")).to_have_count(1)

    # Our own htmx ran under the message page's policy without a complaint.
    assert csp_errors == []

    # Right to left: the same table in Arabic (logical CSS properties only).
    page.goto(base + "/sync/")
    page.get_by_role("button", name="العربية").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.get_by_role("heading", name="حالة المزامنة")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "postroom-sync-status-ar.png"), full_page=True)
