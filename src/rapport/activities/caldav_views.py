"""The CalDAV section of the calendar page: connect, disconnect, sync now (POST, own account)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.accounts.models import User
from rapport.activities import caldav_sync
from rapport.activities.models import CalDavAccount
from rapport.core.errors import FieldErrors


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # noqa: S101 - login_required ran first
    return user


def _back() -> HttpResponse:
    response = redirect("calendar")
    response["Location"] += "#caldav"
    return response


def _report(request: HttpRequest, account: CalDavAccount) -> None:
    report = caldav_sync.sync_account(account)
    if report.skipped:
        messages.info(request, _("A sync is already running; try again in a minute."))
    elif report.errors:
        messages.error(request, _("The calendar sync had problems: see the last error below."))
    else:
        messages.success(
            request,
            _("Calendar synced: %(sent)d sent, %(received)d received.")
            % {
                "sent": report.pushed,
                "received": report.pulled + report.created + report.cancelled,
            },
        )


@login_required
@require_POST
def caldav_connect(request: HttpRequest) -> HttpResponse:
    """Save the server, user name, password and calendar; then sync once to show any error."""
    try:
        account = caldav_sync.caldav_connect(user=_user(request), data=request.POST.dict())
    except FieldErrors as exc:
        for errs in exc.errors.values():
            for err in errs:
                messages.error(request, err)
        return _back()
    _report(request, account)
    return _back()


@login_required
@require_POST
def caldav_disconnect(request: HttpRequest) -> HttpResponse:
    if caldav_sync.caldav_disconnect(user=_user(request)):
        messages.success(request, _("The calendar server is disconnected."))
    return _back()


@login_required
@require_POST
def caldav_sync_now(request: HttpRequest) -> HttpResponse:
    account = CalDavAccount.objects.filter(user=_user(request)).first()
    if account is None:
        messages.error(request, _("Connect a calendar server first."))
        return _back()
    _report(request, account)
    return _back()
