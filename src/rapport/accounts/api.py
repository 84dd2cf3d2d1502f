"""Users (read), teams, the current user's profile and API tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import ConfigDict, Field

from rapport.accounts import selectors, services
from rapport.accounts.models import Team

router = Router(tags=["accounts"])


class ErrorOut(Schema):
    error: dict[str, Any]


ERRORS: dict[int, Any] = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


class UserOut(Schema):
    id: int
    username: str
    first_name: str
    last_name: str
    email: str
    team_id: int | None
    role_id: int | None
    time_zone: str
    language: str
    is_active: bool


class TeamOut(Schema):
    id: int
    name: str
    kind: str
    parent_id: int | None


class TeamIn(Schema):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=150)
    kind: Team.Kind = Team.Kind.DEPARTMENT
    parent_id: int | None = None


class TokenIn(Schema):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored")


@router.get("/me", response={200: UserOut, **ERRORS}, summary="The current user")
def me(request: HttpRequest) -> Any:
    return request.user


@router.get("/users", response={200: list[UserOut], **ERRORS}, summary="List users")
def users_list(request: HttpRequest) -> Any:
    return list(selectors.user_list(user=request.user)[:1000])  # type: ignore[arg-type]


@router.get("/users/{user_id}", response={200: UserOut, **ERRORS}, summary="Get a user")
def users_get(request: HttpRequest, user_id: int) -> Any:
    return selectors.user_get(user=request.user, user_id=user_id)  # type: ignore[arg-type]


@router.get("/teams", response={200: list[TeamOut], **ERRORS}, summary="List teams")
def teams_list(request: HttpRequest) -> Any:
    return list(selectors.team_list(user=request.user))  # type: ignore[arg-type]


@router.post("/teams", response={201: TeamOut, **ERRORS}, summary="Create a team (administrators)")
def teams_create(request: HttpRequest, body: TeamIn) -> Any:
    user = request.user
    parent = selectors.team_get(user=user, team_id=body.parent_id) if body.parent_id else None  # type: ignore[arg-type]
    team = services.team_create(actor=user, name=body.name, kind=body.kind, parent=parent)  # type: ignore[arg-type]
    return Status(201, team)


@router.get("/teams/{team_id}", response={200: TeamOut, **ERRORS}, summary="Get a team")
def teams_get(request: HttpRequest, team_id: int) -> Any:
    return selectors.team_get(user=request.user, team_id=team_id)  # type: ignore[arg-type]


@router.put(
    "/teams/{team_id}",
    response={200: TeamOut, **ERRORS},
    summary="Rename or move a team (administrators)",
)
def teams_update(request: HttpRequest, team_id: int, body: TeamIn) -> Any:
    user = request.user
    team = selectors.team_get(user=user, team_id=team_id)  # type: ignore[arg-type]
    parent = selectors.team_get(user=user, team_id=body.parent_id) if body.parent_id else None  # type: ignore[arg-type]
    return services.team_update(
        actor=user,  # type: ignore[arg-type]
        team=team,
        name=body.name,
        kind=body.kind,
        parent=parent,
    )


@router.get("/tokens", response={200: list[TokenOut], **ERRORS}, summary="My API tokens")
def tokens_list(request: HttpRequest) -> Any:
    return list(selectors.api_token_list(user=request.user))  # type: ignore[arg-type]


@router.post("/tokens", response={201: TokenCreated, **ERRORS}, summary="Create an API token")
def tokens_create(request: HttpRequest, body: TokenIn) -> Any:
    token, raw = services.api_token_create(user=request.user, name=body.name)  # type: ignore[arg-type]
    return Status(
        201, {**TokenOut.model_validate(token, from_attributes=True).model_dump(), "token": raw}
    )


@router.delete("/tokens/{token_id}", response={204: None, **ERRORS}, summary="Revoke an API token")
def tokens_revoke(request: HttpRequest, token_id: int) -> Any:
    from django.http import Http404

    token = selectors.api_token_list(user=request.user).filter(pk=token_id).first()  # type: ignore[arg-type]
    if token is None:
        raise Http404
    services.api_token_revoke(user=request.user, token=token)  # type: ignore[arg-type]
    return Status(204, None)
