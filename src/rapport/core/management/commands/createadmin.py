"""Create the first administrator: RAPPORT_ADMIN_PASSWORD or a generated password printed once."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from rapport.accounts.models import User
from rapport.accounts.services import team_create, user_create


class Command(BaseCommand):
    help = "Create the administrator account if there is none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=os.environ.get("RAPPORT_ADMIN_USER", "admin"))

    def handle(self, *args: Any, **opts: Any) -> None:
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator already exists.")
            return
        password = os.environ.get("RAPPORT_ADMIN_PASSWORD") or ""
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        from rapport.accounts.models import Team

        org = Team.objects.filter(parent__isnull=True).first() or team_create(
            actor=None, name="Organisation", kind=Team.Kind.ORGANISATION
        )
        user_create(
            actor=None,
            username=opts["username"],
            password=password,
            first_name="Admin",
            team=org,
            is_superuser=True,
        )
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Administrator created: login {opts['username']!r}, password {password!r} "
                    "(shown once: write it down; set RAPPORT_ADMIN_PASSWORD to choose it)."
                )
            )
        else:
            self.stdout.write(
                f"Administrator {opts['username']!r} created with RAPPORT_ADMIN_PASSWORD."
            )
