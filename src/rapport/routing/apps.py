from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RoutingConfig(AppConfig):
    name = "rapport.routing"
    label = "routing"
    verbose_name = _("Lead routing and absences")

    def ready(self) -> None:
        from rapport.routing import handlers, jobs  # noqa: F401  (event handler, schedule)
