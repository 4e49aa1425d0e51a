"""The one validation of a webhook subscription, used by the web pages and the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _

from postroom.accounts.models import EmailAccount
from postroom.webhooks.models import EventType, WebhookSubscription
from postroom.webhooks.permissions import may_subscribe_to_all, subscribable_accounts

EVENT_CHOICES = [(value, label) for value, label in EventType.choices if value != EventType.TEST]


class SubscriptionForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    url = forms.URLField(
        label=_("URL"),
        max_length=2000,
        assume_scheme="https",
        validators=[
            # Its own code: a field replaces the message of "invalid" with its own.
            URLValidator(
                schemes=["http", "https"],
                message=_("Enter an http:// or https:// URL."),
                code="scheme",
            )
        ],
        help_text=_("Where Postroom POSTs each event. Use https unless the receiver is local."),
    )
    event_types = forms.MultipleChoiceField(
        label=_("Events"),
        choices=EVENT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one event.")},
    )
    account = forms.ModelChoiceField(
        label=_("Account"),
        queryset=EmailAccount.objects.none(),
        required=False,
        error_messages={
            "invalid_choice": _("There is no account with this id that you can read."),
        },
    )
    active = forms.BooleanField(
        label=_("Active"),
        required=False,
        help_text=_(
            "Switched off, it receives no new events; deliveries already waiting are kept "
            "until it is on again."
        ),
    )

    def __init__(
        self,
        *args: Any,
        user: AbstractBaseUser | AnonymousUser,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        account = self.fields["account"]
        assert isinstance(account, forms.ModelChoiceField)
        account.queryset = subscribable_accounts(user).order_by("name")
        if may_subscribe_to_all(user):
            account.empty_label = _("All accounts")
            account.help_text = _(
                "Only this account's events; all accounts includes events of no account."
            )
        else:
            account.empty_label = None  # clean_account says why one is needed
            account.help_text = _("Only this account's events.")

    def clean_account(self) -> EmailAccount | None:
        account: EmailAccount | None = self.cleaned_data.get("account")
        if account is None and not may_subscribe_to_all(self.user):
            raise forms.ValidationError(
                _("Choose an account: only administrators can receive every account's events.")
            )
        return account


def initial_for(subscription: WebhookSubscription) -> dict[str, Any]:
    return {
        "name": subscription.name,
        "url": subscription.url,
        "event_types": list(subscription.event_types),
        "account": subscription.account_id,
        "active": subscription.active,
    }
