"""`rapport transfer --from sqlite:///path/rapport.sqlite3`: copy an SQLite install into this one.

The target is the database of the running settings (``DATABASE_URL``, normally PostgreSQL),
migrated and unused. Every table of every installed app is copied with its primary keys, in
batches of constant size, in one transaction on the target; then the id sequences are reset and
the row count of each table is compared with the source's. Anything wrong rolls everything back.

The SQLite search index (FTS5 virtual tables and their triggers) is derived from
``core_searchdocument`` and is not copied: PostgreSQL indexes the same rows with trigrams.
See docs/decisions/0002-transfer.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dj_database_url
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Field, Model

from rapport.core.models import AuditEntry, OutboxEvent

SOURCE_ALIAS = "transfer_source"

# Written by `migrate` itself on every database (post_migrate): replaced by the source's rows.
FILLED_BY_MIGRATE: tuple[type[Model], ...] = (ContentType, Permission)


def _activity_models() -> tuple[type[Model], ...]:
    """Tables that only use fills: rows here mean the target is a working install."""
    return (apps.get_model(settings.AUTH_USER_MODEL), AuditEntry, OutboxEvent, Session)


def copied_models() -> list[type[Model]]:
    """Every concrete table of every installed app (many-to-many tables included), once each."""
    seen: set[str] = set()
    out: list[type[Model]] = []
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy or meta.swapped or meta.db_table in seen:
            continue
        seen.add(meta.db_table)
        out.append(model)
    return out


def _columns(model: type[Model]) -> list[Field[Any, Any]]:
    return [
        f
        for f in model._meta.local_concrete_fields
        if not getattr(f, "generated", False)  # computed by the database itself
    ]


def open_source(url: str) -> BaseDatabaseWrapper:
    """A second connection alias, added at runtime, reading the SQLite file at ``url``."""
    if not url.startswith("sqlite:"):
        raise CommandError(f"--from must be an sqlite:/// URL, got {url!r}")
    config: dict[str, Any] = dict(dj_database_url.parse(url))
    path = Path(str(config["NAME"]))
    if not path.is_file():
        raise CommandError(f"No SQLite database at {path}")
    # No init_command and no IMMEDIATE mode: this connection only reads, and a plain BEGIN
    # gives it one consistent snapshot (WAL) without blocking a running install's writers.
    config["OPTIONS"] = {"timeout": 20}
    connections.settings[SOURCE_ALIAS] = connections.configure_settings({DEFAULT_DB_ALIAS: config})[
        DEFAULT_DB_ALIAS
    ]
    return connections[SOURCE_ALIAS]


def close_source() -> None:
    if SOURCE_ALIAS in connections.settings:
        connections[SOURCE_ALIAS].close()
        del connections[SOURCE_ALIAS]
        del connections.settings[SOURCE_ALIAS]


def migrations_difference(source: BaseDatabaseWrapper, target: BaseDatabaseWrapper) -> str:
    """'' when both databases have applied the same migrations, else what differs."""
    src = set(MigrationRecorder(source).applied_migrations())
    dst = set(MigrationRecorder(target).applied_migrations())
    if not dst:
        return "the target is not migrated: run `rapport migrate` on it first"
    if src == dst:
        return ""
    parts = []
    for label, names in (("only in the source", src - dst), ("only in the target", dst - src)):
        if names:
            shown = ", ".join(f"{app}.{name}" for app, name in sorted(names)[:10])
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            parts.append(f"{label}: {shown}{more}")
    return "; ".join(parts) + " — bring both to the same release and run `rapport migrate`"


def rows_in_the_way(
    models: Sequence[type[Model]], source: str, target: str, batch: int
) -> list[str]:
    """Target rows the transfer would throw away: empty when the target is fresh.

    A fresh migrated database holds only what migrations wrote: content types, permissions and
    starter rows of data migrations, which the source holds too (same migrations, same ids).
    Users, audit entries, outbox events or sessions, or a row whose id the source lacks, mean
    someone works in the target.
    """
    found: list[str] = []
    activity = _activity_models()
    for model in models:
        if model in FILLED_BY_MIGRATE:
            continue
        table = model._meta.db_table
        manager = model._base_manager
        count = manager.using(target).count()
        if not count:
            continue
        if model in activity:
            found.append(f"{table}: {count} rows")
            continue
        missing = 0
        for ids in _id_batches(manager.using(target).values_list("pk", flat=True), batch):
            missing += len(ids) - manager.using(source).filter(pk__in=ids).count()
        if missing:
            found.append(f"{table}: {missing} rows not in the source")
    return found


def _id_batches(ids: Any, size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for pk in ids.order_by("pk").iterator(chunk_size=size):
        chunk.append(pk)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def copy_table(model: type[Model], source: str, target: BaseDatabaseWrapper, batch: int) -> int:
    """Copy one table in primary-key order, ``batch`` rows at a time; the number copied."""
    fields = _columns(model)
    pk_index = next(i for i, f in enumerate(fields) if f.primary_key)
    qn = target.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608 - names from model metadata
        qn(model._meta.db_table),
        ", ".join(qn(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    # Read through the ORM so each backend's converters apply (aware datetimes, decimals, JSON);
    # write with each field's own preparation for the target, skipping pre_save (auto_now).
    rows = (
        model._base_manager.using(source).order_by("pk").values_list(*(f.attname for f in fields))
    )
    copied = 0
    last: Any = None
    while True:
        page = list((rows if last is None else rows.filter(pk__gt=last))[:batch])
        if not page:
            return copied
        prepared = [
            [
                f.get_db_prep_save(value, connection=target)
                for f, value in zip(fields, row, strict=True)
            ]
            for row in page
        ]
        with target.cursor() as cursor:
            cursor.executemany(sql, prepared)
        copied += len(page)
        last = page[-1][pk_index]


class Command(BaseCommand):
    help = (
        "Copy an existing SQLite install (--from sqlite:///path) into this database "
        "(DATABASE_URL), migrated and empty: every table, same ids, counts verified."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="source", required=True, help="sqlite:///path/to/rapport.sqlite3"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace whatever the target holds (its rows are deleted first)",
        )
        parser.add_argument(
            "--no-sessions",
            action="store_true",
            help="do not copy login sessions (everyone logs in again)",
        )
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="target alias")

    def handle(self, *args: Any, **opts: Any) -> None:
        target_alias: str = opts["database"]
        batch: int = max(1, opts["batch_size"])
        verbosity: int = opts["verbosity"]
        target = connections[target_alias]
        source = open_source(opts["source"])
        try:
            if target.vendor == "sqlite" and Path(str(target.settings_dict["NAME"])).resolve() == (
                Path(str(source.settings_dict["NAME"])).resolve()
            ):
                raise CommandError("The source and the target are the same database file.")
            self._transfer(
                source,
                target,
                force=opts["force"],
                sessions=not opts["no_sessions"],
                batch=batch,
                verbosity=verbosity,
            )
        finally:
            close_source()

    def _transfer(
        self,
        source: BaseDatabaseWrapper,
        target: BaseDatabaseWrapper,
        *,
        force: bool,
        sessions: bool,
        batch: int,
        verbosity: int,
    ) -> None:
        difference = migrations_difference(source, target)
        if difference:
            raise CommandError(f"The migrations differ: {difference}.")
        models = copied_models()
        self._warn_unknown_tables(source, models)
        copied = [m for m in models if sessions or m is not Session]
        total = 0
        with transaction.atomic(using=source.alias), transaction.atomic(using=target.alias):
            in_the_way = rows_in_the_way(models, source.alias, target.alias, batch)
            if in_the_way and not force:
                raise CommandError(
                    "The target already holds data ("
                    + "; ".join(in_the_way)
                    + "). Transfer into a freshly migrated database, or pass --force to "
                    "delete the target's rows first."
                )
            # Empty every table (sessions too: a kept session could name another user's id).
            # PostgreSQL truncates, which row triggers such as the audit guard do not see.
            tables = [m._meta.db_table for m in models]
            with target.cursor() as cursor:
                for statement in target.ops.sql_flush(no_style(), tables, allow_cascade=False):
                    cursor.execute(statement)
            for model in copied:
                count = copy_table(model, source.alias, target, batch)
                total += count
                if verbosity >= 2:
                    self.stdout.write(f"  {model._meta.db_table}: {count}")
            with target.cursor() as cursor:
                for statement in target.ops.sequence_reset_sql(no_style(), copied):
                    cursor.execute(statement)
            mismatched = [
                f"{m._meta.db_table}: source {a}, target {b}"
                for m in copied
                if (a := m._base_manager.using(source.alias).count())
                != (b := m._base_manager.using(target.alias).count())
            ]
            if mismatched:
                raise CommandError(
                    "Counts differ after the copy, nothing was kept: " + "; ".join(mismatched)
                )
        self.stdout.write(
            self.style.SUCCESS(
                f"Copied {total} rows in {len(copied)} tables; counts verified, sequences reset."
            )
        )

    def _warn_unknown_tables(self, source: BaseDatabaseWrapper, models: list[type[Model]]) -> None:
        known = {m._meta.db_table for m in models} | {"django_migrations"}
        with source.cursor() as cursor:
            tables = source.introspection.table_names(cursor)
        unknown = [
            t for t in tables if t not in known and not t.startswith("sqlite_") and "_fts" not in t
        ]
        if unknown:
            self.stderr.write(
                "Not copied (no installed app owns them): " + ", ".join(sorted(unknown))
            )
