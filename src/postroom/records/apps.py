from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecordsConfig(AppConfig):
    name = "postroom.records"
    label = "records"
    verbose_name = _("Records and routing")

    def ready(self) -> None:
        # Incoming mail is routed once it is stored and extracted; the incoming
        # app only announces it (imports point downward: records -> incoming).
        from django.db.models.signals import post_migrate

        from postroom.records import receivers  # noqa: F401
        from postroom.records.builtin import ensure_builtin_types

        post_migrate.connect(ensure_builtin_types, sender=self)
