"""Reply, reply-all and forward from a message (D5); mail composed on a record (D4).

Rights, as in the API:

* the form: the *read* right on the message's account (404 when the account
  is invisible, 403 when it is only visible), or a record the user may read;
* sending: the *send* right on the chosen account (404/403 the same way)
  and, when the mail joins a record, the *write* right on that record.

The form starts from :func:`postroom.records.compose.reply_draft` (or the
record's contact and reference) and everything stays editable, the quote
included; the text is sent as shown, so ``do_reply`` is called with
``quote=False``. After queueing the user lands on the record, else on the
outbox item, with a success message.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from postroom.accounts.models import EmailAccount, Right
from postroom.mail.mime.addresses import Address, parse_address_list
from postroom.mail.mime.reply import ReplyMode
from postroom.outgoing.actions import AccountCannotSend, InvalidMessage, RecipientsSuppressed
from postroom.outgoing.models import OutboxItem
from postroom.records.compose import (
    default_account,
    do_reply,
    do_send_from_record,
    forwardable_attachments,
    record_of,
    record_subject,
    reply_draft,
    sendable_accounts,
)
from postroom.records.models import Record, RecordLink
from postroom.records.permissions import can_write_record, records_for
from postroom.web.views.common import AuthedRequest, account_or_404
from postroom.web.views.mail import message_or_404
from postroom.web.views.records import record_or_404

MODE_TITLES = {
    ReplyMode.REPLY: gettext_lazy("Reply"),
    ReplyMode.REPLY_ALL: gettext_lazy("Reply all"),
    ReplyMode.FORWARD: gettext_lazy("Forward"),
}


class ComposeForm(forms.Form):
    """One message to send; address fields take ``addr`` or ``Name <addr>``, comma-separated."""

    account = forms.TypedChoiceField(label=gettext_lazy("Send from"), coerce=int)
    to = forms.CharField(label=gettext_lazy("To"), required=False)
    cc = forms.CharField(label=gettext_lazy("Cc"), required=False)
    bcc = forms.CharField(label=gettext_lazy("Bcc"), required=False)
    subject = forms.CharField(label=gettext_lazy("Subject"), required=False, max_length=998)
    text = forms.CharField(
        label=gettext_lazy("Message"),
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 18, "dir": "auto"}),
    )
    include_attachments = forms.BooleanField(
        label=gettext_lazy("Include the original's attachments"), required=False
    )
    # Made when the form is shown: sending the same form twice queues one message.
    once = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(
        self, *args: Any, accounts: list[EmailAccount], forward: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [  # type: ignore[attr-defined]
            (a.pk, f"{a.name} <{a.email}>") for a in accounts
        ]
        if not forward:
            del self.fields["include_attachments"]

    def _addresses(self, name: str) -> list[str]:
        value: str = self.cleaned_data.get(name) or ""
        if not value.strip():
            return []
        found = [a for a in parse_address_list(value) if "@" in a.email]
        if not found:
            raise forms.ValidationError(_("Write addresses as addr or Name <addr>, with commas."))
        return [str(a) for a in found]

    def clean_to(self) -> list[str]:
        return self._addresses("to")

    def clean_cc(self) -> list[str]:
        return self._addresses("cc")

    def clean_bcc(self) -> list[str]:
        return self._addresses("bcc")

    def idempotency_key(self) -> str | None:
        once = self.cleaned_data.get("once") or ""
        return f"web-compose:{once}" if once else None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("to") or data.get("cc") or data.get("bcc")) and not self.errors:
            raise forms.ValidationError(_("Give at least one recipient."))
        return data


def _field_of(error_field: str) -> str | None:
    """The form field an ``InvalidMessage`` field (``to[0]``, ``subject``...) belongs to."""
    name = error_field.split("[", 1)[0]
    return name if name in ("to", "cc", "bcc", "subject", "text") else None


def _done(request: AuthedRequest, item: OutboxItem, record: Record | None) -> HttpResponse:
    messages.success(
        request,
        _("Your message was queued and will be sent from %(account)s.")
        % {"account": item.account.name},
    )
    if record is not None:
        try:
            return redirect(reverse("web:record_detail", args=[record.pk]))
        except NoReverseMatch:  # the record pages are not installed
            pass
    return redirect("web:outbox_item", item.pk)


def _sending_account(request: AuthedRequest, form: ComposeForm) -> EmailAccount | None:
    """The chosen account, checked: 404 if invisible, 403 without the send right."""
    raw = form.data.get("account", "")
    if not str(raw).isdigit():
        return None
    return account_or_404(request, int(raw), Right.SEND)


def _queue_errors(form: ComposeForm, send: Any) -> OutboxItem | None:
    """Run ``send``; put what the outbox refused on the form."""
    try:
        item: OutboxItem = send()
    except InvalidMessage as exc:
        form.add_error(_field_of(exc.field), f"{exc.field}: {exc.reason}")
    except RecipientsSuppressed as exc:
        form.add_error(None, str(exc))
    except AccountCannotSend as exc:
        form.add_error("account", str(exc))
    else:
        return item
    return None


def _linked_record(request: AuthedRequest, message_pk: int) -> Record | None:
    """``?record=`` names the record to reply in (one the message is on and the user reads)."""
    raw = request.GET.get("record") or request.POST.get("record") or ""
    if not raw.isdigit():
        return None
    record = records_for(request.user).filter(pk=int(raw)).first()
    if record is None or not RecordLink.objects.filter(record=record, message_id=message_pk):
        raise Http404(_("No such record."))
    return record


@login_required
@require_http_methods(["GET", "POST"])
def mail_reply(request: AuthedRequest, pk: int) -> HttpResponse:
    message = message_or_404(request, pk)
    try:
        mode = ReplyMode(request.GET.get("mode") or request.POST.get("mode") or "reply")
    except ValueError as exc:
        raise Http404(_("Unknown reply mode.")) from exc
    record = _linked_record(request, message.pk) or record_of(message)
    may_write = record is None or can_write_record(request.user, record)
    accounts = sendable_accounts(request.user)
    forward = mode is ReplyMode.FORWARD
    attachments = forwardable_attachments(message) if forward else []

    if request.method == "POST":
        if not may_write:
            raise PermissionDenied
        form = ComposeForm(request.POST, accounts=accounts, forward=forward)
        account = _sending_account(request, form)
        if account is not None and form.is_valid():
            data = form.cleaned_data
            item = _queue_errors(
                form,
                lambda: do_reply(
                    message,
                    account=account,
                    actor=request.user,
                    mode=mode,
                    text=data["text"],
                    to=data["to"],
                    cc=data["cc"],
                    bcc=data["bcc"],
                    subject=data["subject"],
                    quote=False,
                    include_original_attachments=bool(data.get("include_attachments")),
                    record=record,
                    idempotency_key=form.idempotency_key(),
                ),
            )
            if item is not None:
                return _done(request, item, record)
    else:
        start = reply_draft(message, mode, request.user)
        preferred = default_account(request.user, message.account) if accounts else None
        form = ComposeForm(
            initial={
                "account": preferred.pk if preferred else None,
                "to": ", ".join(start.to),
                "cc": ", ".join(start.cc),
                "subject": start.subject,
                "text": "\n\n" + start.quoted,
                "include_attachments": True,
                "once": uuid.uuid4().hex,
            },
            accounts=accounts,
            forward=forward,
        )
    return render(
        request,
        "web/compose/compose.html",
        {
            "form": form,
            "title": MODE_TITLES[mode],
            "mode": mode.value,
            "message": message,
            "record": record,
            "may_write": may_write,
            "can_send": bool(accounts),
            "attachments": attachments,
            "dropped_attachments": message.dropped_attachments if forward else [],
            "action": reverse("web:mail_reply", args=[message.pk]),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def record_compose(request: AuthedRequest, pk: int) -> HttpResponse:
    record = record_or_404(request, pk, write=True)
    accounts = sendable_accounts(request.user)
    if request.method == "POST":
        form = ComposeForm(request.POST, accounts=accounts)
        account = _sending_account(request, form)
        if account is not None and form.is_valid():
            data = form.cleaned_data
            item = _queue_errors(
                form,
                lambda: do_send_from_record(
                    record,
                    account=account,
                    actor=request.user,
                    to=data["to"],
                    cc=data["cc"],
                    bcc=data["bcc"],
                    subject=data["subject"],
                    text=data["text"],
                    idempotency_key=form.idempotency_key(),
                ),
            )
            if item is not None:
                return _done(request, item, record)
    else:
        preferred = default_account(request.user, record.account) if accounts else None
        form = ComposeForm(
            initial={
                "account": preferred.pk if preferred else None,
                "to": str(Address(record.contact.name, record.contact.email))
                if record.contact
                else "",
                "subject": record_subject(record),
                "once": uuid.uuid4().hex,
            },
            accounts=accounts,
        )
    return render(
        request,
        "web/compose/compose.html",
        {
            "form": form,
            "title": _("Send mail"),
            "mode": "",
            "message": None,
            "record": record,
            "may_write": True,
            "can_send": bool(accounts),
            "attachments": [],
            "dropped_attachments": [],
            "action": reverse("web:record_compose", args=[record.pk]),
        },
    )
