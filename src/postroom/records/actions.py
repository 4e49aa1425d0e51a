"""The only code that changes records, contacts and routing settings.

Views, the API and the CLI validate and check permissions (see
``postroom.records.permissions``), then call these. Every change that other
applications care about is reported to webhooks inside the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount
from postroom.core.actions import do_log_event
from postroom.incoming.models import Message
from postroom.mail.mime.reply import address_key
from postroom.outgoing.models import OutboxItem
from postroom.records.models import (
    AppendTo,
    Contact,
    LinkVia,
    Record,
    RecordLink,
    RecordSource,
    RecordType,
    RoutingSettings,
    Rule,
)
from postroom.records.payloads import record_payload
from postroom.webhooks.emit import emit
from postroom.webhooks.models import EventType

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None


class RecordError(ValueError):
    """Refused; ``str(exc)`` says why in the user's language, ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _actor_id(actor: Actor) -> int | None:
    return actor.pk if isinstance(actor, AbstractBaseUser) else None


def _ordering_key(record: Record) -> str:
    return f"record:{record.pk}"


def normalise_email(address: str) -> str:
    return address.strip().lower()


def our_addresses() -> frozenset[str]:
    """Every account's address as :func:`address_key` compares them (lower case, no +tag)."""
    return frozenset(address_key(e) for e in EmailAccount.objects.values_list("email", flat=True))


# Contacts -------------------------------------------------------------------


def do_save_contact(
    email: str, name: str = "", *, account: EmailAccount | None = None, update_name: bool = True
) -> Contact:
    """The contact for ``email``, created when new; never two for one address (B10).

    ``update_name``: a name from mail headers fills in or replaces the stored one.
    """
    key = normalise_email(email)
    if not key or "@" not in key:
        raise RecordError("email", _("%(value)r is not an email address.") % {"value": email})
    name = name.strip()[:300]
    contact = Contact.objects.filter(email=key).first()
    if contact is None:
        try:
            with transaction.atomic():
                return Contact.objects.create(email=key, name=name, created_from=account)
        except IntegrityError:
            # Another process created it meanwhile: that one is the contact.
            contact = Contact.objects.get(email=key)
    if update_name and name and contact.name != name:
        contact.name = name
        contact.save(update_fields=["name", "updated_at"])
    return contact


def do_update_contact(contact: Contact, *, name: str, actor: Actor = None) -> Contact:
    """A person changes a contact's name (its address never changes: it is the contact)."""
    name = name.strip()[:300]
    if contact.name == name:
        return contact
    with transaction.atomic():
        contact.name = name
        contact.save(update_fields=["name", "updated_at"])
        do_log_event(
            kind="contact.updated",
            account=contact.created_from,
            message=_("Contact %(email)s renamed.") % {"email": contact.email},
            data={"contact": contact.pk, "actor": getattr(actor, "username", None)},
        )
    return contact


# Records --------------------------------------------------------------------


def _check_status(record_type: RecordType, status: str) -> str:
    if status not in record_type.statuses:
        raise RecordError(
            "status",
            _("%(status)r is not a status of %(type)s; choose one of: %(choices)s.")
            % {
                "status": status,
                "type": record_type.display_name,
                "choices": ", ".join(record_type.statuses),
            },
        )
    return status


def do_create_record(
    record_type: RecordType,
    *,
    title: str,
    actor: Actor = None,
    contact: Contact | None = None,
    owner: User | None = None,
    account: EmailAccount | None = None,
    status: str | None = None,
    fields: Mapping[str, Any] | None = None,
    source: RecordSource = RecordSource.MANUAL,
) -> Record:
    """Create a record with the next reference of its type (ISSUE-42)."""
    title = " ".join(title.split())[:2000] or _("(no subject)")
    with transaction.atomic():
        locked = RecordType.objects.select_for_update().get(pk=record_type.pk)
        if status is None:
            status = locked.default_status
        else:
            _check_status(locked, status)
        number = locked.next_number
        RecordType.objects.filter(pk=locked.pk).update(next_number=number + 1)
        now = timezone.now()
        record = Record.objects.create(
            type=locked,
            number=number,
            reference=f"{locked.prefix}-{number}",
            title=title,
            status=status,
            owner=owner,
            contact=contact,
            account=account,
            fields=dict(fields or {}),
            source=source,
            created_by_id=_actor_id(actor),
            last_activity_at=now,
        )
        do_log_event(
            kind="record.created",
            account=account,
            message=_("Record %(ref)s created: %(title)s")
            % {"ref": record.reference, "title": title},
            data={"record": record.pk, "actor": getattr(actor, "username", None)},
        )
        emit(
            EventType.RECORD_CREATED,
            {"record": record_payload(record)},
            account_id=account.pk if account else None,
            ordering_key=_ordering_key(record),
        )
    return record


_UNSET: Any = object()


def do_update_record(
    record: Record,
    *,
    actor: Actor = None,
    title: str = _UNSET,
    status: str = _UNSET,
    owner: User | None = _UNSET,
    contact: Contact | None = _UNSET,
    fields: Mapping[str, Any] = _UNSET,
) -> Record:
    """Change what is given; reports ``record.updated`` with the changed field names."""
    changed: dict[str, Any] = {}
    if title is not _UNSET:
        title = " ".join(title.split())
        if not title:
            raise RecordError("title", _("A record needs a title."))
        changed["title"] = title[:2000]
    if status is not _UNSET:
        changed["status"] = _check_status(record.type, status)
    if owner is not _UNSET:
        changed["owner"] = owner
    if contact is not _UNSET:
        changed["contact"] = contact
    if fields is not _UNSET:
        changed["fields"] = dict(fields)
    changed = {k: v for k, v in changed.items() if getattr(record, k) != v}
    if not changed:
        return record
    with transaction.atomic():
        for name, value in changed.items():
            setattr(record, name, value)
        record.last_activity_at = timezone.now()
        record.save(update_fields=[*changed, "last_activity_at", "updated_at"])
        do_log_event(
            kind="record.updated",
            account=record.account,
            message=_("Record %(ref)s changed: %(fields)s")
            % {"ref": record.reference, "fields": ", ".join(sorted(changed))},
            data={
                "record": record.pk,
                "changed": sorted(changed),
                "actor": getattr(actor, "username", None),
            },
        )
        emit(
            EventType.RECORD_UPDATED,
            {"record": record_payload(record), "changed": sorted(changed)},
            account_id=record.account_id,
            ordering_key=_ordering_key(record),
        )
    return record


def do_link_message(record: Record, message: Message, via: LinkVia) -> RecordLink:
    """Put a received message on the record's timeline (idempotent)."""
    link, created = RecordLink.objects.get_or_create(
        record=record, message=message, defaults={"via": via}
    )
    if created:
        Record.objects.filter(pk=record.pk).update(last_activity_at=timezone.now())
    return link


def do_link_outbox_item(record: Record, item: OutboxItem) -> RecordLink:
    link, _created = RecordLink.objects.get_or_create(
        record=record, outbox_item=item, defaults={"via": LinkVia.SENT}
    )
    Record.objects.filter(pk=record.pk).update(last_activity_at=timezone.now())
    return link


# Record types ---------------------------------------------------------------


def do_save_record_type(
    record_type: RecordType | None,
    *,
    name: str,
    prefix: str,
    statuses: Sequence[str],
    closed_statuses: Sequence[str] = (),
    active: bool = True,
    actor: Actor = None,
) -> RecordType:
    """Create (``record_type`` None) or change a record type; the prefix of a type in use is fixed."""
    import re

    from django.utils.text import slugify

    name = name.strip()
    prefix = prefix.strip().upper()
    cleaned = [s.strip() for s in statuses if s.strip()]
    if not name:
        raise RecordError("name", _("A record type needs a name."))
    if not re.fullmatch(r"[A-Z][A-Z0-9]{0,11}", prefix):
        raise RecordError(
            "prefix",
            _("The prefix must be 1 to 12 upper-case letters or digits, starting with a letter."),
        )
    if not cleaned:
        raise RecordError("statuses", _("Give at least one status; the first is the default."))
    if len(set(cleaned)) != len(cleaned):
        raise RecordError("statuses", _("Each status may appear only once."))
    closed = [s.strip() for s in closed_statuses if s.strip()]
    unknown = [s for s in closed if s not in cleaned]
    if unknown:
        raise RecordError(
            "closed_statuses",
            _("Closed statuses must be among the statuses: %(list)s")
            % {"list": ", ".join(unknown)},
        )
    if record_type is not None and record_type.prefix != prefix and record_type.records.exists():
        raise RecordError(
            "prefix",
            _("Records of this type already carry the prefix %(prefix)s; it cannot change.")
            % {"prefix": record_type.prefix},
        )
    clash = RecordType.objects.filter(prefix=prefix)
    if record_type is not None:
        clash = clash.exclude(pk=record_type.pk)
    if clash.exists():
        raise RecordError("prefix", _("Another record type uses the prefix %(p)s.") % {"p": prefix})
    same_name = RecordType.objects.filter(name=name)
    if record_type is not None:
        same_name = same_name.exclude(pk=record_type.pk)
    if same_name.exists():
        raise RecordError("name", _("Another record type is called %(n)s.") % {"n": name})
    if record_type is None:
        key = slugify(name)[:40] or prefix.lower()
        base, n = key, 2
        while RecordType.objects.filter(key=key).exists():
            key = f"{base[:36]}-{n}"
            n += 1
        record_type = RecordType(key=key)
    record_type.name = name
    record_type.prefix = prefix
    record_type.statuses = cleaned
    record_type.closed_statuses = closed
    record_type.active = active
    record_type.save()
    do_log_event(
        kind="record_type.saved",
        message=_("Record type %(name)s saved.") % {"name": name},
        data={"record_type": record_type.pk, "actor": getattr(actor, "username", None)},
    )
    return record_type


# Routing settings -----------------------------------------------------------


def routing_settings(account: EmailAccount) -> RoutingSettings:
    """The account's routing settings; the defaults when never saved (nothing is written)."""
    found = RoutingSettings.objects.filter(account=account).first()
    return found if found is not None else RoutingSettings(account=account)


def do_save_routing_settings(
    account: EmailAccount, *, actor: Actor = None, **values: Any
) -> RoutingSettings:
    """Save the given fields of the account's routing settings (names as on the model)."""
    allowed = {
        f.name
        for f in RoutingSettings._meta.get_fields()
        if getattr(f, "concrete", False) and f.name not in {"id", "account"}
    }
    unknown = set(values) - allowed
    if unknown:
        raise RecordError(sorted(unknown)[0], _("Unknown setting."))
    starts, ends = values.get("auto_reply_starts_at"), values.get("auto_reply_ends_at")
    if starts and ends and ends <= starts:
        raise RecordError("auto_reply_ends_at", _("The auto-reply must end after it starts."))
    if values.get("auto_reply_enabled") and not (values.get("auto_reply_text") or "").strip():
        current = routing_settings(account)
        if "auto_reply_text" in values or not current.auto_reply_text.strip():
            raise RecordError("auto_reply_text", _("An auto-reply needs a text."))
    with transaction.atomic():
        settings, _created = RoutingSettings.objects.get_or_create(account=account)
        for name, value in values.items():
            setattr(settings, name, value)
        # B11: only mail arriving from now on can be "unreplied".
        if settings.unreplied_after_minutes is None:
            settings.unreplied_since = None
        elif settings.unreplied_since is None:
            settings.unreplied_since = timezone.now()
        settings.full_clean(exclude=["account"])
        settings.save()
        do_log_event(
            kind="routing.settings_saved",
            account=account,
            message=_("Routing settings saved: %(fields)s") % {"fields": ", ".join(sorted(values))},
            data={"fields": sorted(values), "actor": getattr(actor, "username", None)},
        )
    return settings


def do_set_append_to(
    account: EmailAccount,
    record_type: RecordType | None,
    *,
    folder: str = "",
    actor: Actor = None,
) -> AppendTo | None:
    """B7: mail arriving in ``folder`` ("" = every folder) creates ``record_type`` records.

    ``record_type`` None removes the setting for that folder.
    """
    folder = folder.strip()
    with transaction.atomic():
        if record_type is None:
            AppendTo.objects.filter(account=account, folder=folder).delete()
            result = None
        else:
            result, _created = AppendTo.objects.update_or_create(
                account=account, folder=folder, defaults={"record_type": record_type}
            )
        do_log_event(
            kind="routing.append_to",
            account=account,
            message=(
                _("Mail in %(folder)s now creates %(type)s records.")
                if record_type
                else _("Mail in %(folder)s no longer creates records.")
            )
            % {
                "folder": folder or _("every folder"),
                "type": record_type.display_name if record_type else "",
            },
            data={
                "folder": folder,
                "record_type": record_type.key if record_type else None,
                "actor": getattr(actor, "username", None),
            },
        )
    return result


# Rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSpec:
    name: str
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    match: str = "all"
    enabled: bool = True


def do_save_rule(
    account: EmailAccount, spec: RuleSpec, *, rule: Rule | None = None, actor: Actor = None
) -> Rule:
    """Create (appended last) or change a rule after checking every condition and action."""
    from postroom.records.rules import validate_rule

    validate_rule(spec.conditions, spec.actions, spec.match)
    if not spec.name.strip():
        raise RecordError("name", _("A rule needs a name."))
    with transaction.atomic():
        if rule is None:
            last = Rule.objects.filter(account=account).order_by("-position").first()
            rule = Rule(account=account, position=(last.position + 1) if last else 0)
        rule.name = spec.name.strip()[:200]
        rule.conditions = spec.conditions
        rule.actions = spec.actions
        rule.match = spec.match
        rule.enabled = spec.enabled
        rule.save()
        do_log_event(
            kind="routing.rule_saved",
            account=account,
            message=_("Rule %(name)s saved.") % {"name": rule.name},
            data={"rule": rule.pk, "actor": getattr(actor, "username", None)},
        )
    return rule


def do_delete_rule(rule: Rule, *, actor: Actor = None) -> None:
    with transaction.atomic():
        do_log_event(
            kind="routing.rule_deleted",
            account=rule.account,
            message=_("Rule %(name)s deleted.") % {"name": rule.name},
            data={"rule": rule.pk, "actor": getattr(actor, "username", None)},
        )
        rule.delete()


def do_move_rule(rule: Rule, offset: int, *, actor: Actor = None) -> None:
    """Move a rule up (offset -1) or down (+1) in its account's order."""
    with transaction.atomic():
        rules = list(Rule.objects.select_for_update().filter(account_id=rule.account_id))
        index = next(i for i, r in enumerate(rules) if r.pk == rule.pk)
        target = max(0, min(len(rules) - 1, index + offset))
        rules.insert(target, rules.pop(index))
        for position, item in enumerate(rules):
            if item.position != position:
                Rule.objects.filter(pk=item.pk).update(position=position)
