"""``rapport name_keys_rebuild``: compute the duplicate guard's blocking keys again."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction


class Command(BaseCommand):
    help = (
        "Compute every company's and person's name blocking keys again (the duplicate "
        "guard's index): after a change of the key scheme, or rows loaded around the services."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=5_000, help="records per insert")

    def handle(self, *args: Any, **opts: Any) -> None:
        from rapport.parties.duplicates import name_keys_rebuild

        for object_type in ("company", "person"):
            started = time.perf_counter()

            def progress(done: int, object_type: str = object_type) -> None:
                if done % 100_000 == 0:
                    self.stdout.write(f"  {object_type}: {done:,}")

            with transaction.atomic():
                done = name_keys_rebuild(
                    object_type=object_type, batch=opts["batch"], progress=progress
                )
            self.stdout.write(
                f"{object_type}: {done:,} records keyed in {time.perf_counter() - started:.1f} s"
            )
