"""The one NinjaAPI at /api/v1/: session or token auth, one error shape everywhere."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import APIKeyHeader, HttpBearer, django_auth

from rapport.accounts.services import api_token_authenticate
from rapport.core.errors import DuplicateFound, FieldErrors, PermissionDenied, StaleVersion
from rapport.sales.services import StageRequirementsMissing


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = api_token_authenticate(token)
        if user is not None:
            request.user = user
        return user


class TokenHeader(APIKeyHeader):
    param_name = "X-Api-Token"

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = api_token_authenticate(key or "")
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(
    title="Rapport API",
    version="1",
    urls_namespace="api",
    auth=[BearerToken(), TokenHeader(), django_auth],
    openapi_url="/openapi.json",
    docs_url="/docs",
)


def error_body(
    code: str, message: str, fields: dict[str, list[str]] | None = None, **extra: Any
) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "fields", ...}}."""
    return {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}


@api.exception_handler(StageRequirementsMissing)
def on_stage_requirements(request: HttpRequest, exc: StageRequirementsMissing) -> HttpResponse:
    """A stage's entry fields are empty: name them, so the caller can send them with the move.

    Registered apart from (and before) FieldErrors, its base class: ninja picks the handler of
    the most specific class in the exception's MRO.
    """
    return api.create_response(
        request,
        error_body(
            "stage_requirements",
            exc.message,
            exc.errors,
            missing=list(exc.missing),
            stage={"id": exc.stage.pk, "name": exc.stage.name},
        ),
        status=422,
    )


@api.exception_handler(FieldErrors)
def on_field_errors(request: HttpRequest, exc: FieldErrors) -> HttpResponse:
    return api.create_response(
        request, error_body("invalid", _("Check the fields."), exc.errors), status=422
    )


@api.exception_handler(NinjaValidationError)
def on_validation(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    fields: dict[str, list[str]] = {}
    for err in exc.errors:
        loc = [str(p) for p in err.get("loc", []) if p not in ("body", "payload", "query", "path")]
        fields.setdefault(".".join(loc) or "body", []).append(str(err.get("msg", "")))
    return api.create_response(
        request, error_body("invalid", _("Check the fields."), fields), status=422
    )


@api.exception_handler(StaleVersion)
def on_stale(request: HttpRequest, exc: StaleVersion) -> HttpResponse:
    return api.create_response(
        request,
        error_body("stale", str(exc), current_version=exc.current_version, conflicts=exc.conflicts),
        status=412,
    )


@api.exception_handler(DuplicateFound)
def on_duplicate(request: HttpRequest, exc: DuplicateFound) -> HttpResponse:
    return api.create_response(
        request,
        error_body("duplicate", str(exc), candidates=[c.as_dict() for c in exc.candidates]),
        status=409,
    )


@api.exception_handler(PermissionDenied)
def on_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return api.create_response(request, error_body("forbidden", str(exc)), status=403)


@api.exception_handler(DjangoPermissionDenied)
def on_django_denied(request: HttpRequest, exc: DjangoPermissionDenied) -> HttpResponse:
    return api.create_response(
        request, error_body("forbidden", _("Permission denied.")), status=403
    )


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, error_body("not_found", _("Not found.")), status=404)


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(
        request, error_body("unauthenticated", _("Log in or send an API token.")), status=401
    )


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return api.create_response(request, error_body("error", str(exc)), status=exc.status_code)


def _mount() -> None:
    from rapport.accounts.api import router as accounts_router
    from rapport.activities.api import router as activities_router
    from rapport.automations.api import router as automations_router
    from rapport.core.api import router as core_router
    from rapport.dedupe.api import router as dedupe_router
    from rapport.imports.api import router as imports_router
    from rapport.messaging.api import router as messaging_router
    from rapport.parties.api import router as parties_router
    from rapport.routing.api import router as routing_router
    from rapport.sales.api import router as sales_router

    api.add_router("/", accounts_router)
    api.add_router("/", core_router)
    api.add_router("/", parties_router)
    api.add_router("/", sales_router)
    api.add_router("/", activities_router)
    api.add_router("/", imports_router)
    api.add_router("/", dedupe_router)
    api.add_router("/", messaging_router)
    api.add_router("/", routing_router)
    api.add_router("/", automations_router)


_mount()
