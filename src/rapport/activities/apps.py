from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ActivitiesConfig(AppConfig):
    name = "rapport.activities"
    label = "activities"
    verbose_name = _("Activities")

    def ready(self) -> None:
        from rapport.activities import handlers, jobs  # noqa: F401  (event handlers, schedules)
