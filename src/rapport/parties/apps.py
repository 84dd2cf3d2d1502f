from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartiesConfig(AppConfig):
    name = "rapport.parties"
    label = "parties"
    verbose_name = _("Counterparties")
