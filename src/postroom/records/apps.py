from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecordsConfig(AppConfig):
    name = "postroom.records"
    label = "records"
    verbose_name = _("Records and routing")

    def ready(self) -> None:
        # Incoming mail is routed once it is stored and extracted; the incoming
        # app only announces it (imports point downward: records -> incoming).
        from postroom.records import receivers  # noqa: F401
