"""``/records``, ``/contacts`` and ``/record-types``: the same rights as the web pages.

A record the caller cannot read is "not found" (404); changing one they can
read but not write is 403. Contacts follow ``contacts_for`` and
``can_write_contact``; record types are listed to everyone and changed by
users who may manage them. Input is checked by the web UI's forms
(``postroom.records.forms``), so both refuse the same input with the same words.

Lists are newest first with cursor pagination on the id (stable while
records change and new ones arrive).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, User
from django.db.models import Q
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status

from postroom.accounts.models import Right
from postroom.accounts.permissions import accounts_for
from postroom.api.common import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    current_user,
    newest_first_page,
)
from postroom.api.schemas import ErrorOut, FieldErrorsOut
from postroom.records.actions import (
    RecordError,
    do_create_record,
    do_save_contact,
    do_save_record_type,
    do_update_contact,
    do_update_record,
)
from postroom.records.forms import ContactForm, RecordForm, RecordTypeForm, contact_for
from postroom.records.models import Contact, Record, RecordSource, RecordType
from postroom.records.payloads import contact_payload, record_payload
from postroom.records.permissions import (
    can_manage_record_types,
    can_write_contact,
    can_write_record,
    contacts_for,
    records_for,
)
from postroom.records.queries import RecordFilters, filter_records, timeline_dicts, with_counts

router = Router(tags=["records"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


# -- schemas ----------------------------------------------------------------------


class ContactOut(Schema):
    id: int
    email: str
    name: str


class RecordOut(Schema):
    id: int
    reference: str = Field(description="As people quote it: ISSUE-42")
    type: str = Field(description="The record type's key")
    title: str
    status: str
    owner: str | None = Field(description="User name")
    contact: ContactOut | None
    account: int | None = Field(description="The account its mail comes in by and goes out from")
    fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    message_count: int = Field(description="Received messages on the record's timeline")


class TimelineEntryOut(Schema):
    kind: str = Field(description="received or sent")
    at: datetime
    via: str = Field(
        description="Why it is on the record: created, reply, token, plus_address, "
        "subject_reference, sent or manual"
    )
    subject: str
    from_: str = Field(alias="from")
    to: list[str]
    message: int | None = Field(description="Id of the received message (see /messages/{id})")
    outbox_item: int | None = Field(description="Id of the sent item (see /outbox/{id})")


class RecordDetailOut(RecordOut):
    timeline: list[TimelineEntryOut] = Field(description="Oldest first")


class RecordPageOut(Schema):
    items: list[RecordOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end")


class RecordFiltersIn(Schema):
    type: str | None = Field(None, description="Record type key or name")
    status: str | None = None
    owner: str | None = Field(None, description='User name; "-" for records without owner')
    contact: str | None = Field(None, description="Contact address or id")
    account: int | None = None
    q: str | None = Field(None, description="Title contains, or the exact reference")
    cursor: str | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class RecordIn(Schema):
    type: str = Field(description="Record type key")
    title: str
    status: str | None = Field(None, description="Default: the type's first status")
    owner: str | None = Field(None, description="User name; default: the caller")
    contact: str | None = Field(None, description="Contact address, created when new")
    contact_name: str | None = None
    account: int | None = Field(None, description="An account the caller may send from")
    fields: dict[str, Any] | None = None


class RecordPatchIn(Schema):
    """Only what is sent changes; ``owner`` or ``contact`` null clears it."""

    title: str | None = None
    status: str | None = None
    owner: str | None = None
    contact: str | None = None
    fields: dict[str, Any] | None = None


class ContactDetailOut(ContactOut):
    records: list[str] = Field(description="References of the caller's visible records")


class ContactPageOut(Schema):
    items: list[ContactOut]
    next_cursor: str | None


class ContactFiltersIn(Schema):
    q: str | None = Field(None, description="Address or name contains")
    cursor: str | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class ContactIn(Schema):
    email: str
    name: str = ""
    account: int | None = Field(
        None, description="The account the contact belongs to (one the caller sends from)"
    )


class ContactPatchIn(Schema):
    name: str


class RecordTypeOut(Schema):
    key: str
    name: str
    prefix: str
    statuses: list[str] = Field(description="The first is the status of new records")
    closed_statuses: list[str]
    builtin: bool
    active: bool


class RecordTypeIn(Schema):
    name: str
    prefix: str
    statuses: list[str]
    closed_statuses: list[str] = []
    active: bool = True


# -- helpers ----------------------------------------------------------------------------


def record_dict(record: Record, message_count: int | None = None) -> dict[str, Any]:
    count = getattr(record, "message_count", None) if message_count is None else message_count
    if count is None:
        count = record.links.filter(message__isnull=False).count()
    return {**record_payload(record), "message_count": count}


def record_type_dict(record_type: RecordType) -> dict[str, Any]:
    return {
        "key": record_type.key,
        "name": record_type.name,
        "prefix": record_type.prefix,
        "statuses": list(record_type.statuses),
        "closed_statuses": list(record_type.closed_statuses),
        "builtin": record_type.builtin,
        "active": record_type.active,
    }


def visible_record(user: AbstractBaseUser, record_id: int, *, write: bool = False) -> Record:
    record = (
        records_for(user)
        .select_related("type", "owner", "contact", "account")
        .filter(pk=record_id)
        .first()
    )
    if record is None:
        raise NotFound(_("No record with this id."))
    if write and not can_write_record(user, record):
        raise Forbidden(_("You do not have the right to change this record."))
    return record


def _error(exc: RecordError) -> InvalidInput:
    return InvalidInput({exc.field: [str(exc)]})


def _detail(record: Record) -> dict[str, Any]:
    return {**record_dict(record), "timeline": timeline_dicts(record)}


# -- records ------------------------------------------------------------------------------


@router.get(
    "/records",
    response={200: RecordPageOut, 422: FieldErrorsOut},
    summary="List records, newest first (filters, cursor pagination)",
)
def list_records(request: HttpRequest, filters: Query[RecordFiltersIn]) -> dict[str, Any]:
    user = current_user(request)
    records = filter_records(
        records_for(user),
        RecordFilters(
            type=filters.type or "",
            status=filters.status or "",
            owner=filters.owner or "",
            contact=filters.contact or "",
            account=filters.account,
            q=filters.q or "",
        ),
    )
    rows, next_cursor = newest_first_page(with_counts(records), filters.cursor, filters.limit)
    return {"items": [record_dict(r) for r in rows], "next_cursor": next_cursor}


@router.post(
    "/records",
    by_alias=True,
    response={201: RecordDetailOut, 422: FieldErrorsOut},
    summary="Create a record",
)
def create_record(request: HttpRequest, payload: RecordIn) -> Status[dict[str, Any]]:
    user = current_user(request)
    data = payload.dict()
    data["owner"] = data["owner"] or user.get_username()
    form = RecordForm(data, accounts=accounts_for(user, Right.SEND))
    if not form.is_valid():
        raise InvalidInput.from_form(form)
    clean = form.cleaned_data
    try:
        record = do_create_record(
            clean["type"],
            title=clean["title"],
            status=clean["status"] or None,
            owner=clean["owner"],
            contact=contact_for(clean["contact"], clean["contact_name"], clean["account"]),
            account=clean["account"],
            fields=clean["fields"],
            actor=user,
            source=RecordSource.API,
        )
    except RecordError as exc:
        raise _error(exc) from exc
    return Status(201, _detail(record))


@router.get(
    "/records/{record_id}",
    by_alias=True,
    response={200: RecordDetailOut, 404: ErrorOut},
    summary="One record with its timeline",
)
def get_record(request: HttpRequest, record_id: int) -> dict[str, Any]:
    return _detail(visible_record(current_user(request), record_id))


@router.patch(
    "/records/{record_id}",
    by_alias=True,
    response={200: RecordDetailOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    summary="Change a record's title, status, owner, contact or fields",
)
def patch_record(request: HttpRequest, record_id: int, payload: RecordPatchIn) -> dict[str, Any]:
    user = current_user(request)
    record = visible_record(user, record_id, write=True)
    sent = payload.dict(exclude_unset=True)
    changes: dict[str, Any] = {}
    if "title" in sent:
        changes["title"] = sent["title"] or ""
    if "status" in sent:
        changes["status"] = sent["status"] or ""
    if "fields" in sent:
        changes["fields"] = sent["fields"] or {}
    if "owner" in sent:
        if sent["owner"] is None:
            changes["owner"] = None
        else:
            owner = User.objects.filter(username=sent["owner"], is_active=True).first()
            if owner is None:
                raise InvalidInput({"owner": [_("There is no active user by this name.")]})
            changes["owner"] = owner
    try:
        if "contact" in sent:
            changes["contact"] = (
                contact_for(sent["contact"], account=record.account) if sent["contact"] else None
            )
        do_update_record(record, actor=user, **changes)
    except RecordError as exc:
        if exc.field == "email":
            exc.field = "contact"
        raise _error(exc) from exc
    return _detail(record)


# -- contacts ---------------------------------------------------------------------------------


def _contact(user: AbstractBaseUser, contact_id: int) -> Contact:
    contact = contacts_for(user).filter(pk=contact_id).first()
    if contact is None:
        raise NotFound(_("No contact with this id."))
    return contact


def _contact_detail(user: AbstractBaseUser, contact: Contact) -> dict[str, Any]:
    refs = (
        records_for(user).filter(contact=contact).order_by("pk").values_list("reference", flat=True)
    )
    payload = contact_payload(contact)
    assert payload is not None
    return {**payload, "records": list(refs)}


@router.get(
    "/contacts",
    response={200: ContactPageOut, 422: FieldErrorsOut},
    tags=["contacts"],
    summary="List contacts, newest first",
)
def list_contacts(request: HttpRequest, filters: Query[ContactFiltersIn]) -> dict[str, Any]:
    contacts = contacts_for(current_user(request))
    if filters.q:
        contacts = contacts.filter(Q(email__icontains=filters.q) | Q(name__icontains=filters.q))
    rows, next_cursor = newest_first_page(contacts, filters.cursor, filters.limit)
    return {"items": [contact_payload(c) for c in rows], "next_cursor": next_cursor}


@router.get(
    "/contacts/{contact_id}",
    response={200: ContactDetailOut, 404: ErrorOut},
    tags=["contacts"],
    summary="One contact with the references of its records",
)
def get_contact(request: HttpRequest, contact_id: int) -> dict[str, Any]:
    user = current_user(request)
    return _contact_detail(user, _contact(user, contact_id))


@router.post(
    "/contacts",
    response={
        200: ContactDetailOut,
        201: ContactDetailOut,
        403: ErrorOut,
        409: ErrorOut,
        422: FieldErrorsOut,
    },
    tags=["contacts"],
    summary="Create a contact, or update the name of the contact with this address (200)",
)
def create_contact(request: HttpRequest, payload: ContactIn) -> Status[dict[str, Any]]:
    user = current_user(request)
    form = ContactForm({"email": payload.email, "name": payload.name})
    if not form.is_valid():
        raise InvalidInput.from_form(form)
    account = None
    if payload.account is not None:
        account = accounts_for(user, Right.SEND).filter(pk=payload.account).first()
        if account is None:
            raise InvalidInput(
                {"account": [_("You cannot send from this account, or it does not exist.")]}
            )
    email = form.cleaned_data["email"].strip().lower()
    existing = Contact.objects.filter(email=email).first()
    if existing is not None:
        if not contacts_for(user).filter(pk=existing.pk).exists():
            raise Conflict(_("A contact with this address exists and is not visible to you."))
        if not can_write_contact(user, existing):
            raise Forbidden(_("You do not have the right to change this contact."))
        do_update_contact(existing, name=form.cleaned_data["name"], actor=user)
        return Status(200, _contact_detail(user, existing))
    if account is None and not user.has_perm("records.view_contact"):  # type: ignore[attr-defined]
        raise InvalidInput(
            {"account": [_("Name the account the contact belongs to, or you could not see it.")]}
        )
    contact = do_save_contact(email, form.cleaned_data["name"], account=account)
    return Status(201, _contact_detail(user, contact))


@router.patch(
    "/contacts/{contact_id}",
    response={200: ContactDetailOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    tags=["contacts"],
    summary="Change a contact's name",
)
def patch_contact(request: HttpRequest, contact_id: int, payload: ContactPatchIn) -> dict[str, Any]:
    user = current_user(request)
    contact = _contact(user, contact_id)
    if not can_write_contact(user, contact):
        raise Forbidden(_("You do not have the right to change this contact."))
    form = ContactForm({"email": contact.email, "name": payload.name})
    if not form.is_valid():
        raise InvalidInput.from_form(form)
    do_update_contact(contact, name=form.cleaned_data["name"], actor=user)
    return _contact_detail(user, contact)


# -- record types --------------------------------------------------------------------------------


@router.get(
    "/record-types",
    response=list[RecordTypeOut],
    tags=["record types"],
    summary="List record types",
)
def list_record_types(request: HttpRequest) -> list[dict[str, Any]]:
    current_user(request)
    return [record_type_dict(t) for t in RecordType.objects.order_by("name")]


def _save_type(
    user: AbstractBaseUser, record_type: RecordType | None, payload: RecordTypeIn
) -> RecordType:
    if not can_manage_record_types(user):
        raise Forbidden(_("You do not have the right to manage record types."))
    form = RecordTypeForm(payload.dict())
    if not form.is_valid():
        raise InvalidInput.from_form(form)
    data = form.cleaned_data
    try:
        return do_save_record_type(
            record_type,
            name=data["name"],
            prefix=data["prefix"],
            statuses=data["statuses"],
            closed_statuses=data["closed_statuses"],
            active=data["active"],
            actor=user,
        )
    except RecordError as exc:
        raise _error(exc) from exc


@router.post(
    "/record-types",
    response={201: RecordTypeOut, 403: ErrorOut, 422: FieldErrorsOut},
    tags=["record types"],
    summary="Create a record type (needs the right to manage record types)",
)
def create_record_type(request: HttpRequest, payload: RecordTypeIn) -> Status[dict[str, Any]]:
    return Status(201, record_type_dict(_save_type(current_user(request), None, payload)))


@router.put(
    "/record-types/{key}",
    response={200: RecordTypeOut, 403: ErrorOut, 404: ErrorOut, 422: FieldErrorsOut},
    tags=["record types"],
    summary="Change a record type (needs the right to manage record types)",
)
def update_record_type(request: HttpRequest, key: str, payload: RecordTypeIn) -> dict[str, Any]:
    user = current_user(request)
    record_type = RecordType.objects.filter(key=key).first()
    if record_type is None:
        raise NotFound(_("No record type with this key."))
    return record_type_dict(_save_type(user, record_type, payload))
