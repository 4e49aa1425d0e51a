"""What an account really connects to: its own settings, else its domain's, else its preset's."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from postroom.accounts.models import EmailAccount
from postroom.mail.presets import Preset, get_preset
from postroom.mail.types import (
    Credentials,
    Endpoint,
    IncomingCheck,
    OutgoingCheck,
    Protocol,
    Security,
    TLSPolicy,
)


@dataclass(frozen=True)
class Servers:
    incoming_protocol: str | None
    incoming_host: str | None
    incoming_port: int | None
    incoming_security: str | None
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: str | None
    smtp_auth: bool


def _first(*values: object) -> object:
    for value in values:
        if value not in (None, ""):
            return value
    return None


def _preset_value(preset: Preset | None, field: str) -> object:
    # Added by the API/CLI engineer (see their report): presets keep their
    # servers as ``preset.incoming`` / ``preset.smtp`` (ServerSettings), not as
    # flat account-style fields, so "incoming_host" is ``preset.incoming.host``.
    if preset is None:
        return None
    side, _sep, attribute = field.partition("_")
    server = preset.smtp if side == "smtp" else preset.incoming
    return getattr(server, attribute, None) if server is not None else None


def resolve_servers(account: EmailAccount) -> Servers:
    domain = account.domain if account.domain_id else None
    preset = get_preset(account.preset) if account.preset else None

    def pick(field: str, preset_field: str | None = None) -> object:
        return _first(
            getattr(account, field),
            getattr(domain, field, None),
            _preset_value(preset, preset_field or field),
        )

    smtp_auth = account.smtp_auth
    if smtp_auth is None:
        smtp_auth = domain.smtp_auth if domain is not None else True
    port_in = pick("incoming_port")
    port_out = pick("smtp_port")
    return Servers(
        incoming_protocol=str(pick("incoming_protocol") or "") or None,
        incoming_host=str(pick("incoming_host") or "") or None,
        incoming_port=int(port_in) if port_in is not None else None,  # type: ignore[call-overload]
        incoming_security=str(pick("incoming_security") or "") or None,
        smtp_host=str(pick("smtp_host") or "") or None,
        smtp_port=int(port_out) if port_out is not None else None,  # type: ignore[call-overload]
        smtp_security=str(pick("smtp_security") or "") or None,
        smtp_auth=bool(smtp_auth),
    )


def _tls(account: EmailAccount) -> TLSPolicy:
    domain = account.domain if account.domain_id else None
    ca = account.ca_cert or (domain.ca_cert if domain is not None else "")
    verify = account.verify_cert and (domain.verify_cert if domain is not None else True)
    return TLSPolicy(verify=verify, ca_pem=ca or None)


def incoming_check(account: EmailAccount, *, timeout: float | None = None) -> IncomingCheck:
    servers = resolve_servers(account)
    assert servers.incoming_host and servers.incoming_port and servers.incoming_security
    endpoint = Endpoint(
        protocol=Protocol(servers.incoming_protocol or "imap"),
        host=servers.incoming_host,
        port=servers.incoming_port,
        security=Security(servers.incoming_security),
        tls=_tls(account),
        timeout=timeout or settings.POSTROOM_CHECK_TIMEOUT,
        allow_plaintext_login=account.allow_plaintext_login,
    )
    folders = tuple(account.folders or ["INBOX"]) if endpoint.protocol is Protocol.IMAP else ()
    creds = Credentials(
        username=account.effective_login,
        password=account.get_password(),
        ascii_only=account.ascii_password,
    )
    return IncomingCheck(endpoint=endpoint, credentials=creds, folders=folders)


def outgoing_check(account: EmailAccount, *, timeout: float | None = None) -> OutgoingCheck:
    servers = resolve_servers(account)
    assert servers.smtp_host and servers.smtp_port and servers.smtp_security
    endpoint = Endpoint(
        protocol=Protocol.SMTP,
        host=servers.smtp_host,
        port=servers.smtp_port,
        security=Security(servers.smtp_security),
        tls=_tls(account),
        timeout=timeout or settings.POSTROOM_CHECK_TIMEOUT,
        allow_plaintext_login=account.allow_plaintext_login,
    )
    creds = (
        Credentials(
            username=account.effective_smtp_login,
            password=account.get_smtp_password(),
            ascii_only=account.ascii_password,
        )
        if servers.smtp_auth
        else None
    )
    return OutgoingCheck(
        endpoint=endpoint,
        credentials=creds,
        mail_from=account.email,
        rcpt_to=settings.POSTROOM_RELAY_PROBE_RCPT,
    )
