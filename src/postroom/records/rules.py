"""B12: conditions and actions of incoming-mail rules, checked and applied.

A rule is data (JSON on :class:`postroom.records.models.Rule`), never code:
conditions compare one field of the mail with a text (no regular
expressions, so a rule can never hang routing), actions are a fixed set.

Condition: ``{"field": F, "op": O, "value": V}`` with F one of
``from``, ``to``, ``cc``, ``recipients`` (To and Cc), ``subject``,
``header`` (then ``"header": "List-Id"``), ``attachment_name``,
``has_attachments``; O one of ``contains``, ``not_contains``, ``equals``,
``starts_with``, ``ends_with``, ``exists``, ``not_exists`` (texts compare
without case). ``has_attachments`` takes ``"op": "yes"`` or ``"no"``.

Action: ``{"action": A}`` plus ``"value"`` where A needs one: ``skip`` (no
record, no auto-reply), ``label`` (value: the label), ``set_record_type``
(value: a record type key), ``assign_owner`` (value: a user name),
``mark_read``, ``move_to_folder`` (value: an IMAP folder), ``stop`` (no
later rule runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

TEXT_FIELDS = ("from", "to", "cc", "recipients", "subject", "header", "attachment_name")
FIELDS = (*TEXT_FIELDS, "has_attachments")
TEXT_OPS = (
    "contains",
    "not_contains",
    "equals",
    "starts_with",
    "ends_with",
    "exists",
    "not_exists",
)
VALUELESS_OPS = ("exists", "not_exists")
ACTIONS_WITH_VALUE = ("label", "set_record_type", "assign_owner", "move_to_folder")
ACTIONS = (*ACTIONS_WITH_VALUE, "skip", "mark_read", "stop")


class RuleInvalid(ValueError):
    """A rule that cannot be saved; ``field`` names the part (``conditions[0].op``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def validate_rule(
    conditions: Sequence[Mapping[str, Any]], actions: Sequence[Mapping[str, Any]], match: str
) -> None:
    from django.contrib.auth import get_user_model

    from postroom.records.models import RecordType

    if match not in ("all", "any"):
        raise RuleInvalid("match", _('Match must be "all" or "any".'))
    if not conditions:
        raise RuleInvalid("conditions", _("A rule needs at least one condition."))
    if not actions:
        raise RuleInvalid("actions", _("A rule needs at least one action."))
    for i, cond in enumerate(conditions):
        where = f"conditions[{i}]"
        if not isinstance(cond, Mapping):
            raise RuleInvalid(where, _("A condition is an object with field, op and value."))
        name = cond.get("field")
        op = cond.get("op")
        if name not in FIELDS:
            raise RuleInvalid(
                f"{where}.field",
                _("Unknown field %(f)r; use one of: %(list)s.")
                % {"f": name, "list": ", ".join(FIELDS)},
            )
        if name == "has_attachments":
            if op not in ("yes", "no"):
                raise RuleInvalid(f"{where}.op", _('For attachments the op is "yes" or "no".'))
            continue
        if op not in TEXT_OPS:
            raise RuleInvalid(
                f"{where}.op",
                _("Unknown op %(o)r; use one of: %(list)s.")
                % {"o": op, "list": ", ".join(TEXT_OPS)},
            )
        if name == "header" and not str(cond.get("header") or "").strip():
            raise RuleInvalid(f"{where}.header", _("Name the header to look at."))
        if op not in VALUELESS_OPS and not str(cond.get("value") or "").strip():
            raise RuleInvalid(f"{where}.value", _("Give the text to compare with."))
    for i, act in enumerate(actions):
        where = f"actions[{i}]"
        if not isinstance(act, Mapping) or act.get("action") not in ACTIONS:
            raise RuleInvalid(
                f"{where}.action",
                _("Unknown action; use one of: %(list)s.") % {"list": ", ".join(ACTIONS)},
            )
        kind = act["action"]
        value = str(act.get("value") or "").strip()
        if kind in ACTIONS_WITH_VALUE and not value:
            raise RuleInvalid(f"{where}.value", _("This action needs a value."))
        if kind == "set_record_type" and not RecordType.objects.filter(key=value).exists():
            raise RuleInvalid(f"{where}.value", _("There is no record type %(v)r.") % {"v": value})
        if (
            kind == "assign_owner"
            and not get_user_model().objects.filter(username=value, is_active=True).exists()
        ):
            raise RuleInvalid(f"{where}.value", _("There is no active user %(v)r.") % {"v": value})


@dataclass(frozen=True)
class MailFacts:
    """What rules can look at, taken from a stored message."""

    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    headers: Mapping[str, Sequence[str]]  # lower-case names
    attachment_names: tuple[str, ...]
    has_attachments: bool


@dataclass
class RuleOutcome:
    matched: list[str] = field(default_factory=list)
    skip: bool = False
    labels: list[str] = field(default_factory=list)
    record_type: str | None = None
    owner: str | None = None
    mark_read: bool = False
    move_to: str | None = None


def _values(facts: MailFacts, cond: Mapping[str, Any]) -> list[str]:
    name = cond["field"]
    if name == "from":
        return [facts.sender] if facts.sender else []
    if name == "to":
        return list(facts.to)
    if name == "cc":
        return list(facts.cc)
    if name == "recipients":
        return [*facts.to, *facts.cc]
    if name == "subject":
        return [facts.subject]
    if name == "header":
        return list(facts.headers.get(str(cond.get("header", "")).strip().lower(), ()))
    return list(facts.attachment_names)


def _compare(op: str, value: str, wanted: str) -> bool:
    value, wanted = value.casefold(), wanted.casefold()
    if op == "contains":
        return wanted in value
    if op == "equals":
        return value.strip() == wanted.strip()
    if op == "starts_with":
        return value.startswith(wanted)
    return value.endswith(wanted)  # ends_with


def condition_holds(facts: MailFacts, cond: Mapping[str, Any]) -> bool:
    if cond["field"] == "has_attachments":
        return facts.has_attachments is (cond["op"] == "yes")
    values = _values(facts, cond)
    op = cond["op"]
    if op == "exists":
        return any(v.strip() for v in values)
    if op == "not_exists":
        return not any(v.strip() for v in values)
    wanted = str(cond.get("value", ""))
    if op == "not_contains":
        return not any(wanted.casefold() in v.casefold() for v in values)
    return any(_compare(op, v, wanted) for v in values)


def apply_rules(rules: Sequence[Any], facts: MailFacts) -> RuleOutcome:
    """Run enabled ``rules`` (model rows, in order) against ``facts``."""
    outcome = RuleOutcome()
    for rule in rules:
        if not rule.enabled:
            continue
        checks = (condition_holds(facts, c) for c in rule.conditions)
        if not (all(checks) if rule.match == "all" else any(checks)):
            continue
        outcome.matched.append(rule.name)
        stop = False
        for act in rule.actions:
            kind, value = act["action"], str(act.get("value") or "").strip()
            if kind == "skip":
                outcome.skip = True
            elif kind == "label" and value not in outcome.labels:
                outcome.labels.append(value)
            elif kind == "set_record_type":
                outcome.record_type = value
            elif kind == "assign_owner":
                outcome.owner = value
            elif kind == "mark_read":
                outcome.mark_read = True
            elif kind == "move_to_folder":
                outcome.move_to = value
            elif kind == "stop":
                stop = True
        if stop:
            break
    return outcome
