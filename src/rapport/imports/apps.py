from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ImportsConfig(AppConfig):
    name = "rapport.imports"
    label = "imports"
    verbose_name = _("Import")

    def ready(self) -> None:
        from rapport.imports import jobs  # noqa: F401  (registers the stale-run sweep)
