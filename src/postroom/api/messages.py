"""``/messages``, ``/quarantine`` and ``/accounts/{id}/sync``: the incoming mail.

Everything here needs the *read* right on the message's account
(accounts.permissions); a message of an account the caller cannot read is
"not found", never "forbidden", so ids reveal nothing. Two things need the
*manage* right: switching an account's sync on or off, and re-processing its
quarantine.

Lists use cursor pagination: ``next_cursor`` is an opaque token for the
(date, id) of the last item, so paging stays stable, without gaps or
repeats, while new mail arrives (it sorts in front of the first page).

Account-level endpoints (sync status, sync trigger) answer 403 to a user
who sees the account but may not read it (send right only), as the account
endpoints do for managing.

:func:`message_dict` (with :func:`locations_prefetch`) is what
``postroom messages list`` prints too.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import mimetypes
import re
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.http import FileResponse, HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from postroom.accounts.actions import SideResult
from postroom.accounts.models import EmailAccount, Right
from postroom.accounts.permissions import accounts_for, has_right
from postroom.api.common import (
    ApiError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    current_user,
    managed_account,
    visible_account,
)
from postroom.api.schemas import ErrorOut, FieldErrorsOut
from postroom.incoming import leases
from postroom.incoming.actions import (
    describe_mail_error,
    do_reprocess_quarantined,
    do_request_sync,
    do_set_message_flags,
    do_set_sync_enabled,
    status_for,
)
from postroom.incoming.blobs import blob_path
from postroom.incoming.models import (
    Attachment,
    Message,
    MessageLocation,
    ParseState,
    SyncState,
    SyncStatus,
)
from postroom.mail.errors import MailError
from postroom.mail.mime import sanitize_html

logger = logging.getLogger(__name__)

router = Router()

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


# -- errors ---------------------------------------------------------------------


class MailServerError(ApiError):
    """The account's mail server refused or failed: 502, with the diagnosis's words."""

    status = 502

    def __init__(self, side: SideResult) -> None:
        super().__init__(side.message)
        self.code = side.code or "error"
        self.fix = side.fix

    def body(self) -> dict[str, Any]:
        return {**super().body(), "fix": self.fix}


# -- schemas --------------------------------------------------------------------


class MailErrorOut(ErrorOut):
    fix: str = Field(description="What to do about it")


class SenderOut(Schema):
    name: str
    email: str


class FlagsOut(Schema):
    seen: bool
    flagged: bool
    answered: bool


class LocationOut(Schema):
    folder: str
    uid: int


class MessageOut(Schema):
    id: int
    account: int
    message_id: str
    subject: str
    from_: SenderOut = Field(alias="from")
    to: list[str]
    cc: list[str]
    date: datetime | None
    size: int
    flags: FlagsOut
    folders: list[LocationOut] = Field(
        description="Where the message is on the server; one message may be in several folders"
    )
    has_attachments: bool
    parse_state: str = Field(description="headers, complete or quarantined")
    thread: int | None


class MessagePageOut(Schema):
    items: list[MessageOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end")


class AttachmentOut(Schema):
    id: int
    filename: str
    content_type: str
    size: int
    inline: bool
    url: str | None = Field(description="Download URL; null when the content was not kept")


class DroppedAttachmentOut(Schema):
    filename: str | None
    content_type: str
    size: int


class MessageDetailOut(MessageOut):
    in_reply_to: str
    references: list[str]
    text: str
    html: str = Field(description="Sanitised HTML; empty when the message has none")
    blocked_remote_images: int = Field(description="Remote images removed from html")
    allow_remote_images: bool
    attachments: list[AttachmentOut]
    dropped_attachments: list[DroppedAttachmentOut] = Field(
        description="Attachments over the account's size limit, recorded but not stored"
    )
    parse_error: str


class QuarantinedOut(MessageOut):
    parse_error: str


class QuarantinePageOut(Schema):
    items: list[QuarantinedOut]
    next_cursor: str | None


class MessageFilters(Schema):
    account: int | None = Field(None, description="Only this account's messages")
    folder: str | None = Field(None, description="Only messages in this folder")
    q: str | None = Field(None, description="Sender (name or address) or subject contains")
    from_: str | None = Field(None, alias="from", description="Sender name or address contains")
    subject: str | None = Field(None, description="Subject contains")
    unread: bool | None = Field(None, description="true: only unread, false: only read")
    thread: int | None = Field(None, description="Only messages of this thread")
    cursor: str | None = Field(None, description="next_cursor of the previous page")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class QuarantineFilters(Schema):
    account: int | None = None
    cursor: str | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class FlagsIn(Schema):
    """Only the flags sent change; null or omitted leaves a flag as it is."""

    seen: bool | None = None
    flagged: bool | None = None
    answered: bool | None = None


class ProgressOut(Schema):
    done: int
    total: int


class LastErrorOut(Schema):
    code: str
    message: str


class SyncStatusOut(Schema):
    account: int
    state: str = Field(description="idle, syncing, auth_error, error or disabled")
    sync_enabled: bool
    progress: ProgressOut = Field(description="Of the run in progress (or the last one)")
    last_success_at: datetime | None
    last_error: LastErrorOut | None = Field(description="null after a successful run")
    message_count: int
    quarantined: int
    lag_seconds: float | None = Field(
        description="Seconds since the last successful sync; null if there was none"
    )
    sync_requested_at: datetime | None
    last_run_started_at: datetime | None
    watched: bool = Field(description="Whether a running watcher holds the account")


class SyncSwitchIn(Schema):
    enabled: bool


class ReprocessOut(Schema):
    processed: int
    quarantined: int = Field(description="Still quarantined afterwards")


# -- what the API and the CLI show ----------------------------------------------


def locations_prefetch() -> Prefetch[Any]:
    """The current ledger rows of each message with their folder, in folder order.

    Rows of a previous UIDVALIDITY (kept only while a folder is re-read) are
    left out: their UIDs mean nothing on the server any more.
    """
    return Prefetch(
        "locations",
        queryset=MessageLocation.objects.filter(uidvalidity=F("folder__uidvalidity"))
        .select_related("folder")
        .order_by("folder__name", "uid"),
    )


def message_dict(message: Message) -> dict[str, Any]:
    """One message as the list shows it (prefetch :func:`locations_prefetch` for lists)."""
    return {
        "id": message.pk,
        "account": message.account_id,
        "message_id": message.message_id,
        "subject": message.subject,
        "from": {"name": message.from_name, "email": message.from_email},
        "to": list(message.to),
        "cc": list(message.cc),
        "date": message.date,
        "size": message.size,
        "flags": {"seen": message.seen, "flagged": message.flagged, "answered": message.answered},
        "folders": [
            {"folder": location.folder.name, "uid": location.uid}
            for location in message.locations.all()
        ],
        "has_attachments": message.has_attachments,
        "parse_state": message.parse_state,
        "thread": message.thread_id,
    }


def _attachment_url(attachment: Attachment) -> str | None:
    if attachment.blob_id is None:
        return None
    return reverse(
        "api:message_attachment",
        kwargs={"message_id": attachment.message_id, "attachment_id": attachment.pk},
    )


def message_detail_dict(message: Message) -> dict[str, Any]:
    attachments = list(message.attachments.order_by("pk"))
    # Inline images (cid:) point at their download URL; remote images stay
    # blocked until the user allows them for this message.
    cid_map: dict[str, str] = {}
    for attachment in attachments:
        url = _attachment_url(attachment)
        if attachment.content_id and url:
            cid_map[attachment.content_id] = url
    sanitized = sanitize_html(
        message.html, allow_remote_images=message.allow_remote_images, cid_map=cid_map
    )
    return {
        **message_dict(message),
        "in_reply_to": message.in_reply_to,
        "references": list(message.references),
        "text": message.text,
        "html": sanitized.html if message.html else "",
        "blocked_remote_images": sanitized.blocked_remote_images,
        "allow_remote_images": message.allow_remote_images,
        "attachments": [
            {
                "id": a.pk,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "inline": a.inline,
                "url": _attachment_url(a),
            }
            for a in attachments
        ],
        "dropped_attachments": list(message.dropped_attachments),
        "parse_error": message.parse_error,
    }


def sync_status_dict(account: EmailAccount, status: SyncStatus | None = None) -> dict[str, Any]:
    """The sync status page's figures (E2) for ``account``."""
    status = status or status_for(account)
    messages = Message.objects.filter(account=account)
    switched_on = account.sync_enabled and account.incoming_enabled
    last_success = status.last_success_at
    return {
        "account": account.pk,
        "state": status.state if switched_on else SyncState.DISABLED,
        "sync_enabled": account.sync_enabled,
        "progress": {"done": status.progress_done, "total": status.progress_total},
        "last_success_at": last_success,
        "last_error": (
            {"code": status.last_error_code, "message": status.last_error_message}
            if status.last_error_code
            else None
        ),
        "message_count": messages.count(),
        "quarantined": messages.filter(parse_state=ParseState.QUARANTINED).count(),
        "lag_seconds": (
            round((timezone.now() - last_success).total_seconds(), 3) if last_success else None
        ),
        "sync_requested_at": status.sync_requested_at,
        "last_run_started_at": status.last_run_started_at,
        "watched": leases.current_holder(account.pk) is not None,
    }


# -- look-ups -------------------------------------------------------------------


def readable_account(user: AbstractBaseUser, account_id: int) -> EmailAccount:
    """The account if ``user`` may read its mail: 404 when invisible, 403 when only visible."""
    account = visible_account(user, account_id)
    if not has_right(user, account, Right.READ):
        raise Forbidden(_("You do not have the right to read this account's mail."))
    return account


def readable_messages(user: AbstractBaseUser) -> QuerySet[Message]:
    return Message.objects.filter(account_id__in=accounts_for(user, Right.READ).values("pk"))


def _message(user: AbstractBaseUser, message_id: int) -> Message:
    message = (
        readable_messages(user)
        .select_related("account")
        .prefetch_related(locations_prefetch())
        .filter(pk=message_id)
        .first()
    )
    if message is None:
        raise NotFound(_("No message with this id."))
    return message


# -- cursor pagination ----------------------------------------------------------

_NEWEST_FIRST = (F("date").desc(nulls_last=True), F("pk").desc())


def _encode_cursor(message: Message) -> str:
    key = [message.date.isoformat() if message.date else None, message.pk]
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime | None, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        date_text, pk = json.loads(raw)
        date = datetime.fromisoformat(date_text) if date_text is not None else None
        if not isinstance(pk, int) or isinstance(pk, bool) or (date and date.tzinfo is None):
            raise ValueError(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidInput(
            {"cursor": [_("This cursor is not valid; start again without it.")]}
        ) from exc
    return date, pk


def _page(
    messages: QuerySet[Message], cursor: str | None, limit: int
) -> tuple[list[Message], str | None]:
    """One page newest first, after ``cursor``; and the cursor of the page after it.

    Keyset pagination on (date, id), messages without a date last: an offset
    would skip or repeat messages as new mail arrives between two pages.
    """
    if cursor:
        date, pk = _decode_cursor(cursor)
        if date is None:
            messages = messages.filter(date__isnull=True, pk__lt=pk)
        else:
            messages = messages.filter(
                Q(date__lt=date) | Q(date=date, pk__lt=pk) | Q(date__isnull=True)
            )
    rows = list(messages.order_by(*_NEWEST_FIRST)[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, _encode_cursor(rows[-1])
    return rows, None


# -- messages -------------------------------------------------------------------


@router.get(
    "/messages",
    response={200: MessagePageOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    by_alias=True,
    tags=["messages"],
    summary="List messages, newest first (cursor pagination, filters)",
)
def list_messages(request: HttpRequest, filters: Query[MessageFilters]) -> dict[str, Any]:
    user = current_user(request)
    messages = readable_messages(user)
    if filters.account is not None:
        messages = messages.filter(account=readable_account(user, filters.account))
    if filters.folder:
        messages = messages.filter(
            Exists(
                MessageLocation.objects.filter(
                    message=OuterRef("pk"),
                    folder__name=filters.folder,
                    uidvalidity=F("folder__uidvalidity"),
                )
            )
        )
    if filters.q:
        messages = messages.filter(
            Q(subject__icontains=filters.q)
            | Q(from_name__icontains=filters.q)
            | Q(from_email__icontains=filters.q)
        )
    if filters.from_:
        messages = messages.filter(
            Q(from_name__icontains=filters.from_) | Q(from_email__icontains=filters.from_)
        )
    if filters.subject:
        messages = messages.filter(subject__icontains=filters.subject)
    if filters.unread is not None:
        messages = messages.filter(seen=not filters.unread)
    if filters.thread is not None:
        messages = messages.filter(thread_id=filters.thread)
    rows, next_cursor = _page(
        messages.prefetch_related(locations_prefetch()), filters.cursor, filters.limit
    )
    return {"items": [message_dict(m) for m in rows], "next_cursor": next_cursor}


@router.get(
    "/messages/{message_id}",
    response={200: MessageDetailOut, 404: ErrorOut},
    by_alias=True,
    tags=["messages"],
    summary="One message: text, sanitised HTML (remote images blocked), attachments",
)
def get_message(request: HttpRequest, message_id: int) -> dict[str, Any]:
    return message_detail_dict(_message(current_user(request), message_id))


_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")


def _binary_response(media_type: str) -> dict[str, Any]:
    content = {media_type: {"schema": {"type": "string", "format": "binary"}}}
    return {"responses": {200: {"description": "The file, as an attachment", "content": content}}}


def safe_download_name(name: str, fallback: str) -> str:
    """``name`` when it is a bare, printable file name, else ``fallback``.

    Names are made safe when the message is parsed (``postroom.mail.mime``
    keeps only the last path component and drops control and bidi
    characters); this refuses a stored name that is not, rather than
    cleaning it a second way. Django encodes the header itself (quotes,
    RFC 6266 ``filename*`` for non-ASCII).
    """
    bad = any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in name)
    if not name or bad or "/" in name or "\\" in name or name.strip(". ") != name:
        return fallback
    return name


def _download_name(attachment: Attachment) -> str:
    extension = mimetypes.guess_extension(attachment.content_type, strict=False) or ".bin"
    return safe_download_name(attachment.filename, f"attachment-{attachment.pk}{extension}")


def download_response(path: Path, *, filename: str, content_type: str) -> FileResponse:
    """A file from the blob store as a download that no browser renders or sniffs."""
    if not _TOKEN_CHARS.match(content_type):
        content_type = "application/octet-stream"
    response = FileResponse(
        open(path, "rb"),
        as_attachment=True,
        filename=filename,
        content_type=content_type,
    )
    # Mail content is hostile: never let a browser guess a type or run it in our origin.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# Kept for postroom.web.views.mail, which imported these before they were public.
_download = download_response
_safe_filename = safe_download_name


def _blob_file(sha256: str) -> Path:
    path = blob_path(sha256)
    if not path.exists():
        logger.error("blob %s is referenced but missing from the store", sha256)
        raise NotFound(_("The stored content of this message is missing."))
    return path


@router.get(
    "/messages/{message_id}/raw",
    response={200: None, 404: ErrorOut},
    openapi_extra=_binary_response("message/rfc822"),
    tags=["messages"],
    summary="The raw message as received (message/rfc822)",
)
def get_raw(request: HttpRequest, message_id: int) -> FileResponse:
    message = _message(current_user(request), message_id)
    return download_response(
        _blob_file(message.blob_id),
        filename=f"message-{message.pk}.eml",
        content_type="message/rfc822",
    )


@router.get(
    "/messages/{message_id}/attachments/{attachment_id}",
    response={200: None, 404: ErrorOut},
    openapi_extra=_binary_response("application/octet-stream"),
    url_name="message_attachment",
    tags=["messages"],
    summary="Download one attachment",
)
def get_attachment(request: HttpRequest, message_id: int, attachment_id: int) -> FileResponse:
    message = _message(current_user(request), message_id)
    attachment = message.attachments.filter(pk=attachment_id).first()
    if attachment is None or attachment.blob_id is None:
        raise NotFound(_("No attachment with this id."))
    return download_response(
        _blob_file(attachment.blob_id),
        filename=_download_name(attachment),
        content_type=attachment.content_type.strip().lower(),
    )


@router.patch(
    "/messages/{message_id}/flags",
    response={200: MessageOut, 404: ErrorOut, 422: FieldErrorsOut, 502: MailErrorOut},
    by_alias=True,
    tags=["messages"],
    summary="Mark read/unread, flagged, answered: here and on the mail server",
)
def set_flags(request: HttpRequest, message_id: int, payload: FlagsIn) -> dict[str, Any]:
    # The read right is enough: flags change only the user's view of the
    # mailbox (read, starred, answered), never its content, and reading a
    # message in any mail client marks it \Seen too.
    user = current_user(request)
    message = _message(user, message_id)
    changes = payload.model_dump(exclude_none=True)
    if not changes:
        raise InvalidInput({"__all__": [_("Give at least one of seen, flagged and answered.")]})
    try:
        do_set_message_flags(message, actor=user, **changes)
    except MailError as exc:
        # The server is written first: nothing changed here either.
        raise MailServerError(describe_mail_error(message.account, exc)) from exc
    return message_dict(message)


# -- sync -------------------------------------------------------------------------


@router.get(
    "/accounts/{account_id}/sync",
    response={200: SyncStatusOut, 403: ErrorOut, 404: ErrorOut},
    tags=["sync"],
    summary="Sync status: state, progress, last success, last error, message count, lag",
)
def get_sync_status(request: HttpRequest, account_id: int) -> dict[str, Any]:
    return sync_status_dict(readable_account(current_user(request), account_id))


@router.post(
    "/accounts/{account_id}/sync",
    response={202: SyncStatusOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    tags=["sync"],
    summary="Sync now: ask the watcher for a pass (202; the request does not wait for it)",
    description=(
        "Records a sync request and returns at once with the status. The watcher that "
        "holds the account (``postroom run`` or ``postroom watch``) starts a pass within "
        "seconds; poll ``GET /accounts/{id}/sync`` for progress and the result. If "
        "``watched`` is false no watcher is running: the request is served when one "
        "starts, or run ``postroom sync NAME`` to sync in the foreground. The read right "
        "is enough: a sync only fetches what the server already holds."
    ),
)
def request_sync(request: HttpRequest, account_id: int) -> Status[dict[str, Any]]:
    account = readable_account(current_user(request), account_id)
    if not (account.incoming_enabled and account.sync_enabled):
        raise Conflict(_("Sync is switched off for this account; switch it on first."))
    if account.awaiting_password:
        raise Conflict(_("This account is awaiting its password; nothing can be synced."))
    status = do_request_sync(account)
    return Status(202, sync_status_dict(account, status))


@router.put(
    "/accounts/{account_id}/sync",
    response={200: SyncStatusOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    tags=["sync"],
    summary="Switch the account's sync on or off (manage right)",
)
def set_sync_enabled(
    request: HttpRequest, account_id: int, payload: SyncSwitchIn
) -> dict[str, Any]:
    user = current_user(request)
    account = managed_account(user, account_id)
    do_set_sync_enabled(account, payload.enabled, actor=user)
    return sync_status_dict(account)


# -- quarantine ---------------------------------------------------------------------


@router.get(
    "/quarantine",
    response={200: QuarantinePageOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    by_alias=True,
    tags=["quarantine"],
    summary="Messages that could not be parsed: kept raw, with the error",
)
def list_quarantine(request: HttpRequest, filters: Query[QuarantineFilters]) -> dict[str, Any]:
    user = current_user(request)
    messages = readable_messages(user).filter(parse_state=ParseState.QUARANTINED)
    if filters.account is not None:
        messages = messages.filter(account=readable_account(user, filters.account))
    rows, next_cursor = _page(
        messages.prefetch_related(locations_prefetch()), filters.cursor, filters.limit
    )
    return {
        "items": [{**message_dict(m), "parse_error": m.parse_error} for m in rows],
        "next_cursor": next_cursor,
    }


@router.post(
    "/accounts/{account_id}/quarantine/reprocess",
    response={200: ReprocessOut, 403: ErrorOut, 404: ErrorOut},
    tags=["quarantine"],
    summary="Parse the account's quarantined messages again (manage right)",
)
def reprocess(request: HttpRequest, account_id: int) -> dict[str, Any]:
    account = managed_account(current_user(request), account_id)
    report = do_reprocess_quarantined(account, actor=current_user(request))
    processed, remaining = report.processed, report.quarantined
    return {"processed": processed, "quarantined": remaining}
