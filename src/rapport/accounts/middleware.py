"""Per-request session idle timeout, and the user's language and time zone."""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

IDLE_KEY = "rapport_last_seen"


class SessionTimeoutMiddleware:
    """Ends a session idle longer than SESSION_IDLE_MINUTES (absolute age is SESSION_COOKIE_AGE)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and hasattr(request, "session"):
            now = int(time.time())
            last = request.session.get(IDLE_KEY)
            if last is not None and now - int(last) > settings.SESSION_IDLE_MINUTES * 60:
                logout(request)
            else:
                # Write at most once a minute, not on every request.
                if last is None or now - int(last) > 60:
                    request.session[IDLE_KEY] = now
        return self.get_response(request)


class UserPreferencesMiddleware:
    """Activates the logged-in user's language and time zone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        lang = ""
        if user.is_authenticated:
            lang = str(getattr(user, "language", "") or "")
            if lang and lang in dict(settings.LANGUAGES):
                translation.activate(lang)
                request.LANGUAGE_CODE = lang
            tz = getattr(user, "time_zone", "")
            if tz:
                try:
                    timezone.activate(zoneinfo.ZoneInfo(tz))
                except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                    timezone.deactivate()
            else:
                timezone.deactivate()
        response = self.get_response(request)
        if lang:
            response.headers.setdefault("Content-Language", lang)
        return response
