"""The messages, sync and quarantine API against the real Dovecot of tests/servers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

import pytest
from django.contrib.auth.models import User

from postroom.accounts.actions import do_save_account, do_share_account
from postroom.accounts.models import EmailAccount
from postroom.incoming.actions import do_sync_account
from postroom.incoming.models import Attachment, Message, ParseState
from tests.api.conftest import ApiClient
from tests.servers.dovecot import Dovecot, DovecotUser

pytestmark = pytest.mark.django_db

BASE_DATE = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


# -- mail and accounts, shared with tests/cli/test_mail_cli.py ------------------------


def plain_mail(subject: str, *, date: datetime = BASE_DATE, sender: str = "Dana Sender") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{sender} <dana@example.org>"
    msg["To"] = "someone@example.test"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{abs(hash((subject, date)))}@example.org>"
    msg.set_content(f"Body of {subject}.\n")
    return msg.as_bytes(policy=SMTP)


def mail_with_attachment(subject: str = "Invoice attached") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Billing <billing@example.org>"
    msg["To"] = "someone@example.test"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(BASE_DATE + timedelta(hours=1))
    msg["Message-ID"] = "<invoice-1@example.org>"
    msg.set_content("Please find the invoice attached.\n")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice 2024.pdf")
    return msg.as_bytes(policy=SMTP)


def html_mail(subject: str = "Newsletter") -> bytes:
    msg = EmailMessage()
    msg["From"] = "News <news@example.org>"
    msg["To"] = "someone@example.test"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(BASE_DATE + timedelta(hours=2))
    msg["Message-ID"] = "<news-1@example.org>"
    msg.set_content("Plain version.\n")
    msg.add_alternative(
        "<html><body><p>Hello <b>reader</b></p>"
        '<img src="https://tracker.example.org/pixel.gif?u=42" alt="pixel">'
        "<script>alert('pwned')</script>"
        '<a href="https://example.org/" onclick="steal()">link</a></body></html>',
        subtype="html",
    )
    return msg.as_bytes(policy=SMTP)


def make_account(
    dovecot: Dovecot,
    user: DovecotUser,
    *,
    owner: User | None = None,
    name: str | None = None,
    password: str | None = None,
    folders: tuple[str, ...] = ("INBOX",),
) -> EmailAccount:
    """An IMAPS account on the test Dovecot, trusting this run's private CA."""
    return do_save_account(
        EmailAccount(
            email=user.name.lower(),
            name=name or user.name.lower(),
            owner=owner,
            incoming_protocol="imap",
            incoming_host=dovecot.host,
            incoming_port=dovecot.imaps_port,
            incoming_security="ssl",
            folders=list(folders),
            outgoing_enabled=False,
            ca_cert=dovecot.ca_pem,
        ),
        actor=None,
        password=password if password is not None else user.password,
        check=False,
    )


def put(client: ApiClient, path: str, data: Any) -> Any:
    return client.client.put("/api/v1" + path, data, content_type="application/json")


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def mailbox(dovecot: Dovecot, dovecot_user: DovecotUser, alice: User) -> dict[str, Any]:
    """alice's account with 7 synced messages: 4 plain (two with the same date), one with
    an attachment, one HTML with a remote image and a script, one more plain one."""
    raws = {
        "old": plain_mail("Oldest", date=BASE_DATE - timedelta(days=3)),
        "tie-a": plain_mail("Tie A", date=BASE_DATE - timedelta(days=1)),
        "tie-b": plain_mail("Tie B", date=BASE_DATE - timedelta(days=1)),
        "tie-c": plain_mail("Tie C", date=BASE_DATE - timedelta(days=1), sender="Other Person"),
        "attachment": mail_with_attachment(),
        "html": html_mail(),
        "new": plain_mail("Newest", date=BASE_DATE + timedelta(days=1)),
    }
    uids = {key: dovecot.append(dovecot_user.name, "INBOX", raw) for key, raw in raws.items()}
    account = make_account(dovecot, dovecot_user, owner=alice)
    result = do_sync_account(account)
    assert result.result.stored == 7
    ids = {
        key: Message.objects.get(account=account, locations__uid=uid).pk
        for key, uid in uids.items()
    }
    return {"account": account, "raws": raws, "uids": uids, "ids": ids, "user": dovecot_user}


# -- listing ----------------------------------------------------------------------------


def test_cursor_pages_cover_every_message_once_newest_first(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient]
) -> None:
    client = api_for(alice)
    account_id = mailbox["account"].pk
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"account": account_id, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/messages", **params)
        assert response.status_code == 200, response.json()
        body = response.json()
        assert len(body["items"]) <= 3
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(mailbox["ids"].values())
    # Newest first; the three with the same date by id, highest first.
    ids = mailbox["ids"]
    ties = sorted([ids["tie-a"], ids["tie-b"], ids["tie-c"]], reverse=True)
    assert seen == [ids["new"], ids["html"], ids["attachment"], *ties, ids["old"]]


def test_a_cursor_stays_valid_when_new_mail_arrives(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient], dovecot: Dovecot
) -> None:
    client = api_for(alice)
    first = client.get("/messages", limit=4).json()
    dovecot.append(mailbox["user"].name, "INBOX", plain_mail("Brand new", date=BASE_DATE))
    assert do_sync_account(mailbox["account"]).result.stored == 1
    rest = client.get("/messages", limit=10, cursor=first["next_cursor"]).json()
    ids = [i["id"] for i in first["items"]] + [i["id"] for i in rest["items"]]
    assert len(ids) == len(set(ids)) == 7  # the new one sorts before the cursor


def test_list_item_shape_and_filters(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient]
) -> None:
    client = api_for(alice)
    items = client.get("/messages", subject="invoice").json()["items"]
    assert len(items) == 1
    item = items[0]
    assert item["id"] == mailbox["ids"]["attachment"]
    assert item["account"] == mailbox["account"].pk
    assert item["message_id"] == "invoice-1@example.org"
    assert item["subject"] == "Invoice attached"
    assert item["from"] == {"name": "Billing", "email": "billing@example.org"}
    assert item["to"] == ["someone@example.test"]
    assert item["cc"] == []
    assert item["date"].startswith("2024-03-01T10:00:00")
    assert item["size"] == len(mailbox["raws"]["attachment"])
    assert item["flags"] == {"seen": False, "flagged": False, "answered": False}
    assert item["folders"] == [{"folder": "INBOX", "uid": mailbox["uids"]["attachment"]}]
    assert item["has_attachments"] is True
    assert item["parse_state"] == "complete"
    assert isinstance(item["thread"], int)

    assert {i["subject"] for i in client.get("/messages", q="other person").json()["items"]} == {
        "Tie C"
    }
    assert len(client.get("/messages", **{"from": "dana@"}).json()["items"]) == 5
    assert len(client.get("/messages", folder="INBOX").json()["items"]) == 7
    assert client.get("/messages", folder="Archive").json()["items"] == []
    assert len(client.get("/messages", unread="true").json()["items"]) == 7
    assert client.get("/messages", unread="false").json()["items"] == []


def test_bad_cursor_and_limit_are_refused_with_the_usual_422(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient]
) -> None:
    client = api_for(alice)
    bad = client.get("/messages", cursor="not-a-cursor")
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid"
    assert list(bad.json()["errors"]) == ["cursor"]
    too_many = client.get("/messages", limit=1000)
    assert too_many.status_code == 422
    assert "limit" in too_many.json()["errors"]


# -- one message -------------------------------------------------------------------------


def test_detail_sanitises_html_and_blocks_remote_images(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient]
) -> None:
    client = api_for(alice)
    response = client.get(f"/messages/{mailbox['ids']['html']}")
    assert response.status_code == 200
    body = response.json()
    assert body["text"].strip() == "Plain version."
    html = body["html"]
    assert "<b>reader</b>" in html
    assert "<script" not in html
    assert "alert(" not in html
    assert "onclick" not in html
    # Blocked: no src the browser would load; the address stays visible to the UI.
    assert ' src="https://tracker' not in html
    assert 'data-remote-src="https://tracker.example.org/pixel.gif?u=42"' in html
    assert body["blocked_remote_images"] == 1
    assert body["allow_remote_images"] is False
    assert body["attachments"] == []
    assert body["dropped_attachments"] == []
    assert body["parse_error"] == ""

    # Once the user allows remote images for the message, they are kept.
    Message.objects.filter(pk=mailbox["ids"]["html"]).update(allow_remote_images=True)
    allowed = client.get(f"/messages/{mailbox['ids']['html']}").json()
    assert 'src="https://tracker.example.org/pixel.gif?u=42"' in allowed["html"]
    assert "<script" not in allowed["html"]


def test_raw_download_is_the_appended_bytes(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient]
) -> None:
    response = api_for(alice).get(f"/messages/{mailbox['ids']['html']}/raw")
    assert response.status_code == 200
    assert response["Content-Type"] == "message/rfc822"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == mailbox["raws"]["html"]


def test_attachment_download(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient]
) -> None:
    client = api_for(alice)
    detail = client.get(f"/messages/{mailbox['ids']['attachment']}").json()
    assert [(a["filename"], a["content_type"], a["size"]) for a in detail["attachments"]] == [
        ("invoice 2024.pdf", "application/pdf", len(PDF))
    ]
    url = detail["attachments"][0]["url"]
    assert url.startswith("/api/v1/messages/")
    response = client.client.get(url)
    assert response.status_code == 200
    assert response.getvalue() == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="invoice 2024.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]

    # A stored name that is not a bare file name (parsing never stores one) and a
    # content type that is not one are not passed on.
    Attachment.objects.filter(pk=detail["attachments"][0]["id"]).update(
        filename="../../etc/passwd", content_type="text/html\r\nX-Evil: 1"
    )
    hostile = client.client.get(url)
    assert hostile.status_code == 200
    assert hostile["Content-Disposition"].startswith('attachment; filename="attachment-')
    assert hostile["Content-Type"] == "application/octet-stream"
    assert "X-Evil" not in hostile

    other = detail["attachments"][0]["id"]
    assert client.get(f"/messages/{mailbox['ids']['html']}/attachments/{other}").status_code == 404


def test_flags_are_written_to_the_server(
    mailbox: dict[str, Any],
    alice: User,
    api_for: Callable[[User], ApiClient],
    dovecot: Dovecot,
) -> None:
    client = api_for(alice)
    message_id, uid = mailbox["ids"]["new"], mailbox["uids"]["new"]
    user = mailbox["user"].name
    # Syncing never marks anything read on the server (B3).
    assert all("\\Seen" not in flags for flags in dovecot.flags(user).values())

    response = client.patch(f"/messages/{message_id}/flags", {"seen": True, "flagged": True})
    assert response.status_code == 200, response.json()
    assert response.json()["flags"] == {"seen": True, "flagged": True, "answered": False}
    assert {"\\Seen", "\\Flagged"} <= set(dovecot.flags(user)[uid])
    assert client.get("/messages", unread="false").json()["items"][0]["id"] == message_id

    response = client.patch(f"/messages/{message_id}/flags", {"seen": False, "answered": None})
    assert response.json()["flags"] == {"seen": False, "flagged": True, "answered": False}
    assert "\\Seen" not in dovecot.flags(user)[uid]
    assert "\\Flagged" in dovecot.flags(user)[uid]

    empty = client.patch(f"/messages/{message_id}/flags", {})
    assert empty.status_code == 422
    wrong_type = client.patch(f"/messages/{message_id}/flags", {"seen": "perhaps"})
    assert wrong_type.status_code == 422
    assert "seen" in wrong_type.json()["errors"]


def test_a_server_refusing_the_flag_change_gives_502_with_the_diagnosis(
    mailbox: dict[str, Any],
    alice: User,
    api_for: Callable[[User], ApiClient],
    dovecot: Dovecot,
) -> None:
    user = mailbox["user"]
    dovecot.set_password(user.name, "changed-on-the-server")
    response = api_for(alice).patch(f"/messages/{mailbox['ids']['new']}/flags", {"seen": True})
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "auth_failed"
    assert body["detail"]
    assert body["fix"]
    assert Message.objects.get(pk=mailbox["ids"]["new"]).seen is False


# -- permissions ----------------------------------------------------------------------------


def test_users_without_the_read_right_see_nothing(
    mailbox: dict[str, Any],
    alice: User,
    bob: User,
    api_for: Callable[[User], ApiClient],
) -> None:
    as_bob = api_for(bob)
    account_id = mailbox["account"].pk
    message_id = mailbox["ids"]["attachment"]
    attachment_id = Message.objects.get(pk=message_id).attachments.get().pk
    assert as_bob.get("/messages").json() == {"items": [], "next_cursor": None}
    assert as_bob.get("/quarantine").json() == {"items": [], "next_cursor": None}
    for path in (
        f"/messages/{message_id}",
        f"/messages/{message_id}/raw",
        f"/messages/{message_id}/attachments/{attachment_id}",
        f"/accounts/{account_id}/sync",
    ):
        assert as_bob.get(path).status_code == 404, path
    assert as_bob.get("/messages", account=account_id).status_code == 404
    assert as_bob.patch(f"/messages/{message_id}/flags", {"seen": True}).status_code == 404
    assert as_bob.post(f"/accounts/{account_id}/sync").status_code == 404
    assert as_bob.post(f"/accounts/{account_id}/quarantine/reprocess").status_code == 404

    # May send from it but not read it: the account is visible, its mail is not.
    do_share_account(mailbox["account"], actor=alice, user=bob, can_read=False, can_send=True)
    assert as_bob.get("/messages").json()["items"] == []
    assert as_bob.get(f"/messages/{message_id}").status_code == 404
    assert as_bob.get(f"/accounts/{account_id}/sync").status_code == 403

    # Read right: everything to read, and flags; not the sync switch nor reprocessing.
    do_share_account(mailbox["account"], actor=alice, user=bob, can_read=True)
    assert len(as_bob.get("/messages").json()["items"]) == 7
    assert as_bob.get(f"/messages/{message_id}").status_code == 200
    assert as_bob.get(f"/accounts/{account_id}/sync").status_code == 200
    assert put(as_bob, f"/accounts/{account_id}/sync", {"enabled": False}).status_code == 403
    assert as_bob.post(f"/accounts/{account_id}/quarantine/reprocess").status_code == 403


# -- sync -------------------------------------------------------------------------------------


def test_sync_status_request_and_switch(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient]
) -> None:
    client = api_for(alice)
    account_id = mailbox["account"].pk
    status = client.get(f"/accounts/{account_id}/sync").json()
    assert status["account"] == account_id
    assert status["state"] == "idle"
    assert status["sync_enabled"] is True
    assert status["message_count"] == 7
    assert status["quarantined"] == 0
    assert status["last_error"] is None
    assert status["last_success_at"] is not None
    assert 0 <= status["lag_seconds"] < 60
    assert status["watched"] is False
    assert status["progress"]["done"] == status["progress"]["total"]

    requested = client.post(f"/accounts/{account_id}/sync")
    assert requested.status_code == 202
    assert requested.json()["sync_requested_at"] is not None

    off = put(client, f"/accounts/{account_id}/sync", {"enabled": False})
    assert off.status_code == 200
    assert off.json()["state"] == "disabled"
    assert off.json()["sync_enabled"] is False
    assert client.post(f"/accounts/{account_id}/sync").status_code == 409
    on = put(client, f"/accounts/{account_id}/sync", {"enabled": True})
    assert on.json()["state"] == "idle"
    assert put(client, f"/accounts/{account_id}/sync", {}).status_code == 422


def test_a_sync_request_made_during_a_run_is_kept(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient], dovecot: Dovecot
) -> None:
    client = api_for(alice)
    account = mailbox["account"]
    dovecot.append(mailbox["user"].name, "INBOX", plain_mail("During a run"))
    requested: list[str] = []

    def progress(done: int, total: int) -> None:
        if not requested:
            response = client.post(f"/accounts/{account.pk}/sync")
            requested.append(response.json()["sync_requested_at"])

    do_sync_account(account, progress=progress)
    status = client.get(f"/accounts/{account.pk}/sync").json()
    # The watcher runs another pass for it: the request must outlive this run.
    assert status["sync_requested_at"] == requested[0]
    assert status["progress"] == {"done": 1, "total": 1}
    assert status["message_count"] == 8


def test_a_failed_sync_shows_its_diagnosis_in_the_status(
    dovecot: Dovecot, dovecot_user: DovecotUser, alice: User, api_for: Callable[[User], ApiClient]
) -> None:
    account = make_account(dovecot, dovecot_user, owner=alice, password="wrong-password")
    with pytest.raises(Exception) as raised:
        do_sync_account(account)
    assert type(raised.value).__name__ == "AuthError"
    status = api_for(alice).get(f"/accounts/{account.pk}/sync").json()
    assert status["state"] == "error"
    assert status["last_error"]["code"] == "auth_failed"
    assert status["last_error"]["message"]
    assert status["last_success_at"] is None
    assert status["lag_seconds"] is None


# -- quarantine ----------------------------------------------------------------------------


def test_quarantine_lists_and_reprocesses(
    mailbox: dict[str, Any], alice: User, api_for: Callable[[User], ApiClient]
) -> None:
    client = api_for(alice)
    account_id = mailbox["account"].pk
    broken = mailbox["ids"]["attachment"]
    # As the extraction records a parse failure (a parser bug, since fixed).
    Message.objects.filter(pk=broken).update(
        parse_state=ParseState.QUARANTINED, parse_error="ValueError: boom"
    )
    listed = client.get("/quarantine", account=account_id).json()
    assert [(i["id"], i["parse_error"]) for i in listed["items"]] == [(broken, "ValueError: boom")]
    assert listed["next_cursor"] is None
    assert client.get(f"/accounts/{account_id}/sync").json()["quarantined"] == 1

    done = client.post(f"/accounts/{account_id}/quarantine/reprocess")
    assert done.status_code == 200
    assert done.json() == {"processed": 1, "quarantined": 0}
    assert client.get("/quarantine").json()["items"] == []
    detail = client.get(f"/messages/{broken}").json()
    assert detail["parse_state"] == "complete"
    assert detail["parse_error"] == ""
    assert len(detail["attachments"]) == 1
