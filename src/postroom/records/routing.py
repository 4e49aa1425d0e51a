"""Routing of incoming mail: replies find their record, new mail becomes records.

For each stored message, in this order, the first match wins (issue 5):

1. **Replies** (B8): In-Reply-To, then References from the nearest back (the
   last 32), each looked up as our token Message-ID
   (:mod:`postroom.records.tokens`), as a message on a record's timeline, or
   as an outbox item sent from a record. Never by subject. A forward
   ("Fwd:"), or a reply that arrives at an append-to address of another
   record type, starts a new record instead.
2. **Auto-linking** (B9): ``account+ISSUE-42@`` among the recipients, or
   ``[ISSUE-42]`` in the subject, when that record exists and the sender
   already takes part in it (its contact, or an address on its mail).
3. **Rules** (B12, :mod:`postroom.records.rules`).
4. **Append to** (B7): a record of the type configured for the message's
   folder, titled by the subject, with the sender as contact.

Loop protection: automatic mail (RFC 3834 Auto-Submitted, bounces, lists,
bulk, no-reply senders) and mail from our own accounts never create records
or auto-replies; more than ``loop_limit`` records from one sender within
``loop_window_minutes`` are held and reported to the account owner.

Each message is routed in one transaction that also writes its ledger row
(:class:`RoutedMessage`), its links, the auto-reply in the outbox and the
webhook deliveries: a crash routes it again from scratch, never twice.
Server-side rule actions (mark read, move) run after the commit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount
from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel
from postroom.incoming.blobs import read_blob
from postroom.incoming.models import Message, MessageLocation, ParseState
from postroom.mail.mime.fields import header_fields
from postroom.mail.mime.reply import address_key
from postroom.records import autoreply
from postroom.records.actions import (
    do_create_record,
    do_link_message,
    do_save_contact,
    do_update_record,
    normalise_email,
    our_addresses,
    routing_settings,
)
from postroom.records.models import (
    AppendTo,
    LinkVia,
    Record,
    RecordLink,
    RecordSource,
    RecordType,
    RoutedMessage,
    RouteOutcome,
    RoutingCursor,
    RoutingSettings,
    Rule,
)
from postroom.records.rules import MailFacts, RuleOutcome, apply_rules
from postroom.records.tokens import (
    record_from_message_id,
    reference_from_plus_address,
    references_in_subject,
)
from postroom.webhooks.emit import emit, wanted_event_types
from postroom.webhooks.models import EventType

logger = logging.getLogger(__name__)

MAX_REFERENCES = 32
BATCH = 200

_FORWARD = re.compile(r"^\s*(fwd?|fw|wg|tr|rv|enc|doorst|vs|i)\s*:", re.I)
_NO_REPLY_LOCAL = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|noreply-.*|bounces?|.*-bounces?)$",
    re.I,
)


@dataclass
class RouteReport:
    routed: int = 0
    created: int = 0
    linked: int = 0
    held: int = 0
    failed: int = 0
    record_ids: list[int] = field(default_factory=list)


@dataclass
class _Context:
    """What routing needs about one account, read once per pass."""

    account: EmailAccount
    settings: RoutingSettings
    append_to: dict[str, RecordType]
    rules: list[Rule]
    own_addresses: frozenset[str]
    # Read once per pass: a subscription added meanwhile hears from the next pass on.
    wants_received: bool


@dataclass(frozen=True)
class Automatic:
    """Why a message counts as automatic (RFC 3834 §2 and common practice), if it does."""

    reason: str = ""
    suppress_auto_reply: bool = False

    def __bool__(self) -> bool:
        return bool(self.reason)


def routing_context(account: EmailAccount) -> _Context:
    append = {
        row.folder: row.record_type
        for row in AppendTo.objects.filter(account=account).select_related("record_type")
    }
    own = our_addresses()
    return _Context(
        account=account,
        settings=routing_settings(account),
        append_to=append,
        rules=list(Rule.objects.filter(account=account, enabled=True)),
        own_addresses=own,
        wants_received=EventType.MESSAGE_RECEIVED in wanted_event_types(),
    )


def automatic_reason(fields: dict[str, list[str]], sender: str) -> Automatic:
    """Classify mail no person wrote: it never makes records in a loop nor gets auto-replies."""
    auto = (fields.get("auto-submitted") or [""])[0].strip().lower()
    if auto and not auto.startswith("no"):
        return Automatic(f"Auto-Submitted: {auto}")
    content_type = (fields.get("content-type") or [""])[0].lower()
    if content_type.startswith("multipart/report"):
        return Automatic("delivery report")
    local = sender.partition("@")[0]
    if _NO_REPLY_LOCAL.match(local):
        return Automatic(f"automatic sender {sender}")
    for name in ("list-id", "list-unsubscribe", "list-post", "mailing-list"):
        if name in fields:
            return Automatic(f"mailing list ({name})")
    precedence = (fields.get("precedence") or [""])[0].strip().lower()
    if precedence in ("bulk", "list", "junk", "auto_reply"):
        return Automatic(f"Precedence: {precedence}")
    if "x-autoreply" in fields or "x-autorespond" in fields:
        return Automatic("auto-reply header")
    suppress = " ".join(fields.get("x-auto-response-suppress", [])).lower()
    if any(word in suppress for word in ("all", "oof", "autoreply")):
        # Outlook's request not to be auto-answered; the mail itself may be a person's.
        return Automatic("", suppress_auto_reply=True)
    return Automatic()


def _candidate_ids(message: Message) -> list[str]:
    """In-Reply-To, then References nearest first, without repeats."""
    ids = [message.in_reply_to] if message.in_reply_to else []
    ids.extend(reversed(list(message.references)[-MAX_REFERENCES:]))
    return [i for i in dict.fromkeys(ids) if i]


def _record_for_reply(message: Message) -> tuple[Record, LinkVia] | None:
    """The record the nearest known parent belongs to (B8)."""
    candidates = _candidate_ids(message)
    if not candidates:
        return None
    by_message = dict(
        RecordLink.objects.filter(message__message_id__in=candidates)
        .exclude(message=message)
        .order_by("created_at")
        .values_list("message__message_id", "record_id")
    )
    by_outbox = dict(
        RecordLink.objects.filter(outbox_item__message_id__in=candidates).values_list(
            "outbox_item__message_id", "record_id"
        )
    )
    for ident in candidates:
        token_record = record_from_message_id(ident)
        if token_record is not None:
            record = Record.objects.filter(pk=token_record).first()
            if record is not None:
                return record, LinkVia.TOKEN
        record_id = by_message.get(ident) or by_outbox.get(ident)
        if record_id is not None:
            return Record.objects.get(pk=record_id), LinkVia.REPLY
    return None


def _may_write(record: Record, sender: str) -> bool:
    """B9: a mention links only for someone already in the conversation (or one of our users)."""
    if not sender:
        return False
    if record.contact is not None and record.contact.email == sender:
        return True
    linked = Message.objects.filter(record_links__record=record)
    if linked.filter(from_email__iexact=sender).exists():
        return True
    if any(
        sender in [a.lower() for a in (m.to or []) + (m.cc or [])] for m in linked.only("to", "cc")
    ):
        return True
    return get_user_model().objects.filter(email__iexact=sender, is_active=True).exists()


def _record_for_mention(
    ctx: _Context, message: Message, fields: dict[str, list[str]], sender: str
) -> tuple[Record, LinkVia] | None:
    addresses = [*(message.to or []), *(message.cc or [])]
    for name in ("delivered-to", "x-original-to", "envelope-to"):
        addresses.extend(fields.get(name, []))
    mentions: list[tuple[str, LinkVia]] = []
    for address in addresses:
        reference = reference_from_plus_address(normalise_email(address))
        if reference and address_key(address) in ctx.own_addresses:
            mentions.append((reference, LinkVia.PLUS_ADDRESS))
    mentions.extend(
        (ref, LinkVia.SUBJECT_REFERENCE) for ref in references_in_subject(message.subject)
    )
    for reference, via in mentions:
        record = Record.objects.select_related("contact").filter(reference=reference).first()
        if record is not None and _may_write(record, sender):
            return record, via
    return None


def _folder_of(message: Message) -> str:
    location = (
        MessageLocation.objects.filter(message=message)
        .select_related("folder")
        .order_by("pk")
        .first()
    )
    return location.folder.name if location is not None else "INBOX"


def _append_type(ctx: _Context, folder: str) -> RecordType | None:
    return ctx.append_to.get(folder) or ctx.append_to.get("")


def _facts(message: Message, fields: dict[str, list[str]], sender: str) -> MailFacts:
    names = tuple(
        message.attachments.exclude(filename="").values_list("filename", flat=True)
    ) + tuple(str(d.get("filename") or "") for d in message.dropped_attachments or [])
    return MailFacts(
        sender=sender,
        to=tuple(message.to or ()),
        cc=tuple(message.cc or ()),
        subject=message.subject,
        headers=fields,
        attachment_names=names,
        has_attachments=message.has_attachments,
    )


def _too_many_from(ctx: _Context, sender: str) -> bool:
    since = timezone.now() - timedelta(minutes=ctx.settings.loop_window_minutes)
    created = RoutedMessage.objects.filter(
        message__account=ctx.account,
        sender=sender,
        outcome=RouteOutcome.CREATED,
        routed_at__gte=since,
    ).count()
    return created >= ctx.settings.loop_limit


def _report_held(ctx: _Context, message: Message, sender: str) -> None:
    from postroom.core.notify import do_notify_account_people

    window = ctx.settings.loop_window_minutes
    bucket = int(timezone.now().timestamp() // (window * 60 or 60))
    do_log_event(
        kind="routing.held",
        level=EventLevel.WARNING,
        account=ctx.account,
        message=_(
            "Held a message from %(sender)s: more than %(n)d records from this sender within "
            "%(m)d minutes. Release it from the held list if it is genuine."
        )
        % {"sender": sender, "n": ctx.settings.loop_limit, "m": window},
        data={"message": message.pk, "sender": sender},
    )
    do_notify_account_people(
        ctx.account,
        kind="routing.held",
        key=f"held:{ctx.account.pk}:{sender}:{bucket}",
        title=_("Mail from %(sender)s is held (possible mail loop)") % {"sender": sender},
        body=_(
            "%(sender)s sent more than %(n)d mails that would each create a record within "
            "%(m)d minutes. Further mail from this sender is held instead of creating records."
        )
        % {"sender": sender, "n": ctx.settings.loop_limit, "m": window},
        url=f"/records/held/?account={ctx.account.pk}",
    )


def _message_payload(message: Message, record: Record | None) -> dict[str, object]:
    return {
        "message": {
            "id": message.pk,
            "account": message.account_id,
            "message_id": message.message_id,
            "subject": message.subject,
            "from": message.from_email,
            "from_name": message.from_name,
            "to": message.to,
            "cc": message.cc,
            "date": message.date,
            "thread": message.thread_id,
        },
        "record": record.reference if record else None,
    }


# A customer's answer puts a record back in front of people, as ERPNext and
# Odoo do: "Replied" (waiting for the customer) and closed states reopen.
REOPEN_FROM = ("Replied",)  # see postroom.records.compose.REPLIED


def _link_reply(record: Record, message: Message, via: LinkVia, *, from_customer: bool) -> None:
    do_link_message(record, message, via)
    waiting = record.status in REOPEN_FROM or record.status in record.type.closed_statuses
    if from_customer and waiting and record.type.default_status != record.status:
        do_update_record(record, status=record.type.default_status)


@dataclass
class _Decision:
    outcome: RouteOutcome
    record: Record | None = None
    detail: str = ""
    labels: list[str] = field(default_factory=list)
    rules: RuleOutcome | None = None


def _decide(
    ctx: _Context, message: Message, fields: dict[str, list[str]], sender: str, auto: Automatic
) -> _Decision:
    append_type = _append_type(ctx, _folder_of(message)) if ctx.append_to else None
    own = address_key(sender) in ctx.own_addresses

    reply = _record_for_reply(message)
    if reply is not None:
        record, via = reply
        forwarded = bool(_FORWARD.match(message.subject))
        elsewhere = append_type is not None and append_type.pk != record.type_id
        if not forwarded and not elsewhere:
            _link_reply(record, message, via, from_customer=not (own or auto))
            return _Decision(RouteOutcome.LINKED, record, detail=str(via))

    mention = _record_for_mention(ctx, message, fields, sender)
    if mention is not None:
        record, via = mention
        _link_reply(record, message, via, from_customer=not (own or auto))
        return _Decision(RouteOutcome.LINKED, record, detail=str(via))

    rules = apply_rules(ctx.rules, _facts(message, fields, sender)) if ctx.rules else RuleOutcome()
    if rules.skip:
        return _Decision(
            RouteOutcome.SKIPPED, detail=", ".join(rules.matched), labels=rules.labels, rules=rules
        )
    record_type = append_type
    if rules.record_type:
        record_type = RecordType.objects.filter(key=rules.record_type).first() or record_type
    if record_type is None:
        return _Decision(RouteOutcome.NONE, labels=rules.labels, rules=rules)
    if own:
        return _Decision(
            RouteOutcome.LOOP,
            detail=_("sent by one of our own accounts"),
            labels=rules.labels,
            rules=rules,
        )
    if auto:
        return _Decision(RouteOutcome.LOOP, detail=auto.reason, labels=rules.labels, rules=rules)
    if _too_many_from(ctx, sender):
        _report_held(ctx, message, sender)
        return _Decision(RouteOutcome.HELD, detail=sender, labels=rules.labels, rules=rules)
    record = _create_from_message(ctx, message, record_type, sender, rules.owner)
    return _Decision(RouteOutcome.CREATED, record, labels=rules.labels, rules=rules)


def _create_from_message(
    ctx: _Context, message: Message, record_type: RecordType, sender: str, owner_name: str | None
) -> Record:
    contact = do_save_contact(sender, message.from_name, account=ctx.account) if sender else None
    owner = None
    if owner_name:
        owner = get_user_model().objects.filter(username=owner_name, is_active=True).first()
    record = do_create_record(
        record_type,
        title=message.subject,
        contact=contact,
        owner=owner or ctx.account.owner,
        account=ctx.account,
        source=RecordSource.APPEND_TO,
    )
    do_link_message(record, message, LinkVia.CREATED)
    return record


def _server_actions(message: Message, rules: RuleOutcome | None) -> None:
    """Rule actions on the server, after the routing transaction committed."""
    if rules is None or not (rules.mark_read or rules.move_to):
        return
    from postroom.records.server_actions import apply_server_actions

    transaction.on_commit(
        lambda: apply_server_actions(message.pk, mark_read=rules.mark_read, move_to=rules.move_to)
    )


def route_message(
    ctx: _Context, message: Message, fields: dict[str, list[str]] | None = None
) -> _Decision:
    """Route one message inside the caller's transaction."""
    if fields is None:
        fields = header_fields(read_blob(message.blob_id))
    sender = normalise_email(message.from_email)
    auto = automatic_reason(fields, sender)
    decision = _decide(ctx, message, fields, sender, auto)
    if (
        ctx.settings.create_contacts
        and sender
        and not auto
        and address_key(sender) not in ctx.own_addresses
    ):
        do_save_contact(sender, message.from_name, account=ctx.account, update_name=False)
    if decision.outcome not in (RouteOutcome.SKIPPED, RouteOutcome.HELD):
        autoreply.maybe_auto_reply(
            ctx.account,
            ctx.settings,
            message,
            sender=sender,
            return_path=fields["return-path"][-1] if "return-path" in fields else None,
            automatic=bool(auto) or auto.suppress_auto_reply,
            record=decision.record,
            own_addresses=ctx.own_addresses,
        )
    RoutedMessage.objects.create(
        message=message,
        outcome=decision.outcome,
        record=decision.record,
        detail=decision.detail[:2000],
        labels=decision.labels,
        sender=sender,
    )
    if ctx.wants_received:
        emit(
            EventType.MESSAGE_RECEIVED,
            _message_payload(message, decision.record),
            account_id=ctx.account.pk,
            ordering_key=f"record:{decision.record.pk}"
            if decision.record
            else f"account:{ctx.account.pk}",
        )
    _server_actions(message, decision.rules)
    return decision


def pending_messages(account: EmailAccount, since_pk: int = 0) -> QuerySet[Message]:
    """Messages of ``account`` from ``since_pk`` on that are extracted and not yet routed."""
    return (
        Message.objects.filter(account=account, pk__gte=since_pk)
        .exclude(parse_state=ParseState.HEADERS)
        .filter(~Exists(RoutedMessage.objects.filter(message=OuterRef("pk"))))
        # Primary-key order walks the account's index from the cursor; sorting
        # by date here would read every message of the account first.
        .order_by("pk")
    )


def _cursor(account: EmailAccount) -> int:
    found = RoutingCursor.objects.filter(account=account).values_list("next_pk", flat=True).first()
    return found or 0


def _advance_cursor(account: EmailAccount, since_pk: int) -> None:
    """After a pass: resume at the first message still waiting for extraction, or after the last."""
    from django.db.models import Max, Min

    waiting = Message.objects.filter(
        account=account, pk__gte=since_pk, parse_state=ParseState.HEADERS
    ).aggregate(first=Min("pk"))["first"]
    if waiting is None:
        top = Message.objects.filter(account=account).aggregate(last=Max("pk"))["last"]
        waiting = (top + 1) if top is not None else since_pk
    if waiting != since_pk:
        RoutingCursor.objects.update_or_create(account=account, defaults={"next_pk": waiting})


def _needs_each_message(ctx: _Context) -> bool:
    """Whether every message must go through :func:`route_message` (something may act on it)."""
    return bool(
        ctx.append_to
        or ctx.rules
        or ctx.settings.create_contacts
        or autoreply.auto_reply_active(ctx.settings)
    )


def _may_concern_a_record(
    ctx: _Context, message: Message, fields: dict[str, list[str]], known_ids: set[str]
) -> bool:
    """Cheap pre-check: could reply linking or a mention find a record for this message?"""
    for ident in _candidate_ids(message):
        if ident in known_ids or record_from_message_id(ident) is not None:
            return True
    if references_in_subject(message.subject):
        return True
    addresses = [*(message.to or []), *(message.cc or [])]
    for name in ("delivered-to", "x-original-to", "envelope-to"):
        addresses.extend(fields.get(name, []))
    return any(
        "+" in a and address_key(a) in ctx.own_addresses and reference_from_plus_address(a.lower())
        for a in addresses
    )


Fields = dict[str, list[str]]


def _route_batch_quickly(
    ctx: _Context, batch: list[Message], report: RouteReport
) -> list[tuple[Message, Fields]]:
    """Record "nothing to do" for the messages no record can concern; returns the others
    with the headers already read.

    With no append-to, rules, contact creation or auto-reply on the account,
    only a reply or a mention can touch a record; most mail has neither, and
    its ledger rows are written in one statement instead of one transaction each.
    """
    idents = {i for m in batch for i in _candidate_ids(m)}
    known: set[str] = set()
    if idents:
        known.update(
            RecordLink.objects.filter(message__message_id__in=idents).values_list(
                "message__message_id", flat=True
            )
        )
        known.update(
            RecordLink.objects.filter(outbox_item__message_id__in=idents).values_list(
                "outbox_item__message_id", flat=True
            )
        )
    wanted = ctx.wants_received
    plain: list[tuple[Message, str]] = []
    rest: list[tuple[Message, Fields]] = []
    for message in batch:
        fields = header_fields(read_blob(message.blob_id))
        if _may_concern_a_record(ctx, message, fields, known):
            rest.append((message, fields))
        else:
            plain.append((message, normalise_email(message.from_email)))
    if plain:
        with transaction.atomic():
            RoutedMessage.objects.bulk_create(
                [
                    RoutedMessage(message=m, outcome=RouteOutcome.NONE, sender=sender)
                    for m, sender in plain
                ]
            )
            if wanted:
                for message, _sender in plain:
                    emit(
                        EventType.MESSAGE_RECEIVED,
                        _message_payload(message, None),
                        account_id=ctx.account.pk,
                        ordering_key=f"account:{ctx.account.pk}",
                    )
        report.routed += len(plain)
    return rest


def _record_error(message: Message, exc: Exception) -> None:
    logger.exception("routing of message %s failed", message.pk)
    with transaction.atomic():
        RoutedMessage.objects.create(
            message=message,
            outcome=RouteOutcome.ERROR,
            detail=f"{type(exc).__name__}: {exc}"[:2000],
            sender=normalise_email(message.from_email),
        )
        do_log_event(
            kind="routing.failed",
            level=EventLevel.ERROR,
            account=message.account,
            message=_("Routing of message %(id)s failed: %(error)s")
            % {"id": message.pk, "error": f"{type(exc).__name__}: {exc}"},
            data={"message": message.pk},
        )


def do_route_pending(account: EmailAccount) -> RouteReport:
    """Route every stored, extracted and not yet routed message of ``account``."""
    ctx = routing_context(account)
    report = RouteReport()
    since = _cursor(account)
    quick = not _needs_each_message(ctx)
    while True:
        batch = list(pending_messages(account, since).select_related("account")[:BATCH])
        if not batch:
            _advance_cursor(account, since)
            return report
        # Within a batch, oldest mail first: a reply routed before its parent
        # would find no record yet.
        batch.sort(key=lambda m: (m.date is None, m.date or m.created_at, m.pk))
        todo: list[tuple[Message, Fields | None]] = [(m, None) for m in batch]
        if quick:
            # Headers read there are not read again here.
            todo = list(_route_batch_quickly(ctx, batch, report))
        for message, fields in todo:
            try:
                with transaction.atomic():
                    decision = route_message(ctx, message, fields)
            except Exception as exc:
                # Not swallowed: recorded on the message (ERROR, shown with the
                # error and re-routable) and in the event log, and the others go on.
                _record_error(message, exc)
                report.failed += 1
                continue
            report.routed += 1
            if decision.outcome == RouteOutcome.CREATED:
                report.created += 1
            elif decision.outcome == RouteOutcome.LINKED:
                report.linked += 1
            elif decision.outcome == RouteOutcome.HELD:
                report.held += 1
            if decision.record is not None:
                report.record_ids.append(decision.record.pk)


def do_reroute(messages: Sequence[Message]) -> None:
    """Forget how ``messages`` were routed (errors, held ones) so the next pass routes them again."""
    messages = list(messages)
    with transaction.atomic():
        RoutedMessage.objects.filter(
            Q(outcome=RouteOutcome.ERROR) | Q(outcome=RouteOutcome.HELD),
            message__in=messages,
        ).delete()
        # The next pass must look back as far as the oldest of them.
        for account_id in {m.account_id for m in messages}:
            first = min(m.pk for m in messages if m.account_id == account_id)
            RoutingCursor.objects.filter(account_id=account_id, next_pk__gt=first).update(
                next_pk=first
            )
