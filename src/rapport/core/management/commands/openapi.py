"""Write or check the committed OpenAPI document (the contract is a file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


def openapi_text() -> str:
    from rapport.api import api

    schema = api.get_openapi_schema(path_prefix="/api/v1")
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


class Command(BaseCommand):
    help = "Write (--write FILE) or compare (--check FILE) the OpenAPI document."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--write", metavar="FILE")
        group.add_argument("--check", metavar="FILE")

    def handle(self, *args: Any, **opts: Any) -> None:
        text = openapi_text()
        if opts["write"]:
            Path(opts["write"]).write_text(text, encoding="utf-8")
            self.stdout.write(f"wrote {opts['write']}")
            return
        path = Path(opts["check"])
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            self.stderr.write(
                f"{path} differs from the API in the code: run `make openapi` and commit it."
            )
            sys.exit(1)
        self.stdout.write(f"{path} matches the code.")
