"""Validation of accounts and domains, shared by the web UI, the API and the CLI.

One form per object so every interface refuses the same bad input with the
same specific message.
"""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import validate_email
from django.db import models
from django.forms.models import construct_instance
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_stubs_ext import StrOrPromise

from postroom.accounts.diagnosis_text import describe_warning
from postroom.accounts.models import (
    EmailAccount,
    EmailDomain,
    IncomingProtocol,
    OutgoingTransport,
)
from postroom.accounts.resolve import resolve_servers
from postroom.core.models import SiteSettings
from postroom.mail.diagnostics import port_security_warning
from postroom.mail.presets import load_presets
from postroom.mail.types import Protocol, Security


def preset_choices() -> list[tuple[str, StrOrPromise]]:
    return [("", gettext_lazy("— none —"))] + [(p.key, p.name) for p in load_presets()]


def port_warnings(protocol: str | None, port: int | None, security: str | None) -> list[str]:
    """Almost-always-wrong port/security combinations, said before anything is tried."""
    if not (protocol and port and security):
        return []
    warning = port_security_warning(Protocol(protocol), port, Security(security))
    return [describe_warning(warning)] if warning else []


class FoldersField(forms.CharField):
    """IMAP folders, one per line (commas accepted too)."""

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):
            items = [str(v) for v in value]
        else:
            text = super().to_python(value) or ""
            items = text.replace(",", "\n").splitlines()
        return [item.strip() for item in items if item.strip()]

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(value)
        return value


class AddressListField(forms.CharField):
    """Email addresses, one per line (commas and semicolons accepted too)."""

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):
            items = [str(v) for v in value]
        else:
            text = super().to_python(value) or ""
            items = text.replace(",", "\n").replace(";", "\n").splitlines()
        addresses: list[str] = []
        for item in items:
            address = item.strip()
            if address and address.lower() not in {a.lower() for a in addresses}:
                addresses.append(address)
        return addresses

    def validate(self, value: Any) -> None:
        super().validate(value)
        for address in value:
            try:
                validate_email(address)
            except forms.ValidationError as exc:
                raise forms.ValidationError(
                    _("%(address)s is not a valid email address.") % {"address": address}
                ) from exc

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(value)
        return value


def confirm_no_verify_field(subject: StrOrPromise) -> forms.BooleanField:
    return forms.BooleanField(
        label=gettext_lazy(
            "I understand that without certificate verification anyone on the network "
            "path can read %(subject)s."
        )
        % {"subject": subject},
        required=False,
    )


def require_no_verify_confirmation(form: forms.ModelForm[Any], data: dict[str, Any]) -> None:
    """A12: turning verification off needs an explicit tick, every interface alike."""
    was_verifying = form.instance.pk is None or form.instance.verify_cert
    if not data.get("verify_cert") and was_verifying and not data.get("confirm_no_verify"):
        form.add_error(
            "confirm_no_verify", _("Confirm that you want to turn certificate verification off.")
        )


class DomainForm(forms.ModelForm[EmailDomain]):
    confirm_no_verify = confirm_no_verify_field(
        gettext_lazy("the passwords and mail of every account in this domain")
    )

    class Meta:
        model = EmailDomain
        fields = [
            "name",
            "incoming_protocol",
            "incoming_host",
            "incoming_port",
            "incoming_security",
            "smtp_host",
            "smtp_port",
            "smtp_security",
            "smtp_auth",
            "verify_cert",
            "ca_cert",
        ]

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip().lower().rstrip(".")
        if "@" in name or "." not in name or " " in name:
            raise forms.ValidationError(
                _("Enter a domain name such as example.com, without @ or spaces.")
            )
        try:
            name.encode("idna")
        except UnicodeError as exc:
            raise forms.ValidationError(_("This is not a valid domain name.")) from exc
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("smtp_host") and not data.get("smtp_port"):
            self.add_error("smtp_port", _("Give the SMTP port as well as the SMTP server."))
        require_no_verify_confirmation(self, data)
        return data

    @property
    def warnings(self) -> list[str]:
        data = self.cleaned_data if self.is_bound and hasattr(self, "cleaned_data") else {}
        return port_warnings(
            data.get("incoming_protocol"), data.get("incoming_port"), data.get("incoming_security")
        ) + port_warnings("smtp", data.get("smtp_port"), data.get("smtp_security"))


class AccountForm(forms.ModelForm[EmailAccount]):
    """Every option of A1–A13. Passwords are write-only: empty keeps the stored one."""

    password = forms.CharField(
        label=gettext_lazy("Password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    smtp_password = forms.CharField(
        label=gettext_lazy("SMTP password"),
        required=False,
        strip=False,
        help_text=gettext_lazy("Leave empty to use the incoming password."),
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    confirm_no_verify = confirm_no_verify_field(gettext_lazy("this account's password and mail"))
    folders = FoldersField(
        label=gettext_lazy("IMAP folders"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("One per line; INBOX when empty."),
    )
    bcc_addresses = AddressListField(
        label=gettext_lazy("BCC every mail to"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("One address per line; they receive a hidden copy of every mail."),
    )
    preset = forms.ChoiceField(label=gettext_lazy("Provider preset"), required=False, choices=())
    skip_check = forms.BooleanField(
        label=gettext_lazy("Save without checking the servers"), required=False
    )

    class Meta:
        model = EmailAccount
        fields = [
            "name",
            "email",
            "domain",
            "preset",
            "owner",
            "incoming_enabled",
            "incoming_protocol",
            "incoming_host",
            "incoming_port",
            "incoming_security",
            "folders",
            "login",
            "sync_option",
            "initial_sync_count",
            "poll_interval",
            "max_attachment_size",
            "pop3_delete_after_retrieval",
            "outgoing_enabled",
            "smtp_host",
            "smtp_port",
            "smtp_security",
            "smtp_auth",
            "smtp_login",
            "outgoing_transport",
            "charset",
            "bcc_addresses",
            "copy_to_sent",
            "sent_folder",
            "verp_return_path",
            "rate_limit_per_minute",
            "rate_limit_per_hour",
            "rate_limit_per_day",
            "max_queue_age",
            "awaiting_password",
            "ascii_password",
            "verify_cert",
            "ca_cert",
            "allow_plaintext_login",
            "sender_name",
            "always_use_account_name_as_sender",
            "always_use_account_email_as_sender",
            "use_for_integration",
            "default_incoming",
            "default_outgoing",
        ]
        widgets = {"ca_cert": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        preset_field = self.fields["preset"]
        assert isinstance(preset_field, forms.ChoiceField)
        preset_field.choices = preset_choices()
        owner_field = self.fields["owner"]
        assert isinstance(owner_field, forms.ModelChoiceField)
        owner_field.queryset = get_user_model().objects.filter(is_active=True)
        for name in self.DEFAULTED:
            self.fields[name].required = False
        self.warnings: list[str] = []

    def _get_validation_exclusions(self) -> set[str]:
        # A4 says marking a new default unmarks the old one, which
        # do_save_account does in one transaction; validating the partial unique
        # indexes here would refuse that instead. The indexes stay the
        # database's last word against a second default.
        exclusions: set[str] = super()._get_validation_exclusions()  # type: ignore[misc]
        return {*exclusions, "default_incoming", "default_outgoing"}

    # Settings with a sensible default: left out (an API call, a CLI command, an
    # older client), they take the model's default instead of being an error.
    DEFAULTED = ("sync_option", "poll_interval", "outgoing_transport", "charset", "max_queue_age")

    def _default_if_empty(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        if value in (None, ""):
            model_field = EmailAccount._meta.get_field(name)
            assert isinstance(model_field, models.Field)
            return model_field.get_default()
        return value

    def clean_sync_option(self) -> Any:
        return self._default_if_empty("sync_option")

    def clean_poll_interval(self) -> Any:
        return self._default_if_empty("poll_interval")

    def clean_outgoing_transport(self) -> Any:
        return self._default_if_empty("outgoing_transport")

    def clean_charset(self) -> Any:
        return self._default_if_empty("charset")

    def clean_max_queue_age(self) -> Any:
        return self._default_if_empty("max_queue_age")

    def clean_bcc_addresses(self) -> list[str]:
        return [str(a) for a in self.cleaned_data.get("bcc_addresses") or []]

    # -- field cleaning ---------------------------------------------------
    def clean_email(self) -> str:
        return str(self.cleaned_data["email"]).strip().lower()

    def clean_ca_cert(self) -> str:
        pem = str(self.cleaned_data.get("ca_cert") or "").strip()
        if pem and "-----BEGIN CERTIFICATE-----" not in pem:
            raise forms.ValidationError(
                _(
                    "Paste the CA certificate in PEM form (it starts with -----BEGIN CERTIFICATE-----)."
                )
            )
        return pem

    # -- cross-field rules ------------------------------------------------
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        email = data.get("email", "")
        if not data.get("name"):
            data["name"] = email
            if EmailAccount.objects.filter(name=email).exclude(pk=self.instance.pk).exists():
                self.add_error("name", _("An account with this name already exists."))
        self._clean_domain(data)
        if self.errors:
            return data
        candidate = copy.copy(self.instance)
        construct_instance(self, candidate, fields=self._meta.fields)
        candidate.name = data["name"]
        candidate.domain = data.get("domain")
        servers = resolve_servers(candidate)
        self._clean_servers(data, servers)
        self._clean_password(data, servers.smtp_auth)
        self._clean_security(data, servers)
        self._clean_defaults(data)
        self._clean_sent_copy(data, servers)
        if data.get("incoming_enabled") and servers.incoming_protocol == IncomingProtocol.IMAP:
            if not data.get("folders"):
                data["folders"] = ["INBOX"]
        self.warnings = port_warnings(
            servers.incoming_protocol, servers.incoming_port, servers.incoming_security
        ) + port_warnings("smtp", servers.smtp_port, servers.smtp_security)
        return data

    def _clean_domain(self, data: dict[str, Any]) -> None:
        email: str = data.get("email", "")
        email_domain = email.rpartition("@")[2]
        domain: EmailDomain | None = data.get("domain")
        if domain is not None and domain.name != email_domain:
            self.add_error(
                "domain",
                _("The address %(email)s is not in the domain %(domain)s.")
                % {"email": email, "domain": domain.name},
            )
            return
        if domain is None and not data.get("preset"):
            # A1: the domain comes from the address when the user gave none.
            data["domain"] = EmailDomain.objects.filter(name=email_domain).first()

    def _clean_servers(self, data: dict[str, Any], servers: Any) -> None:
        unknown_domain = _(
            "No servers known for %(domain)s: add the domain under Domains, choose a "
            "provider preset, or enter the servers."
        ) % {"domain": data.get("email", "").rpartition("@")[2]}
        if data.get("incoming_enabled"):
            if not (servers.incoming_host and servers.incoming_port and servers.incoming_security):
                self.add_error("incoming_host", unknown_domain)
            if servers.incoming_protocol == IncomingProtocol.POP3 and self.instance.pk is None:
                if not SiteSettings.load().allow_pop3_for_new_accounts:
                    self.add_error(
                        "incoming_protocol",
                        _("POP3 is switched off for new accounts on this site; use IMAP."),
                    )
        if data.get("outgoing_enabled") and _uses_smtp(data):
            if not (servers.smtp_host and servers.smtp_port and servers.smtp_security):
                self.add_error("smtp_host", unknown_domain)

    def _clean_password(self, data: dict[str, Any], smtp_auth: bool) -> None:
        needs_login = data.get("incoming_enabled") or (
            data.get("outgoing_enabled") and smtp_auth and _uses_smtp(data)
        )
        has_stored = bool(self.instance.pk and self.instance.password_encrypted)
        if needs_login and not data.get("awaiting_password"):
            if not data.get("password") and not has_stored:
                self.add_error(
                    "password",
                    _("Enter the password, or mark the account as awaiting its password."),
                )
        if data.get("ascii_password"):
            for field in ("password", "smtp_password"):
                if data.get(field) and not str(data[field]).isascii():
                    self.add_error(
                        field,
                        _(
                            "This account accepts ASCII passwords only; this one has other characters."
                        ),
                    )

    def _clean_security(self, data: dict[str, Any], servers: Any) -> None:
        require_no_verify_confirmation(self, data)
        if data.get("allow_plaintext_login"):
            return
        plain_in = data.get("incoming_enabled") and servers.incoming_security == Security.NONE
        plain_out = (
            data.get("outgoing_enabled")
            and _uses_smtp(data)
            and servers.smtp_auth
            and servers.smtp_security == Security.NONE
        )
        message = _(
            "With security set to none the password would cross the network unencrypted. "
            "Choose SSL/TLS or STARTTLS, or explicitly allow unencrypted login."
        )
        if plain_in:
            self.add_error("incoming_security", message)
        if plain_out:
            self.add_error("smtp_security", message)

    def _clean_defaults(self, data: dict[str, Any]) -> None:
        if data.get("default_incoming") and not data.get("incoming_enabled"):
            self.add_error(
                "default_incoming", _("The default incoming account must have incoming enabled.")
            )
        if data.get("default_outgoing") and not data.get("outgoing_enabled"):
            self.add_error(
                "default_outgoing", _("The default outgoing account must have outgoing enabled.")
            )

    def _clean_sent_copy(self, data: dict[str, Any], servers: Any) -> None:
        # C11: the copy goes in by IMAP APPEND, so it needs the account's IMAP server.
        imap = servers.incoming_protocol in (None, "", IncomingProtocol.IMAP)
        if data.get("copy_to_sent") and not (imap and servers.incoming_host):
            self.add_error(
                "copy_to_sent",
                _("A copy in the Sent folder needs an IMAP server for this account."),
            )

    # -- results ----------------------------------------------------------
    def passwords(self) -> tuple[str | None, str | None]:
        """(password, smtp_password) to pass to do_save_account: None keeps the stored one."""
        return (
            self.cleaned_data.get("password") or None,
            self.cleaned_data.get("smtp_password") or None,
        )


def _uses_smtp(data: dict[str, Any]) -> bool:
    """C3: a sendmail account has no SMTP server, login or port to check."""
    return data.get("outgoing_transport") != OutgoingTransport.SENDMAIL
