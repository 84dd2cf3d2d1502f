"""Who acts when a management command writes: a named active user, or the first administrator."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db.models import Q

from rapport.accounts.models import User


def command_actor(username: str | None) -> User:
    """The active user called ``username``; without a name, the first active administrator
    (superuser or a role marked admin). CommandError when there is none."""
    qs = User.objects.filter(is_active=True)
    user = (
        qs.filter(username=username).first()
        if username
        else qs.filter(Q(is_superuser=True) | Q(role__is_admin=True)).order_by("id").first()
    )
    if user is None:
        raise CommandError(f"no such active user: {username or '(an administrator)'}")
    return user
