"""``rapport caldav-sync [--user NAME]``: sync CalDAV accounts now, as the worker does."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _


class Command(BaseCommand):
    help = "Sync every CalDAV account (or one user's) both ways now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", dest="username", help="only this user's account")

    def handle(self, *args: Any, **opts: Any) -> None:
        from rapport.activities.caldav_sync import sync_all

        reports = sync_all(username=opts.get("username"))
        if opts.get("username") and not reports:
            raise CommandError(_("No CalDAV account for this user."))
        failed = 0
        for username, r in reports.items():
            if r.skipped:
                line = _("%(user)s: a sync is already running") % {"user": username}
            else:
                line = _(
                    "%(user)s: %(pushed)d sent, %(pulled)d updated, %(created)d new, "
                    "%(cancelled)d cancelled, %(removed)d removed, %(conflicts)d conflicts"
                ) % {
                    "user": username,
                    "pushed": r.pushed,
                    "pulled": r.pulled,
                    "created": r.created,
                    "cancelled": r.cancelled,
                    "removed": r.removed,
                    "conflicts": r.conflicts,
                }
            self.stdout.write(line)
            for error in r.errors:
                failed += 1
                self.stderr.write(f"  {error}")
        if failed:
            raise CommandError(_("Some items could not be synced; see above."))
