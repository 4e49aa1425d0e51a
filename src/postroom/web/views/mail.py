"""Mailbox pages: accounts, messages and threads per folder, one message, its files.

Everything needs the *read* right on the message's account: an account or
message the user cannot see is 404, one they see without the read right
(send only) is 403, exactly like the account pages.

Opening a message marks it read, here and on the server, and only then. The
systems our users come from set \\Seen behind their back (to remember what
they fetched), so sync and the API never touch it; but a person opening a
message in Postroom expects what every mail client does. The page therefore
sends its own POST once it is shown in a browser (``hx-trigger="load"``):
that is the user's act, made from the user's session, through the same
``do_set_message_flags`` as the "Mark read" button, and it is never done by
a GET, so link previews, prefetching and crawlers mark nothing read.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Exists, F, OuterRef, Q
from django.http import FileResponse, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from postroom.accounts.actions import SideResult
from postroom.accounts.models import Right
from postroom.accounts.permissions import accounts_for, has_right, visible_accounts
from postroom.incoming.actions import (
    describe_mail_error,
    do_allow_remote_images,
    do_set_message_flags,
)
from postroom.incoming.models import (
    FolderState,
    Message,
    MessageLocation,
    ParseState,
    Thread,
)
from postroom.mail.errors import MailError
from postroom.mail.mime import sanitize_html
from postroom.web.downloads import attachment_filename, download_response, stored_file
from postroom.web.forms import MailSearchForm
from postroom.web.mailbox import NEWEST_FIRST, folder_names, in_folder, inbox_first, search
from postroom.web.views.common import AuthedRequest, account_or_404

PER_PAGE = 50
# The source view shows this much; the download always has all of it.
RAW_PREVIEW_BYTES = 512 * 1024
FLAG_FIELDS = ("seen", "flagged")


def message_or_404(request: AuthedRequest, pk: int) -> Message:
    """The message if the user may read it: 404 when its account is invisible, else 403."""
    message = get_object_or_404(
        Message.objects.select_related("account", "thread").filter(
            account__in=visible_accounts(request.user)
        ),
        pk=pk,
    )
    if not has_right(request.user, message.account, Right.READ):
        raise PermissionDenied
    return message


# -- lists ----------------------------------------------------------------------


@login_required
@require_GET
def mail_home(request: AuthedRequest) -> HttpResponse:
    """Every account whose mail the user may read, with its folders and counts."""
    accounts = list(
        accounts_for(request.user, Right.READ).filter(is_template=False).order_by("name")
    )
    ids = [a.pk for a in accounts]
    counts = {
        row["account_id"]: row
        for row in Message.objects.filter(account_id__in=ids)
        .order_by()
        .values("account_id")
        .annotate(total=Count("id"), unread=Count("id", filter=Q(seen=False)))
    }
    folders: dict[int, list[str]] = {}
    for account_id, name in FolderState.objects.filter(account_id__in=ids).values_list(
        "account_id", "name"
    ):
        folders.setdefault(account_id, []).append(name)
    rows = [
        {
            "account": a,
            "folders": inbox_first(folders.get(a.pk, [])),
            "total": counts.get(a.pk, {}).get("total", 0),
            "unread": counts.get(a.pk, {}).get("unread", 0),
        }
        for a in accounts
    ]
    return render(request, "web/mail/home.html", {"rows": rows})


def _search_form(request: AuthedRequest) -> tuple[MailSearchForm, dict[str, Any]]:
    form = MailSearchForm(request.GET)
    if not form.is_valid():
        return form, {}
    return form, form.cleaned_data


@login_required
@require_GET
def mail_messages(request: AuthedRequest, pk: int) -> HttpResponse:
    """One account's messages, newest first: all, one folder's, or one thread's; searchable."""
    account = account_or_404(request, pk, Right.READ)
    form, data = _search_form(request)
    folder = data.get("folder") or ""
    q = data.get("q") or ""
    thread: Thread | None = None
    rows = Message.objects.filter(account=account)
    if form.errors:
        rows = rows.none()  # a malformed query matches nothing rather than everything
    if data.get("thread"):
        thread = get_object_or_404(Thread, pk=data["thread"], account=account)
        rows = rows.filter(thread=thread)
    if folder:
        rows = in_folder(rows, folder)
    if q:
        rows = search(rows, q)
    page = Paginator(rows.order_by(*NEWEST_FIRST), PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "web/mail/messages.html",
        {
            "account": account,
            "folders": folder_names(account.pk),
            "folder": folder,
            "q": q,
            "thread": thread,
            "form": form,
            "page": page,
            "view": "messages",
        },
    )


@login_required
@require_GET
def mail_threads(request: AuthedRequest, pk: int) -> HttpResponse:
    """One account's threads, latest activity first; a thread matches when a message does."""
    account = account_or_404(request, pk, Right.READ)
    form, data = _search_form(request)
    folder = data.get("folder") or ""
    q = data.get("q") or ""
    threads = Thread.objects.filter(account=account)
    if form.errors:
        threads = threads.none()
    members = Message.objects.filter(thread=OuterRef("pk"))
    if folder:
        threads = threads.filter(Exists(in_folder(members, folder)))
    if q:
        threads = threads.filter(Exists(search(members, q)))
    threads = threads.annotate(unread=Count("messages", filter=Q(messages__seen=False))).order_by(
        F("last_message_at").desc(nulls_last=True), "-pk"
    )
    page = Paginator(threads, PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "web/mail/threads.html",
        {
            "account": account,
            "folders": folder_names(account.pk),
            "folder": folder,
            "q": q,
            "form": form,
            "page": page,
            "view": "threads",
        },
    )


# -- one message ------------------------------------------------------------------


def _csp(allow_remote_images: bool) -> str:
    """A second layer under the sanitiser: even a tag it missed cannot run or phone home.

    Scripts only from our own static files (htmx; the base page has no inline
    script), no plugins, frames or foreign form targets, and images only from
    us (attachments, cid: images) and data: URLs unless the user allowed
    remote images for this message. Styles stay open: mail layout lives in
    style attributes.
    """
    images = "'self' data:" + (" https: http:" if allow_remote_images else "")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src {images}; object-src 'none'; frame-src 'none'; base-uri 'none'; "
        "form-action 'self'"
    )


def _render_message(
    request: AuthedRequest, message: Message, *, flag_error: SideResult | None = None
) -> HttpResponse:
    attachments = list(message.attachments.order_by("pk"))
    # Inline (cid:) images point at our download URL; nothing else relative survives.
    cid_map = {
        a.content_id: reverse("web:mail_attachment", args=[message.pk, a.pk])
        for a in attachments
        if a.content_id and a.blob_id
    }
    sanitized = (
        sanitize_html(
            message.html, allow_remote_images=message.allow_remote_images, cid_map=cid_map
        )
        if message.html
        else None
    )
    locations = (
        MessageLocation.objects.filter(message=message, uidvalidity=F("folder__uidvalidity"))
        .select_related("folder")
        .order_by("folder__name")
    )
    response = render(
        request,
        "web/mail/message.html",
        {
            "message": message,
            "account": message.account,
            # Only ever the sanitiser's output reaches the template's |safe.
            "sanitized_html": sanitized.html if sanitized else "",
            "blocked_remote_images": sanitized.blocked_remote_images if sanitized else 0,
            "attachments": attachments,
            "folders": sorted({loc.folder.name for loc in locations}),
            "quarantined": message.parse_state == ParseState.QUARANTINED,
            "extracted": message.parse_state == ParseState.COMPLETE,
            "can_manage": has_right(request.user, message.account, Right.MANAGE),
            "mark_read_on_open": not message.seen,
            "flag_error": flag_error,
        },
    )
    response["Content-Security-Policy"] = _csp(message.allow_remote_images)
    return response


@login_required
@require_GET
def mail_message(request: AuthedRequest, pk: int) -> HttpResponse:
    return _render_message(request, message_or_404(request, pk))


@login_required
@require_POST
def mail_message_flags(request: AuthedRequest, pk: int) -> HttpResponse:
    """Mark read/unread, flag/unflag: on the server first, then here (B15).

    htmx gets the buttons back (with the server's diagnosis when it refused);
    a plain POST is redirected to the message.
    """
    message = message_or_404(request, pk)
    changes = {
        name: request.POST[name] == "1"
        for name in FLAG_FIELDS
        if request.POST.get(name) in ("0", "1")
    }
    if not changes:
        return HttpResponseBadRequest(_("Nothing to change."))
    error: SideResult | None = None
    try:
        do_set_message_flags(message, actor=request.user, **changes)
    except MailError as exc:
        # The server is written first: when it refuses, nothing changed here either.
        error = describe_mail_error(message.account, exc)
    if request.htmx:
        return render(request, "web/mail/_flags.html", {"message": message, "flag_error": error})
    if error is not None:
        messages.error(
            request,
            _("The mail server refused the change: %(message)s %(fix)s")
            % {"message": error.message, "fix": error.fix},
        )
    return redirect("web:mail_message", pk=message.pk)


@login_required
@require_POST
def mail_message_remote_images(request: AuthedRequest, pk: int) -> HttpResponse:
    message = message_or_404(request, pk)
    do_allow_remote_images(message, actor=request.user)
    return redirect("web:mail_message", pk=message.pk)


@login_required
@require_GET
def mail_message_source(request: AuthedRequest, pk: int) -> HttpResponse:
    """The raw message as text in the page (the first part of a very large one)."""
    message = message_or_404(request, pk)
    with stored_file(message.blob_id).open("rb") as handle:
        head = handle.read(RAW_PREVIEW_BYTES + 1)
    return render(
        request,
        "web/mail/source.html",
        {
            "message": message,
            "account": message.account,
            # Raw mail is mostly ASCII; anything else shows as U+FFFD, the download is exact.
            "source": head[:RAW_PREVIEW_BYTES].decode("utf-8", errors="replace"),
            "truncated": len(head) > RAW_PREVIEW_BYTES,
        },
    )


@login_required
@require_GET
def mail_message_download(request: AuthedRequest, pk: int) -> FileResponse:
    message = message_or_404(request, pk)
    return download_response(
        stored_file(message.blob_id),
        filename=f"message-{message.pk}.eml",
        content_type="message/rfc822",
    )


@login_required
@require_GET
def mail_attachment(request: AuthedRequest, pk: int, attachment_pk: int) -> FileResponse:
    message = message_or_404(request, pk)
    attachment = get_object_or_404(message.attachments, pk=attachment_pk, blob__isnull=False)
    assert attachment.blob_id is not None  # for the type checker: filtered above
    return download_response(
        stored_file(attachment.blob_id),
        filename=attachment_filename(attachment),
        content_type=attachment.content_type.strip().lower(),
    )
