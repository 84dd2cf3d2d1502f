"""Errors services raise; pages and the API turn them into messages and status codes."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _


class ServiceError(Exception):
    """Base of the errors a service raises for the caller to show."""


class FieldErrors(ServiceError):
    """Bad input: a message per field, in the user's language (422 in the API)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))

    @classmethod
    def single(cls, field: str, message: str) -> FieldErrors:
        return cls({field: [message]})


class StaleVersion(ServiceError):
    """The record changed since the caller read it (412 in the API)."""

    def __init__(self, *, current_version: int, conflicts: dict[str, Any] | None = None) -> None:
        self.current_version = current_version
        self.conflicts = conflicts or {}
        super().__init__(_("The record was changed by someone else since you opened it."))


class PermissionDenied(ServiceError):
    """The acting user's role does not allow the action (403)."""


class DuplicateFound(ServiceError):
    """The duplicate guard found likely duplicates (409 in the API unless forced)."""

    def __init__(self, candidates: list[Any]) -> None:
        self.candidates = candidates
        super().__init__(_("Possible duplicates found."))
