from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AutomationsConfig(AppConfig):
    name = "rapport.automations"
    label = "automations"
    verbose_name = _("Automations")

    def ready(self) -> None:
        from rapport.automations import engine, jobs  # noqa: F401  (event handlers, clock)
