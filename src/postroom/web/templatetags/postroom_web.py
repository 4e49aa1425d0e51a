"""Small template helpers for the web UI."""

from __future__ import annotations

from django import template
from django.http import HttpRequest

register = template.Library()

# Which navigation entry each page belongs to, by URL-name prefix.
_SECTIONS = {
    "account": "accounts",
    "domain": "domains",
    "token": "tokens",
    "site_settings": "settings",
    "events": "events",
    "mail": "mail",
    "outbox": "outbox",
    "sync": "sync",
    "quarantine": "quarantine",
    "record": "records",
    "contact": "records",
    "notification": "notifications",
    "webhook": "webhooks",
}


@register.simple_tag(takes_context=True)
def nav_section(context: template.Context) -> str:
    request: HttpRequest | None = context.get("request")
    match = getattr(request, "resolver_match", None)
    name = getattr(match, "url_name", None) or ""
    for prefix, section in _SECTIONS.items():
        if name.startswith(prefix):
            return section
    return ""


@register.filter
def security_label(value: str | None) -> str:
    """The translated name of a security mode ("ssl" → "SSL/TLS")."""
    from postroom.accounts.models import SecurityChoice

    return str(SecurityChoice(value).label) if value in SecurityChoice.values else "—"


@register.simple_tag
def language_choices() -> list[tuple[str, str]]:
    """(code, name) from settings.LANGUAGES, untranslated.

    Each language is offered in its own name ("Deutsch", "العربية"), so someone
    who cannot read the current language still finds theirs; Django's
    ``get_available_languages`` would translate the names into the current one.
    """
    from django.conf import settings

    return [(code, str(name)) for code, name in settings.LANGUAGES]
