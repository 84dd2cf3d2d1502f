"""``rapport funnel_rebuild``: count the funnel's day counters again from the stage history."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Count the funnel's day counters (sales_stageday) again from the stage history: after "
        "history was loaded or edited around the services, a restore of part of the data, or "
        "a change of TIME_ZONE (days are the company's). --check only compares."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pipeline", type=int, default=None, help="one pipeline's id")
        parser.add_argument(
            "--check",
            action="store_true",
            help="write nothing; list the counter rows that differ from a recount (exit 1 if any)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        from rapport.sales import stage_days

        started = time.perf_counter()
        if opts["check"]:
            differ = stage_days.differences(pipeline_id=opts["pipeline"])
            for row in differ[:50]:
                self.stdout.write(json.dumps(row, default=str, ensure_ascii=False))
            if differ:
                raise CommandError(
                    f"{len(differ):,} counter rows differ from the history; "
                    "run `rapport funnel_rebuild` to count them again"
                )
            self.stdout.write("The funnel's counters agree with the stage history.")
            return
        rows = stage_days.rebuild(pipeline_id=opts["pipeline"])
        self.stdout.write(
            f"{rows:,} counter rows from the stage history in {time.perf_counter() - started:.1f} s"
        )
