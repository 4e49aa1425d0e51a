"""What an account form inherits, shown while the user fills it in.

Server fields left empty on an account are inherited from its domain or its
provider preset (:mod:`postroom.accounts.resolve`). Rather than copying those
values into the account (which would stop later domain changes from reaching
it), the form shows them as placeholders and as the label of the empty choice,
so choosing a preset or a domain visibly "fills" the form while the account
keeps inheriting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.utils.translation import gettext as _

from postroom.accounts.forms import port_warnings
from postroom.accounts.models import EmailAccount, EmailDomain, IncomingProtocol, SecurityChoice
from postroom.accounts.resolve import Servers, resolve_servers
from postroom.mail.presets import Preset, get_preset

# Fields whose empty value means "inherit"; the htmx endpoints re-render these rows.
SERVER_FIELDS = (
    "incoming_protocol",
    "incoming_host",
    "incoming_port",
    "incoming_security",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_auth",
)
# Fields that decide where the inherited values come from.
SOURCE_FIELDS = ("email", "domain", "preset")
# Unchecked boxes are simply absent from the query: a disabled side gets no warning.
SIDE_FIELDS = ("incoming_enabled", "outgoing_enabled")
HINT_FIELDS = (*SOURCE_FIELDS, *SERVER_FIELDS, *SIDE_FIELDS)


@dataclass(frozen=True)
class Inherited:
    """Where an account's server settings come from when its own fields are empty."""

    kind: str  # "domain", "preset" or "" (nothing to inherit)
    label: str  # the domain's name or the preset's display name
    servers: Servers
    note: str  # the preset's advice (app password, OAuth2, ...), if any
    address: str  # the address typed so far; with nothing typed there is nothing to say


def _preset(key: str) -> Preset | None:
    """The preset with ``key``, or None; unknown keys (stale form data) are ignored."""
    try:
        return get_preset(key) if key else None
    except KeyError:
        return None


def _domain(value: object) -> EmailDomain | None:
    text = str(value or "").strip()
    return EmailDomain.objects.filter(pk=int(text)).first() if text.isdigit() else None


def inherited_from(data: Mapping[str, Any]) -> Inherited:
    """What an account with ``data`` (raw form values) inherits for its empty server fields."""
    email = str(data.get("email") or "").strip().lower()
    preset = _preset(str(data.get("preset") or ""))
    domain = _domain(data.get("domain"))
    if domain is None and preset is None:
        # A1: with neither chosen, the domain comes from the address (as AccountForm does).
        domain = (
            EmailDomain.objects.filter(name=email.rpartition("@")[2]).first() if email else None
        )
    # An account with no server settings of its own resolves to exactly what it inherits.
    bare = EmailAccount(email=email, domain=domain, preset=preset.key if preset else "")
    servers = resolve_servers(bare)
    if domain is not None:
        return Inherited("domain", domain.name, servers, "", email)
    if preset is not None:
        # Preset notes are English data; a catalog entry, where one exists, translates them.
        note = _(preset.note) if preset.note else ""
        return Inherited("preset", preset.name, servers, note, email)
    return Inherited("", "", servers, "", email)


def _security_label(value: str | None) -> str:
    return str(SecurityChoice(value).label) if value in SecurityChoice.values else ""


def apply_inherited(form: forms.BaseForm, inherited: Inherited) -> None:
    """Show inherited values as placeholders and as the empty choice's label."""
    s = inherited.servers
    placeholders = {
        "incoming_host": s.incoming_host,
        "incoming_port": s.incoming_port,
        "smtp_host": s.smtp_host,
        "smtp_port": s.smtp_port,
    }
    for name, value in placeholders.items():
        form.fields[name].widget.attrs["placeholder"] = "" if value is None else str(value)

    def inherit_label(value: str) -> str:
        if not value:
            return _("— not set —")
        return _("Inherited: %(value)s") % {"value": value}

    protocol = s.incoming_protocol.upper() if s.incoming_protocol else ""
    selects: dict[str, tuple[str, list[tuple[str, Any]]]] = {
        "incoming_protocol": (protocol, IncomingProtocol.choices),
        "incoming_security": (_security_label(s.incoming_security), SecurityChoice.choices),
        "smtp_security": (_security_label(s.smtp_security), SecurityChoice.choices),
    }
    for name, (label, choices) in selects.items():
        field = form.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", inherit_label(label)), *choices]
    auth = form.fields["smtp_auth"].widget
    # NullBooleanSelect: "unknown" (None) means inherit from the domain.
    auth.choices = [
        ("unknown", inherit_label(_("yes") if s.smtp_auth else _("no"))),
        ("true", _("Yes")),
        ("false", _("No")),
    ]


def mark_hint_fields(form: forms.BaseForm) -> None:
    """Tag the inputs the htmx endpoints read, so hx-include can find exactly them.

    Only these go into the GET query of the live hints; password fields never do.
    """
    for name in HINT_FIELDS:
        form.fields[name].widget.attrs["data-hint"] = name


def account_warnings(data: Mapping[str, Any]) -> list[str]:
    """Port/security warnings for the account being edited, with inherited values filled in."""
    inherited = inherited_from(data).servers

    def own(name: str) -> str:
        return str(data.get(name) or "").strip()

    def port(name: str, fallback: int | None) -> int | None:
        value = own(name)
        if value.isdigit():
            return int(value)
        return fallback

    warnings: list[str] = []
    if data.get("incoming_enabled"):
        warnings += port_warnings(
            own("incoming_protocol") or inherited.incoming_protocol,
            port("incoming_port", inherited.incoming_port),
            own("incoming_security") or inherited.incoming_security,
        )
    if data.get("outgoing_enabled"):
        warnings += port_warnings(
            "smtp",
            port("smtp_port", inherited.smtp_port),
            own("smtp_security") or inherited.smtp_security,
        )
    return warnings


def domain_warnings(data: Mapping[str, Any]) -> list[str]:
    def port(name: str) -> int | None:
        value = str(data.get(name) or "").strip()
        return int(value) if value.isdigit() else None

    return port_warnings(
        str(data.get("incoming_protocol") or "") or None,
        port("incoming_port"),
        str(data.get("incoming_security") or "") or None,
    ) + port_warnings("smtp", port("smtp_port"), str(data.get("smtp_security") or "") or None)
