"""`rapport run` (what `make run` calls): migrate, first admin, demo data once, web + worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Set up and start Rapport: web server and background worker together."

    def handle(self, *args: Any, **opts: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createadmin")
        marker = settings.DATA_DIR / ".demo-loaded"
        if not marker.exists() and os.environ.get("RAPPORT_DEMO", "1") != "0":
            call_command("demo")
            marker.write_text("loaded\n")
        exe = [sys.executable, "-m", "rapport.cli"]
        bind = os.environ.get("RAPPORT_BIND", "127.0.0.1:8000")
        procs = [
            subprocess.Popen([*exe, "serve", "--bind", bind]),  # noqa: S603 - our own entry point
            subprocess.Popen([*exe, "worker"]),  # noqa: S603
        ]
        self.stdout.write(
            self.style.SUCCESS(f"Rapport is running on http://{bind}/ (Ctrl+C stops it)")
        )

        def stop(*_: Any) -> None:
            for p in procs:
                if p.poll() is None:
                    p.terminate()

        signal.signal(signal.SIGTERM, stop)
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
            for p in procs:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
