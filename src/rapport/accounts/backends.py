"""Login with a lockout: after too many failures in a window, no password is checked (R5)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest
from django.utils import timezone

from rapport.accounts.models import LoginAttempt

security_log = logging.getLogger("rapport.security")


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def login_locked(username: str) -> bool:
    since = timezone.now() - timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
    failures = LoginAttempt.objects.filter(username=username.lower(), at__gte=since).count()
    return failures >= settings.LOGIN_MAX_FAILURES


class LockoutModelBackend(ModelBackend):
    """Django's ModelBackend, refusing any password while the account name is locked.

    Unknown and known names are treated alike, so the answer tells nothing.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if not username:
            return None
        key = username.lower()
        if login_locked(key):
            security_log.warning("login refused: account %r locked", key)
            LoginAttempt.objects.create(username=key, ip=client_ip(request))
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            LoginAttempt.objects.create(username=key, ip=client_ip(request))
            security_log.info("login failed for %r from %s", key, client_ip(request))
        else:
            LoginAttempt.objects.filter(username=key).delete()
            security_log.info("login ok for %r from %s", key, client_ip(request))
        return user
