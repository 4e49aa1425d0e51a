from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OutgoingConfig(AppConfig):
    name = "postroom.outgoing"
    label = "outgoing"
    verbose_name = _("Outgoing mail")
