"""Mailbox pages: lists, search, threads, the message page, downloads, permissions.

Mail is stored through the real ingest path (``store_imap_batch`` writes the
blob, the message row and its ledger row; ``extract_messages`` parses the
body), with no server: these pages only read what sync stored. The flag
buttons, which write to the server, are in test_mailbox_flags.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

import pytest
from django.contrib.auth.models import User
from django.db.models import Max
from django.test import Client
from django.urls import reverse

from postroom.accounts.actions import do_share_account
from postroom.accounts.models import EmailAccount, EmailDomain
from postroom.core.models import Event
from postroom.incoming.extract import extract_messages
from postroom.incoming.ingest import RawMail, store_imap_batch
from postroom.incoming.models import FolderState, Message, MessageLocation, ParseState
from tests.web.conftest import client_for, make_account

pytestmark = pytest.mark.django_db

BASE_DATE = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
UIDVALIDITY = 4242


# -- mail, shared with the other test_mailbox_* modules ------------------------------


def plain_mail(
    subject: str,
    *,
    sender: str = "Dana Sender <dana@example.org>",
    date: datetime = BASE_DATE,
    body: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "someone@example.test"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id or f"<{abs(hash((subject, sender, date)))}@example.org>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(body if body is not None else f"Body of {subject}.\n")
    return msg.as_bytes(policy=SMTP)


def html_mail(subject: str = "Newsletter") -> bytes:
    """HTML with a script, an event handler, a tracking pixel and a remote background."""
    msg = EmailMessage()
    msg["From"] = "News <news@example.org>"
    msg["To"] = "someone@example.test"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(BASE_DATE + timedelta(hours=2))
    msg["Message-ID"] = f"<news-{abs(hash(subject))}@example.org>"
    msg.set_content("Plain version.\n")
    msg.add_alternative(
        "<html><head><script>var early = 1;</script></head><body>"
        "<p>Hello <b>reader</b></p>"
        '<img src="https://tracker.example.org/pixel.gif?u=42" alt="pixel">'
        "<script>alert('pwned')</script>"
        '<div style="background: url(https://tracker.example.org/bg.png)">bg</div>'
        '<a href="https://example.org/" onclick="steal()">link</a>'
        '<img src="x" onerror="steal()">'
        "</body></html>",
        subtype="html",
    )
    return msg.as_bytes(policy=SMTP)


def mail_with_attachments(subject: str = "Invoice attached", *, big: bytes = b"") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Billing <billing@example.org>"
    msg["To"] = "someone@example.test"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(BASE_DATE + timedelta(hours=1))
    msg["Message-ID"] = f"<invoice-{abs(hash(subject))}@example.org>"
    msg.set_content("Please find the invoice attached.\n")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice 2024.pdf")
    # A page that would run in our origin if it were ever served inline.
    msg.add_attachment(
        b"<script>alert(document.cookie)</script>",
        maintype="text",
        subtype="html",
        filename="open-me.html",
    )
    if big:
        msg.add_attachment(big, maintype="application", subtype="zip", filename="huge.zip")
    return msg.as_bytes(policy=SMTP)


def deliver(account: EmailAccount, *raws: bytes, folder: str = "INBOX") -> list[Message]:
    """Store ``raws`` as sync would (blob, message, ledger row in ``folder``), then parse them."""
    state, _created = FolderState.objects.get_or_create(
        account=account, name=folder, defaults={"uidvalidity": UIDVALIDITY}
    )
    start = (MessageLocation.objects.filter(folder=state).aggregate(m=Max("uid"))["m"] or 0) + 1
    mails = [RawMail(uid=start + i, raw=raw) for i, raw in enumerate(raws)]
    result = store_imap_batch(state, UIDVALIDITY, mails)
    extract_messages(result.new_message_ids, account.max_attachment_size, parallel=False)
    return [Message.objects.get(locations__folder=state, locations__uid=mail.uid) for mail in mails]


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def alices(alice: User, domain: EmailDomain) -> EmailAccount:
    return make_account("alice-mail@example.test", owner=alice)


@pytest.fixture
def bobs(bob: User, domain: EmailDomain) -> EmailAccount:
    return make_account("bob-mail@example.test", owner=bob)


def page(client: Client, url: str, **params: str) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, (url, response.status_code)
    return str(response.content.decode())


def listed_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-message="(\d+)"', html)]


# -- lists -------------------------------------------------------------------------------


def test_mail_home_lists_only_readable_accounts(
    alice: User, alices: EmailAccount, bobs: EmailAccount
) -> None:
    deliver(alices, plain_mail("Hello"))
    deliver(alices, plain_mail("Kept"), folder="Archive")
    html = page(client_for(alice), reverse("web:mail"))
    assert "alice-mail@example.test" in html
    assert "bob-mail@example.test" not in html
    assert "?folder=INBOX" in html and "?folder=Archive" in html
    # The navigation has the new entries.
    for label in ("Mail", "Sync status", "Quarantine"):
        assert f">{label}</a>" in html


def test_list_shows_sender_subject_date_unread_and_marks(alice: User, alices: EmailAccount) -> None:
    read, unread, attached = deliver(
        alices,
        plain_mail("Already read", date=BASE_DATE - timedelta(days=1)),
        plain_mail("Fresh news", sender="Émile Zola <emile@example.org>"),
        mail_with_attachments(),
    )
    Message.objects.filter(pk=read.pk).update(seen=True, flagged=True)
    html = page(client_for(alice), reverse("web:mail_messages", args=[alices.pk]))
    # Newest first: the attachment mail is an hour after the others.
    assert listed_ids(html) == [attached.pk, unread.pk, read.pk]
    assert "Émile Zola" in html and "Fresh news" in html
    rows = {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r'<tr class="[^"]*" data-message="(\d+)".*?</tr>', html, re.S)
    }
    assert 'class="unread"' in rows[unread.pk]
    assert 'class="unread"' not in rows[read.pk]
    assert "★" in rows[read.pk] and "★" not in rows[unread.pk]
    assert "Has attachments" in rows[attached.pk] and "Has attachments" not in rows[unread.pk]
    assert "2024" in rows[unread.pk]  # the date


def test_search_on_sender_and_subject(alice: User, alices: EmailAccount) -> None:
    invoice, note, other = deliver(
        alices,
        plain_mail("March invoice", sender="Billing Dept <billing@shop.example>"),
        plain_mail("Lunch?", sender="Carol Friend <carol@example.net>"),
        plain_mail("Weekly report", sender="Robot <robot@example.com>"),
    )
    client = client_for(alice)
    url = reverse("web:mail_messages", args=[alices.pk])
    assert listed_ids(page(client, url, q="INVOICE")) == [invoice.pk]  # subject, any case
    assert listed_ids(page(client, url, q="carol friend")) == [note.pk]  # sender name
    assert listed_ids(page(client, url, q="robot@example")) == [other.pk]  # sender address
    nothing = page(client, url, q="no such thing")
    assert listed_ids(nothing) == [] and "No messages match." in nothing
    # Not the body: "Body of" is in every message.
    assert listed_ids(page(client, url, q="Body of")) == []


def test_folders_and_paging(alice: User, alices: EmailAccount) -> None:
    inbox = deliver(
        alices,
        *[plain_mail(f"Inbox {i:02d}", date=BASE_DATE + timedelta(minutes=i)) for i in range(55)],
    )
    (archived,) = deliver(alices, plain_mail("Archived one"), folder="Archive")
    client = client_for(alice)
    url = reverse("web:mail_messages", args=[alices.pk])
    assert listed_ids(page(client, url, folder="Archive")) == [archived.pk]
    first = page(client, url, folder="INBOX")
    assert len(listed_ids(first)) == 50
    assert "Page 1 of 2" in first and 'rel="next"' in first
    second = page(client, url, folder="INBOX", page="2")
    assert set(listed_ids(first)) | set(listed_ids(second)) == {m.pk for m in inbox}
    assert len(listed_ids(second)) == 5
    # The next-page link keeps the folder.
    assert "folder=INBOX" in re.search(r'rel="next" href="([^"]+)"', first).group(1)  # type: ignore[union-attr]
    # All folders: 56.
    assert "Page 1 of 2" in page(client, url)
    assert len(listed_ids(page(client, url, page="2"))) == 6


def test_threads_view(alice: User, alices: EmailAccount) -> None:
    # One batch: the reply finds its parent stored in the same batch.
    first, reply, lonely = deliver(
        alices,
        plain_mail("Project kickoff", message_id="<kickoff@example.org>"),
        plain_mail(
            "Re: Project kickoff",
            sender="Carol Friend <carol@example.net>",
            date=BASE_DATE + timedelta(hours=3),
            in_reply_to="<kickoff@example.org>",
        ),
        plain_mail("Something else", date=BASE_DATE - timedelta(days=2)),
    )
    assert first.thread_id == reply.thread_id != lonely.thread_id
    client = client_for(alice)
    html = page(client, reverse("web:mail_threads", args=[alices.pk]))
    threads = re.findall(r'data-thread="(\d+)".*?<td>(\d+)</td>', html, re.S)
    assert threads == [(str(first.thread_id), "2"), (str(lonely.thread_id), "1")]
    assert "Project kickoff" in html
    # Search finds a thread by any of its messages' senders.
    found = page(client, reverse("web:mail_threads", args=[alices.pk]), q="carol")
    assert re.findall(r'data-thread="(\d+)"', found) == [str(first.thread_id)]
    # A thread's messages.
    members = page(
        client, reverse("web:mail_messages", args=[alices.pk]), thread=str(first.thread_id)
    )
    assert listed_ids(members) == [reply.pk, first.pk]


# -- permissions -----------------------------------------------------------------------


def test_another_users_mail_is_404_everywhere(
    alice: User, bob: User, alices: EmailAccount, bobs: EmailAccount
) -> None:
    (message,) = deliver(bobs, mail_with_attachments("Bob's secret invoice"))
    attachment = message.attachments.first()
    assert attachment is not None
    client = client_for(alice)
    for url in (
        reverse("web:mail_messages", args=[bobs.pk]),
        reverse("web:mail_threads", args=[bobs.pk]),
        reverse("web:mail_message", args=[message.pk]),
        reverse("web:mail_message_source", args=[message.pk]),
        reverse("web:mail_message_download", args=[message.pk]),
        reverse("web:mail_attachment", args=[message.pk, attachment.pk]),
    ):
        assert client.get(url).status_code == 404, url
    for url in (
        reverse("web:mail_message_flags", args=[message.pk]),
        reverse("web:mail_message_remote_images", args=[message.pk]),
    ):
        assert client.post(url, {"seen": "1"}).status_code == 404, url
    # Someone else's thread id in alice's own mailbox is not found either.
    own = reverse("web:mail_messages", args=[alices.pk])
    assert client.get(own, {"thread": str(message.thread_id)}).status_code == 404
    # Nothing leaks into alice's lists.
    assert "secret invoice" not in page(client, reverse("web:mail"))
    assert "secret invoice" not in page(client, reverse("web:quarantine"))
    message.refresh_from_db()
    assert not message.seen and not message.allow_remote_images


def test_send_only_share_is_403_and_read_share_can_read(
    alice: User, bob: User, bobs: EmailAccount
) -> None:
    (message,) = deliver(bobs, plain_mail("Shared mail"))
    access = do_share_account(bobs, actor=bob, user=alice, can_read=False, can_send=True)
    client = client_for(alice)
    assert client.get(reverse("web:mail_messages", args=[bobs.pk])).status_code == 403
    assert client.get(reverse("web:mail_message", args=[message.pk])).status_code == 403
    assert client.get(reverse("web:mail_message_download", args=[message.pk])).status_code == 403
    assert "bob-mail@example.test" not in page(client, reverse("web:mail"))

    access.can_read = True
    access.save()
    assert "Shared mail" in page(client, reverse("web:mail_messages", args=[bobs.pk]))
    assert "Shared mail" in page(client, reverse("web:mail_message", args=[message.pk]))


def test_anonymous_is_sent_to_sign_in(alices: EmailAccount) -> None:
    (message,) = deliver(alices, plain_mail("Private"))
    for url in (
        reverse("web:mail"),
        reverse("web:mail_message", args=[message.pk]),
        reverse("web:mail_message_download", args=[message.pk]),
        reverse("web:sync_status"),
        reverse("web:quarantine"),
    ):
        response = Client().get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


# -- the message page ----------------------------------------------------------------------


def test_message_page_never_carries_the_mails_script_and_blocks_remote_images(
    alice: User, alices: EmailAccount
) -> None:
    (message,) = deliver(alices, html_mail())
    assert "<script>" in message.html  # stored as received; sanitised when shown
    client = client_for(alice)
    url = reverse("web:mail_message", args=[message.pk])
    response = client.get(url)
    html = response.content.decode()
    body = html.split('id="mail-html"', 1)[1]
    assert "Hello <b>reader</b>" in body
    # The only script on the page is our own htmx, from our static files.
    assert re.findall(r"<script[^>]*>", html) == [
        re.search(r'<script src="[^"]*/web/htmx\.min\.js" defer>', html).group(0)  # type: ignore[union-attr]
    ]
    for hostile in ("alert('pwned')", "var early", "onclick", "onerror", "steal()"):
        assert hostile not in html, hostile
    # Remote images: no request goes out; the user is told and offered the switch.
    assert not re.search(r'(?<![-\w])src="https://tracker', html)  # data-remote-src only
    assert "url(https://tracker" not in html
    assert "Show remote images" in html
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "https:" not in csp.split("img-src", 1)[1].split(";")[0]
    # The plain text alternative is there too, escaped.
    assert "Plain version." in html

    assert (
        client.post(reverse("web:mail_message_remote_images", args=[message.pk])).status_code == 302
    )
    message.refresh_from_db()
    assert message.allow_remote_images
    assert Event.objects.filter(kind="message.remote_images", account=alices).exists()
    response = client.get(url)
    html = response.content.decode()
    assert 'src="https://tracker.example.org/pixel.gif?u=42"' in html
    assert "Show remote images" not in html
    assert "alert('pwned')" not in html
    assert "https:" in response["Content-Security-Policy"]


def test_text_message_is_escaped_and_opening_does_not_mark_read_by_itself(
    alice: User, alices: EmailAccount
) -> None:
    (message,) = deliver(
        alices, plain_mail("Angle brackets", body="Use <b>bold</b> & <script>x()</script>\n")
    )
    client = client_for(alice)
    html = page(client, reverse("web:mail_message", args=[message.pk]))
    assert "Use &lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;x()&lt;/script&gt;" in html
    assert "<script>x()" not in html
    # A GET marks nothing read; the page itself sends the "opened" POST when shown.
    message.refresh_from_db()
    assert not message.seen
    flags_url = reverse("web:mail_message_flags", args=[message.pk])
    assert re.search(
        rf'hx-post="{re.escape(flags_url)}" hx-vals=\'{{"seen": "1"}}\'\s+hx-trigger="load"', html
    )
    # Sent, it marks the message read (here without a server location: the change
    # stays local; test_mailbox_flags.py has the server side)...
    MessageLocation.objects.filter(message=message).delete()
    response = client.post(flags_url, {"seen": "1"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert 'id="mark-unread"' in response.content.decode()
    message.refresh_from_db()
    assert message.seen
    # ...and an opened, read message does not send it again.
    assert 'hx-trigger="load"' not in page(client, reverse("web:mail_message", args=[message.pk]))


def test_attachments_download_as_attachments_with_nosniff(
    alice: User, alices: EmailAccount
) -> None:
    alices.max_attachment_size = 4096
    alices.save(update_fields=["max_attachment_size"])
    (message,) = deliver(alices, mail_with_attachments(big=b"Z" * 20_000))
    client = client_for(alice)
    html = page(client, reverse("web:mail_message", args=[message.pk]))
    assert "invoice 2024.pdf" in html and "open-me.html" in html
    # B2: the big one is listed, not stored.
    assert re.search(r"huge\.zip.*not stored: over the size limit", html, re.S)
    assert message.attachments.count() == 2

    pdf = message.attachments.get(filename="invoice 2024.pdf")
    response = client.get(reverse("web:mail_attachment", args=[message.pk, pdf.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF  # type: ignore[attr-defined]
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "invoice 2024.pdf" in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]

    page_attachment = message.attachments.get(filename="open-me.html")
    response = client.get(reverse("web:mail_attachment", args=[message.pk, page_attachment.pk]))
    assert response["Content-Disposition"].startswith("attachment;")  # never rendered inline
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    # An attachment id of another message is not found through this one.
    (other,) = deliver(alices, plain_mail("Other"))
    url = reverse("web:mail_attachment", args=[other.pk, pdf.pk])
    assert client.get(url).status_code == 404


def test_raw_source_view_and_download(alice: User, alices: EmailAccount) -> None:
    raw = html_mail("Source check")
    (message,) = deliver(alices, raw)
    client = client_for(alice)
    html = page(client, reverse("web:mail_message_source", args=[message.pk]))
    assert "Subject: Source check" in html
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html  # shown as text
    assert "<script>alert" not in html
    response = client.get(reverse("web:mail_message_download", args=[message.pk]))
    assert b"".join(response.streaming_content) == raw  # type: ignore[attr-defined]
    assert response["Content-Type"] == "message/rfc822"
    assert response["Content-Disposition"] == f'attachment; filename="message-{message.pk}.eml"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_quarantined_message_shows_the_error_and_the_raw_source(
    alice: User, bob: User, bobs: EmailAccount
) -> None:
    (message,) = deliver(bobs, plain_mail("Broken one"))
    Message.objects.filter(pk=message.pk).update(
        parse_state=ParseState.QUARANTINED, parse_error="ValueError: <boom>", text=""
    )
    html = page(client_for(bob), reverse("web:mail_message", args=[message.pk]))
    assert 'id="quarantine-banner"' in html
    assert "ValueError: &lt;boom&gt;" in html
    assert reverse("web:quarantine_reprocess", args=[bobs.pk]) in html  # bob manages
    assert reverse("web:mail_message_source", args=[message.pk]) in html

    do_share_account(bobs, actor=bob, user=alice, can_read=True)
    html = page(client_for(alice), reverse("web:mail_message", args=[message.pk]))
    assert 'id="quarantine-banner"' in html
    assert reverse("web:quarantine_reprocess", args=[bobs.pk]) not in html  # read only
