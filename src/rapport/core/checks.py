"""System checks that keep deployments honest."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register()
def check_phone_region(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    import phonenumbers

    region = settings.DEFAULT_PHONE_REGION
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return [
            Warning(f"DEFAULT_PHONE_REGION={region!r} is not a known region", id="rapport.W001")
        ]
    return []
