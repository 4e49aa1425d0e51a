"""presets.json is valid, complete, and the loader rejects malformed data."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from postroom.mail.diagnostics import port_security_warning
from postroom.mail.presets import (
    AuthKind,
    PresetError,
    get_preset,
    load_presets,
    parse_presets,
)
from postroom.mail.types import Protocol, Security

PROVIDERS = {
    "gmail", "outlook", "yahoo", "zoho", "icloud", "fastmail", "gmx", "webde",
    "mailru", "yandex", "ovh", "ionos", "proton_bridge",
}  # fmt: skip
RELAYS = {"sendgrid", "mailgun", "amazon_ses", "postmark", "sparkpost"}


def _document() -> dict[str, Any]:
    text = resources.files("postroom.mail").joinpath("presets.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def test_file_loads_and_has_every_provider_and_relay() -> None:
    keys = {preset.key for preset in load_presets()}
    assert keys == PROVIDERS | RELAYS


def test_relays_are_outgoing_only_and_providers_are_not() -> None:
    for preset in load_presets():
        assert preset.outgoing_only == (preset.key in RELAYS), preset.key
        assert preset.smtp.protocol is Protocol.SMTP


def test_known_servers() -> None:
    gmail = get_preset("gmail")
    assert gmail.incoming is not None
    assert (gmail.incoming.host, gmail.incoming.port, gmail.incoming.security) == (
        "imap.gmail.com",
        993,
        Security.SSL,
    )
    assert (gmail.smtp.host, gmail.smtp.port) == ("smtp.gmail.com", 465)
    outlook = get_preset("outlook")
    assert outlook.incoming is not None and outlook.incoming.host == "outlook.office365.com"
    assert (outlook.smtp.host, outlook.smtp.port, outlook.smtp.security) == (
        "smtp.office365.com",
        587,
        Security.STARTTLS,
    )
    assert outlook.auth is AuthKind.OAUTH2
    bridge = get_preset("proton_bridge")
    assert bridge.incoming is not None
    assert (bridge.incoming.host, bridge.incoming.port) == ("127.0.0.1", 1143)
    assert bridge.smtp.port == 1025
    assert bridge.self_signed_certificate
    sendgrid = get_preset("sendgrid")
    assert sendgrid.smtp_username == "apikey"
    assert sendgrid.login_hint == "apikey"


def test_no_preset_contradicts_the_port_warnings() -> None:
    for preset in load_presets():
        servers = [preset.smtp] + ([preset.incoming] if preset.incoming else [])
        for server in servers:
            assert port_security_warning(server.protocol, server.port, server.security) is None, (
                preset.key
            )


def test_unknown_key() -> None:
    with pytest.raises(KeyError):
        get_preset("hotmail-classic")


def _broken(mutate: Any) -> dict[str, Any]:
    data = copy.deepcopy(_document())
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "version 1"),
        (lambda d: d.update(presets=[]), "non-empty"),
        (lambda d: d["presets"][0].update(auth="magic"), "auth"),
        (lambda d: d["presets"][0]["smtp"].update(port=0), "port"),
        (lambda d: d["presets"][0]["smtp"].update(port="465"), "port"),
        (lambda d: d["presets"][0]["incoming"].update(security="tls"), "security"),
        (lambda d: d["presets"][0]["incoming"].update(protocol="smtp"), "imap or pop3"),
        (lambda d: d["presets"][0].pop("note"), "missing fields note"),
        (lambda d: d["presets"][0].update(colour="red"), "unknown fields colour"),
        (lambda d: d["presets"][0].update(name=""), "name"),
        (lambda d: d["presets"][1].update(key=d["presets"][0]["key"]), "duplicate"),
        (lambda d: d["presets"][0].update(self_signed_certificate="yes"), "true or false"),
    ],
)
def test_malformed_data_is_refused(mutate: Any, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        parse_presets(_broken(mutate))
