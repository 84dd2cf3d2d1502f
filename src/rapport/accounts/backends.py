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


def login_attempts(username: str) -> int:
    """Attempts recorded for ``username`` within the lockout window."""
    since = timezone.now() - timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
    return LoginAttempt.objects.filter(username=username.lower(), at__gte=since).count()


def login_locked(username: str) -> bool:
    return login_attempts(username) >= settings.LOGIN_MAX_FAILURES


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
        ip = client_ip(request)
        # Record the attempt first, then count it with the others: concurrent requests each
        # see every attempt recorded before theirs, so no burst gets more than the limit checked.
        LoginAttempt.objects.create(username=key, ip=ip)
        if login_attempts(key) > settings.LOGIN_MAX_FAILURES:
            security_log.warning("login refused: account %r locked, from %s", key, ip)
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            security_log.info("login failed for %r from %s", key, ip)
        else:
            LoginAttempt.objects.filter(username=key).delete()
            security_log.info("login ok for %r from %s", key, ip)
        return user
