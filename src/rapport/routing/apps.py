from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RoutingConfig(AppConfig):
    name = "rapport.routing"
    label = "routing"
    verbose_name = _("Lead routing and absences")
