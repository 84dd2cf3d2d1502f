from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MessagingConfig(AppConfig):
    name = "rapport.messaging"
    label = "messaging"
    verbose_name = _("Outgoing messages")

    def ready(self) -> None:
        from rapport.messaging import jobs  # noqa: F401  (registers the delivery sweep)
