"""Forms that only the web UI needs: list filters, sharing, tokens, site settings.

Account and domain input is validated by the shared forms in
:mod:`postroom.accounts.forms`, so the UI, the API and the CLI refuse the same
bad input with the same message; nothing here duplicates those rules.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from postroom.accounts.forms import AccountForm
from postroom.accounts.models import EmailAccount, IncomingProtocol
from postroom.core.models import EventLevel


class AccountFilterForm(forms.Form):
    """A15: the account list's filters, submitted as a GET query.

    Matching is done by :func:`postroom.api.filtering.filter_accounts`, so the
    UI and the API find the same accounts for the same query.
    """

    name = forms.CharField(label=gettext_lazy("Name"), required=False)
    owner = forms.CharField(label=gettext_lazy("Owner"), required=False)
    address = forms.CharField(label=gettext_lazy("Address"), required=False)
    server = forms.CharField(label=gettext_lazy("Server"), required=False)
    login = forms.CharField(label=gettext_lazy("Login"), required=False)
    port = forms.IntegerField(
        label=gettext_lazy("Port"), required=False, min_value=1, max_value=65535
    )
    protocol = forms.ChoiceField(
        label=gettext_lazy("Protocol"),
        required=False,
        choices=[("", gettext_lazy("any")), *IncomingProtocol.choices, ("smtp", "SMTP")],
    )
    integration = forms.ChoiceField(
        label=gettext_lazy("Integration"),
        required=False,
        choices=[
            ("", gettext_lazy("any")),
            ("yes", gettext_lazy("used for integration")),
            ("no", gettext_lazy("not for integration")),
        ],
    )


class ShareForm(forms.Form):
    """A11: give one user or one group rights on an account."""

    user = forms.ModelChoiceField(
        label=gettext_lazy("User"),
        queryset=User.objects.filter(is_active=True).order_by("username"),
        required=False,
    )
    group = forms.ModelChoiceField(
        label=gettext_lazy("Group"), queryset=Group.objects.order_by("name"), required=False
    )
    can_read = forms.BooleanField(label=gettext_lazy("read"), required=False, initial=True)
    can_send = forms.BooleanField(label=gettext_lazy("send"), required=False)
    can_manage = forms.BooleanField(label=gettext_lazy("manage"), required=False)

    def __init__(self, *args: Any, account: EmailAccount, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        user, group = data.get("user"), data.get("group")
        if (user is None) == (group is None):
            raise forms.ValidationError(_("Choose either a user or a group."))
        if user is not None and user.pk == self.account.owner_id:
            self.add_error("user", _("The owner already has every right on this account."))
        if not (data.get("can_read") or data.get("can_send") or data.get("can_manage")):
            raise forms.ValidationError(_("Give at least one right."))
        return data


class TokenForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=100,
        help_text=gettext_lazy("What the token is for, e.g. the application that uses it."),
    )


class SiteSettingsForm(forms.Form):
    allow_pop3_for_new_accounts = forms.BooleanField(
        label=gettext_lazy("Allow POP3 for new accounts"),
        required=False,
        help_text=gettext_lazy("Existing POP3 accounts keep working when this is switched off."),
    )


class AwaitingPasswordForm(forms.Form):
    """A7: the owner supplies the password of an account created for them."""

    account = forms.IntegerField(widget=forms.HiddenInput)
    password = forms.CharField(
        label=gettext_lazy("Password"),
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


def account_form_data(account: EmailAccount) -> dict[str, Any]:
    """The data an :class:`AccountForm` would submit unchanged for ``account``.

    Lets a page that changes only one thing (the A7 password page) still run
    the whole shared validation, instead of saving around it.
    """
    form = AccountForm(instance=account)
    return {name: form.get_initial_for_field(field, name) for name, field in form.fields.items()}


class MailSearchForm(forms.Form):
    """The mailbox pages' GET query: search text, and which folder or thread to show."""

    q = forms.CharField(
        label=gettext_lazy("Search"),
        required=False,
        max_length=200,
        help_text=gettext_lazy("Sender (name or address) or subject contains"),
    )
    folder = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)
    thread = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class EventFilterForm(forms.Form):
    """E1: the event log's filters, submitted as a GET query.

    The account choices are only the accounts the user can see, so an
    invisible account's id is refused like any other invalid choice.
    """

    account = forms.ModelChoiceField(
        label=gettext_lazy("Account"),
        queryset=EmailAccount.objects.none(),
        required=False,
        empty_label=gettext_lazy("any"),
    )
    kind = forms.CharField(
        label=gettext_lazy("Kind"),
        required=False,
        max_length=64,
        help_text=gettext_lazy("Starts with, e.g. sync or sync.failed"),
        widget=forms.TextInput(attrs={"list": "event-kinds", "dir": "ltr"}),
    )
    level = forms.ChoiceField(
        label=gettext_lazy("Level"),
        required=False,
        choices=[("", gettext_lazy("any")), *EventLevel.choices],
    )
    q = forms.CharField(label=gettext_lazy("Text contains"), required=False, max_length=200)

    def __init__(self, *args: Any, accounts: QuerySet[EmailAccount], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts.order_by("name")  # type: ignore[attr-defined]
