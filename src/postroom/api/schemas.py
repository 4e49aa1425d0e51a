"""Typed request and response bodies; django-ninja builds the OpenAPI document from them.

Input schemas only check JSON types. Every rule about the values (addresses,
port ranges, servers, passwords, defaults) is the shared form's job, so a
port of 70000 passes here and is refused by the form with its own message.
Output schemas have no password field of any kind, by construction.
"""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema

# -- errors -----------------------------------------------------------------


class ErrorOut(Schema):
    detail: str
    code: str


class FieldErrorsOut(ErrorOut):
    errors: dict[str, list[str]]


class SideResultOut(Schema):
    ok: bool
    code: str | None
    message: str
    fix: str


class ConnectionReportOut(Schema):
    ok: bool
    incoming: SideResultOut | None = Field(description="null when incoming is disabled")
    outgoing: SideResultOut | None = Field(description="null when outgoing is disabled")


class CheckFailedOut(ErrorOut):
    report: ConnectionReportOut


# -- accounts ---------------------------------------------------------------


class ServersOut(Schema):
    """Where the account really connects: its own settings, else its domain's or preset's."""

    incoming_protocol: str | None
    incoming_host: str | None
    incoming_port: int | None
    incoming_security: str | None
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: str | None
    smtp_auth: bool


class AccountOut(Schema):
    id: int
    name: str
    email: str
    domain: str | None
    preset: str | None
    owner: str | None
    incoming_enabled: bool
    incoming_protocol: str
    incoming_host: str
    incoming_port: int | None
    incoming_security: str
    folders: list[str]
    login: str
    sync_enabled: bool
    sync_option: str
    initial_sync_count: int | None
    poll_interval: int
    max_attachment_size: int | None
    pop3_delete_after_retrieval: bool
    outgoing_enabled: bool
    smtp_host: str
    smtp_port: int | None
    smtp_security: str
    smtp_auth: bool | None
    smtp_login: str
    outgoing_transport: str
    charset: str
    bcc_addresses: list[str]
    copy_to_sent: bool
    sent_folder: str
    verp_return_path: bool
    rate_limit_per_minute: int | None
    rate_limit_per_hour: int | None
    rate_limit_per_day: int | None
    max_queue_age: int
    awaiting_password: bool
    has_password: bool
    has_smtp_password: bool
    ascii_password: bool
    verify_cert: bool
    ca_cert: str
    allow_plaintext_login: bool
    sender_name: str
    always_use_account_name_as_sender: bool
    always_use_account_email_as_sender: bool
    use_for_integration: bool
    default_incoming: bool
    default_outgoing: bool
    is_template: bool
    servers: ServersOut
    rights: list[str] = Field(description="What the caller may do: read, send, manage")
    created_at: datetime
    updated_at: datetime


class AccountSavedOut(AccountOut):
    warnings: list[str] = Field(
        default_factory=list,
        description="Port and security combinations that are almost always wrong",
    )


class _AccountFields(Schema):
    """Every writable account field, all optional (shared by create and update)."""

    name: str | None = Field(None, description="Defaults to the email address")
    domain: str | None = Field(None, description="Domain name; derived from the address if omitted")
    preset: str | None = Field(None, description="Provider preset key, see GET /presets")
    owner: str | None = Field(None, description="Username; only administrators may set another")
    incoming_enabled: bool | None = None
    incoming_protocol: str | None = Field(None, description="imap or pop3")
    incoming_host: str | None = None
    incoming_port: int | None = None
    incoming_security: str | None = Field(None, description="ssl, starttls or none")
    folders: list[str] | None = None
    login: str | None = Field(None, description="Incoming login; the address when empty")
    password: str | None = Field(None, description="Write-only; omitted keeps the stored one")
    sync_option: str | None = Field(None, description="all or unseen; neither changes the server")
    initial_sync_count: int | None = Field(
        None, description="Newest messages the first sync takes; null for all"
    )
    poll_interval: int | None = Field(None, description="Seconds between polls without IDLE")
    max_attachment_size: int | None = Field(
        None, description="Bytes; larger attachments are recorded, not stored"
    )
    pop3_delete_after_retrieval: bool | None = None
    outgoing_enabled: bool | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = Field(None, description="ssl, starttls or none")
    smtp_auth: bool | None = Field(None, description="null inherits from the domain")
    smtp_login: str | None = None
    smtp_password: str | None = Field(
        None, description="Write-only; empty uses the incoming password"
    )
    outgoing_transport: str | None = Field(None, description="smtp or sendmail")
    charset: str | None = Field(
        None,
        description="utf-8 (default), iso-2022-jp or iso-8859-N; text that does not fit goes as UTF-8",
    )
    bcc_addresses: list[str] | None = Field(None, description="BCC every mail to these (C5)")
    copy_to_sent: bool | None = Field(None, description="APPEND a copy to the Sent folder (C11)")
    sent_folder: str | None = Field(None, description="Empty: the folder marked \\Sent")
    verp_return_path: bool | None = Field(
        None, description="Per-message return path address+token for bounce matching"
    )
    rate_limit_per_minute: int | None = Field(None, description="Messages; null for no limit")
    rate_limit_per_hour: int | None = Field(None, description="Messages; null for no limit")
    rate_limit_per_day: int | None = Field(None, description="Messages; null for no limit")
    max_queue_age: int | None = Field(None, description="Hours a deferred message is retried")
    awaiting_password: bool | None = None
    ascii_password: bool | None = None
    verify_cert: bool | None = None
    confirm_no_verify: bool | None = Field(
        None, description="Required to turn certificate verification off"
    )
    ca_cert: str | None = Field(None, description="PEM of a private CA to trust")
    allow_plaintext_login: bool | None = None
    sender_name: str | None = None
    always_use_account_name_as_sender: bool | None = None
    always_use_account_email_as_sender: bool | None = None
    use_for_integration: bool | None = None
    default_incoming: bool | None = None
    default_outgoing: bool | None = None
    skip_check: bool | None = Field(None, description="Save without asking the mail servers first")


class AccountCreateIn(_AccountFields):
    email: str


class AccountUpdateIn(_AccountFields):
    """Only the fields sent are changed; the result is validated as a whole."""

    email: str | None = None


class AccountFilters(Schema):
    """A15: every filter is optional; text filters match case-insensitively inside the value."""

    name: str | None = None
    owner: str | None = None
    email: str | None = None
    host: str | None = Field(None, description="Incoming or SMTP server")
    login: str | None = Field(None, description="Incoming login or SMTP username")
    port: int | None = Field(None, description="Incoming or SMTP port")
    protocol: str | None = Field(None, description="imap, pop3 or smtp")
    integration: bool | None = None


# -- domains ----------------------------------------------------------------


class DomainOut(Schema):
    id: int
    name: str
    incoming_protocol: str
    incoming_host: str
    incoming_port: int
    incoming_security: str
    smtp_host: str
    smtp_port: int | None
    smtp_security: str
    smtp_auth: bool
    verify_cert: bool
    ca_cert: str
    created_at: datetime
    updated_at: datetime


class DomainSavedOut(DomainOut):
    warnings: list[str] = Field(default_factory=list)


class _DomainFields(Schema):
    incoming_protocol: str | None = Field(None, description="imap or pop3")
    incoming_host: str | None = None
    incoming_port: int | None = None
    incoming_security: str | None = Field(None, description="ssl, starttls or none")
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    smtp_auth: bool | None = None
    verify_cert: bool | None = None
    confirm_no_verify: bool | None = Field(
        None, description="Required to turn certificate verification off"
    )
    ca_cert: str | None = None


class DomainCreateIn(_DomainFields):
    name: str


class DomainUpdateIn(_DomainFields):
    name: str | None = None


# -- presets and the caller -------------------------------------------------


class PresetServerOut(Schema):
    protocol: str
    host: str
    port: int
    security: str


class PresetOut(Schema):
    key: str
    name: str
    incoming: PresetServerOut | None = Field(description="null for outgoing-only relays")
    smtp: PresetServerOut
    auth: str = Field(description="password, app_password, oauth2, or a combination")
    login_hint: str
    note: str
    smtp_username: str | None
    self_signed_certificate: bool
    outgoing_only: bool


class MeOut(Schema):
    username: str
    is_superuser: bool
    can_add_accounts: bool
    can_manage_domains: bool
    token_name: str
