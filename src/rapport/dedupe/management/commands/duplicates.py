"""``rapport duplicates --target people [--scan] [--json]``: likely duplicates in the base."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from rapport.core.command_actor import command_actor
from rapport.dedupe import finder, selectors

TARGETS = {"people": "person", "companies": "company"}


class Command(BaseCommand):
    help = "Find likely duplicate people or companies and list them as clusters."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--target", choices=sorted(TARGETS), default="people")
        parser.add_argument("--scan", action="store_true", help="scan the whole base first")
        parser.add_argument("--json", action="store_true", help="print clusters as JSON")
        parser.add_argument("--limit", type=int, default=100)
        parser.add_argument("--user", default=None, help="whose scope (default: first admin)")

    def handle(self, *args: Any, **opts: Any) -> None:
        object_type = TARGETS[opts["target"]]
        user = command_actor(opts["user"])
        if opts["scan"]:
            started = time.monotonic()
            n = finder.scan(object_type)
            self.stderr.write(f"scanned: {n} candidate pairs in {time.monotonic() - started:.1f} s")
        found = selectors.clusters(user=user, object_type=object_type, limit=opts["limit"])
        if opts["json"]:
            out = [
                {
                    "score": c.score,
                    "reasons": c.reason_codes,
                    "records": [{"id": m.pk, "name": str(m)} for m in c.members],
                    "pairs": [
                        {"a": p.a_id, "b": p.b_id, "score": p.score, "reasons": p.reasons}
                        for p in c.pairs
                    ],
                }
                for c in found
            ]
            self.stdout.write(json.dumps(out, ensure_ascii=False, indent=1))
            return
        for c in found:
            names = "; ".join(f"{m} (#{m.pk})" for m in c.members)
            self.stdout.write(f"{c.score:3d}  {', '.join(c.reason_codes):24s} {names}")
