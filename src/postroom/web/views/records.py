"""Records, contacts and record types (B7-B10).

A record is visible when ``records_for`` says so (else 404, like accounts);
changing it needs ``can_write_record`` (else 403). Contacts are visible when
``contacts_for`` says so. Record types are listed to everyone signed in and
changed by users with ``can_manage_record_types``.

Reply, reply-all and forward from a record are someone else's part: the
record page leaves them ``{% block record_actions %}`` (see records/detail.html).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from postroom.accounts.models import Right
from postroom.accounts.permissions import accounts_for
from postroom.records.actions import (
    RecordError,
    do_create_record,
    do_save_record_type,
    do_update_contact,
    do_update_record,
)
from postroom.records.forms import (
    ContactForm,
    RecordEditForm,
    RecordForm,
    RecordTypeForm,
    StatusForm,
    active_users,
    add_record_error,
    contact_for,
)
from postroom.records.labels import status_label
from postroom.records.models import Contact, Record, RecordSource, RecordType
from postroom.records.permissions import (
    can_manage_record_types,
    can_write_contact,
    can_write_record,
    contacts_for,
    records_for,
)
from postroom.records.queries import RecordFilters, filter_records, timeline, with_counts
from postroom.web.views.common import AuthedRequest

PER_PAGE = 50


def record_or_404(request: AuthedRequest, pk: int, *, write: bool = False) -> Record:
    record = (
        records_for(request.user)
        .select_related("type", "owner", "contact", "account")
        .filter(pk=pk)
        .first()
    )
    if record is None:
        raise Http404(_("No such record."))
    if write and not can_write_record(request.user, record):
        raise PermissionDenied
    return record


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@login_required
@require_GET
def record_list(request: AuthedRequest) -> HttpResponse:
    get = request.GET
    filters = RecordFilters(
        type=get.get("type", ""),
        status=get.get("status", ""),
        owner=get.get("owner", ""),
        contact=get.get("contact", ""),
        account=_int_or_none(get.get("account", "")),
        q=get.get("q", ""),
    )
    records = with_counts(filter_records(records_for(request.user), filters))
    page = Paginator(records, PER_PAGE).get_page(get.get("page"))
    types = list(RecordType.objects.all())
    statuses: list[tuple[str, str]] = []
    for record_type in types:
        for status in record_type.statuses:
            if status not in {s for s, _label in statuses}:
                statuses.append((status, status_label(status)))
    return render(
        request,
        "web/records/list.html",
        {
            "page": page,
            "filters": filters,
            "types": types,
            "statuses": statuses,
            "users": active_users(),
            "accounts": accounts_for(request.user, Right.READ).order_by("name"),
            "filtered": any(
                get.get(k) for k in ("type", "status", "owner", "contact", "account", "q")
            ),
        },
    )


@login_required
def record_create(request: AuthedRequest) -> HttpResponse:
    accounts = accounts_for(request.user, Right.SEND)
    if request.method == "POST":
        form = RecordForm(request.POST, accounts=accounts)
        if form.is_valid():
            data = form.cleaned_data
            try:
                record = do_create_record(
                    data["type"],
                    title=data["title"],
                    status=data["status"] or None,
                    owner=data["owner"] or request.user,
                    contact=contact_for(data["contact"], data["contact_name"], data["account"]),
                    account=data["account"],
                    fields=data["fields"],
                    actor=request.user,
                    source=RecordSource.MANUAL,
                )
            except RecordError as exc:
                add_record_error(form, exc)
            else:
                messages.success(request, _("Record %(ref)s created.") % {"ref": record.reference})
                return redirect("web:record_detail", pk=record.pk)
    else:
        initial: dict[str, Any] = {"owner": request.user.get_username()}
        if request.GET.get("contact"):
            initial["contact"] = request.GET["contact"]
        form = RecordForm(initial=initial, accounts=accounts)
    return render(request, "web/records/form.html", {"form": form})


def _detail(
    request: AuthedRequest,
    record: Record,
    *,
    edit_form: RecordEditForm | None = None,
    status_form: StatusForm | None = None,
    status: int = 200,
) -> HttpResponse:
    can_write = can_write_record(request.user, record)
    if edit_form is None:
        edit_form = RecordEditForm(
            initial={
                "title": record.title,
                "owner": record.owner.get_username() if record.owner else "",
                "contact": record.contact.email if record.contact else "",
            }
        )
    if status_form is None:
        status_form = StatusForm(initial={"status": record.status}, record_type=record.type)
    return render(
        request,
        "web/records/detail.html",
        {
            "record": record,
            "status_label": status_label(record.status),
            "closed": record.status in record.type.closed_statuses,
            "timeline": timeline(record),
            "can_write": can_write,
            "edit_form": edit_form,
            "status_form": status_form,
            "readable_accounts": set(
                accounts_for(request.user, Right.READ).values_list("pk", flat=True)
            ),
        },
        status=status,
    )


@login_required
@require_GET
def record_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    return _detail(request, record_or_404(request, pk))


@login_required
@require_POST
def record_status(request: AuthedRequest, pk: int) -> HttpResponse:
    record = record_or_404(request, pk, write=True)
    form = StatusForm(request.POST, record_type=record.type)
    if form.is_valid():
        try:
            do_update_record(record, status=form.cleaned_data["status"], actor=request.user)
        except RecordError as exc:
            add_record_error(form, exc)
        else:
            messages.success(
                request,
                _("Status changed to %(status)s.") % {"status": status_label(record.status)},
            )
            return redirect("web:record_detail", pk=record.pk)
    return _detail(request, record, status_form=form, status=422)


@login_required
@require_POST
def record_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    record = record_or_404(request, pk, write=True)
    form = RecordEditForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            do_update_record(
                record,
                title=data["title"],
                owner=data["owner"],
                contact=contact_for(data["contact"], account=record.account),
                actor=request.user,
            )
        except RecordError as exc:
            add_record_error(form, exc)
        else:
            messages.success(request, _("Record %(ref)s saved.") % {"ref": record.reference})
            return redirect("web:record_detail", pk=record.pk)
    return _detail(request, record, edit_form=form, status=422)


# -- contacts -----------------------------------------------------------------------


def contact_or_404(request: AuthedRequest, pk: int) -> Contact:
    contact = contacts_for(request.user).filter(pk=pk).first()
    if contact is None:
        raise Http404(_("No such contact."))
    return contact


@login_required
@require_GET
def contact_list(request: AuthedRequest) -> HttpResponse:
    contacts = contacts_for(request.user)
    query = request.GET.get("q", "").strip()
    if query:
        contacts = contacts.filter(Q(email__icontains=query) | Q(name__icontains=query))
    page = Paginator(contacts.order_by("email"), PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "web/records/contacts.html", {"page": page, "q": query})


@login_required
def contact_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    contact = contact_or_404(request, pk)
    can_write = can_write_contact(request.user, contact)
    form = ContactForm(initial={"email": contact.email, "name": contact.name})
    status = 200
    if request.method == "POST":
        if not can_write:
            raise PermissionDenied
        form = ContactForm(request.POST)
        if form.is_valid():
            if form.cleaned_data["email"].strip().lower() != contact.email:
                form.add_error("email", _("The address of a contact cannot change."))
            else:
                do_update_contact(contact, name=form.cleaned_data["name"], actor=request.user)
                messages.success(request, _("Contact saved."))
                return redirect("web:contact_detail", pk=contact.pk)
        status = 422
    records = with_counts(records_for(request.user).filter(contact=contact))
    return render(
        request,
        "web/records/contact.html",
        {"contact": contact, "records": records, "form": form, "can_write": can_write},
        status=status,
    )


# -- record types ------------------------------------------------------------------


def _require_type_manager(request: AuthedRequest) -> None:
    if not can_manage_record_types(request.user):
        raise PermissionDenied


@login_required
@require_GET
def record_type_list(request: AuthedRequest) -> HttpResponse:
    _require_type_manager(request)
    return render(
        request, "web/records/types.html", {"types": RecordType.objects.all().order_by("name")}
    )


@login_required
def record_type_edit(request: AuthedRequest, pk: int | None = None) -> HttpResponse:
    _require_type_manager(request)
    record_type = None
    if pk is not None:
        record_type = RecordType.objects.filter(pk=pk).first()
        if record_type is None:
            raise Http404(_("No such record type."))
    if request.method == "POST":
        form = RecordTypeForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = do_save_record_type(
                    record_type,
                    name=data["name"],
                    prefix=data["prefix"],
                    statuses=data["statuses"],
                    closed_statuses=data["closed_statuses"],
                    active=data["active"],
                    actor=request.user,
                )
            except RecordError as exc:
                add_record_error(form, exc)
            else:
                messages.success(
                    request, _("Record type %(name)s saved.") % {"name": saved.display_name}
                )
                return redirect("web:record_type_list")
    elif record_type is not None:
        form = RecordTypeForm(
            initial={
                "name": record_type.name,
                "prefix": record_type.prefix,
                "statuses": record_type.statuses,
                "closed_statuses": record_type.closed_statuses,
                "active": record_type.active,
            }
        )
    else:
        form = RecordTypeForm()
    return render(
        request,
        "web/records/type_form.html",
        {"form": form, "record_type": record_type},
        status=422 if form.errors else 200,
    )
