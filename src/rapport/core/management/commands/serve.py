"""`rapport serve`: the web server (gunicorn) on RAPPORT_BIND (default 127.0.0.1:8000)."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Serve the web app with gunicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=os.environ.get("RAPPORT_BIND", "127.0.0.1:8000"))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))

    def handle(self, *args: Any, **opts: Any) -> None:
        from gunicorn.app.wsgiapp import run  # type: ignore[import-untyped]

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rapport.settings")
        import sys

        sys.argv = [
            "gunicorn",
            "rapport.wsgi:application",
            "--bind",
            opts["bind"],
            "--workers",
            str(opts["workers"]),
            "--threads",
            "4",
            "--access-logfile",
            "-",
            "--timeout",
            "60",
        ]
        run()
