"""Provider presets (A2): server settings of well-known services, read from presets.json.

The data lives in ``presets.json`` beside this module so that adding or
correcting a provider is a data change. The file is validated strictly on
load (unknown fields included), so a typo fails the test suite rather than
producing an account that cannot connect.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from postroom.mail.types import Protocol, Security

_E = TypeVar("_E", bound=enum.StrEnum)


class AuthKind(enum.StrEnum):
    PASSWORD = "password"  # noqa: S105  (a kind of login, not a password)
    APP_PASSWORD = "app_password"  # noqa: S105
    OAUTH2 = "oauth2"
    PASSWORD_OR_OAUTH2 = "password_or_oauth2"  # noqa: S105
    APP_PASSWORD_OR_OAUTH2 = "app_password_or_oauth2"  # noqa: S105


class PresetError(ValueError):
    """presets.json does not have the expected shape."""


@dataclass(frozen=True)
class ServerSettings:
    protocol: Protocol
    host: str
    port: int
    security: Security


@dataclass(frozen=True)
class Preset:
    key: str
    name: str
    incoming: ServerSettings | None  # None: an outgoing-only relay
    smtp: ServerSettings
    auth: AuthKind
    login_hint: str  # English, shown (translated) next to the login field
    note: str  # English, translated for display by the Django layer
    smtp_username: str | None = None  # a fixed SMTP user name ("apikey" at SendGrid)
    self_signed_certificate: bool = False  # the server's certificate must be pinned (ca_pem)

    @property
    def outgoing_only(self) -> bool:
        return self.incoming is None


_PRESET_FIELDS = {
    "key": True,
    "name": True,
    "incoming": True,
    "smtp": True,
    "auth": True,
    "login_hint": True,
    "note": True,
    "smtp_username": False,
    "self_signed_certificate": False,
}
_SERVER_FIELDS = {"protocol", "host", "port", "security"}


@cache
def load_presets() -> tuple[Preset, ...]:
    """All presets in file order; parsed and validated once per process."""
    text = resources.files("postroom.mail").joinpath("presets.json").read_text("utf-8")
    return parse_presets(json.loads(text))


def get_preset(key: str) -> Preset:
    for preset in load_presets():
        if preset.key == key:
            return preset
    raise KeyError(key)


def parse_presets(data: Any) -> tuple[Preset, ...]:
    """Validate the decoded JSON document and build the dataclasses."""
    if not isinstance(data, dict) or data.get("version") != 1:
        raise PresetError("expected an object with version 1")
    entries = data.get("presets")
    if not isinstance(entries, list) or not entries:
        raise PresetError("'presets' must be a non-empty list")
    presets = tuple(_parse_preset(entry, index) for index, entry in enumerate(entries))
    keys = [preset.key for preset in presets]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise PresetError(f"duplicate preset keys: {', '.join(duplicates)}")
    return presets


def _parse_preset(entry: Any, index: int) -> Preset:
    where = f"preset #{index}"
    if not isinstance(entry, dict):
        raise PresetError(f"{where}: expected an object")
    where = f"preset {entry.get('key', index)!r}"
    _check_fields(entry, _PRESET_FIELDS, where)
    incoming_data = entry["incoming"]
    incoming = None
    if incoming_data is not None:
        incoming = _parse_server(incoming_data, f"{where}.incoming", None)
        if incoming.protocol is Protocol.SMTP:
            raise PresetError(f"{where}.incoming: protocol must be imap or pop3")
    smtp_username = entry.get("smtp_username")
    if smtp_username is not None:
        smtp_username = _text(smtp_username, f"{where}.smtp_username")
    self_signed = entry.get("self_signed_certificate", False)
    if not isinstance(self_signed, bool):
        raise PresetError(f"{where}.self_signed_certificate: expected true or false")
    return Preset(
        key=_text(entry["key"], f"{where}.key"),
        name=_text(entry["name"], f"{where}.name"),
        incoming=incoming,
        smtp=_parse_server(entry["smtp"], f"{where}.smtp", Protocol.SMTP),
        auth=_enum(AuthKind, entry["auth"], f"{where}.auth"),
        login_hint=_text(entry["login_hint"], f"{where}.login_hint"),
        note=_text(entry["note"], f"{where}.note"),
        smtp_username=smtp_username,
        self_signed_certificate=self_signed,
    )


def _parse_server(data: Any, where: str, protocol: Protocol | None) -> ServerSettings:
    if not isinstance(data, dict):
        raise PresetError(f"{where}: expected an object")
    required = dict.fromkeys(_SERVER_FIELDS - ({"protocol"} if protocol else set()), True)
    if protocol is not None:
        required["protocol"] = False
    _check_fields(data, required, where)
    port = data["port"]
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise PresetError(f"{where}.port: expected a port number, got {port!r}")
    return ServerSettings(
        protocol=protocol or _enum(Protocol, data["protocol"], f"{where}.protocol"),
        host=_text(data["host"], f"{where}.host"),
        port=port,
        security=_enum(Security, data["security"], f"{where}.security"),
    )


def _check_fields(data: dict[str, Any], fields: dict[str, bool], where: str) -> None:
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise PresetError(f"{where}: unknown fields {', '.join(unknown)}")
    missing = sorted(name for name, required in fields.items() if required and name not in data)
    if missing:
        raise PresetError(f"{where}: missing fields {', '.join(missing)}")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PresetError(f"{where}: expected non-empty text")
    return value


def _enum(kind: type[_E], value: Any, where: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise PresetError(f"{where}: {value!r} is not one of {allowed}") from None
