"""Bulk writes without the ORM's per-object work, for batches of thousands of rows.

``bulk_create``/``bulk_update`` build each statement through the SQL compiler, value by
value; for an import's chunk (people, contact points, name keys, audit entries, events,
report lines: ~30,000 rows) that work cost more than the database did. These write the
same rows with plain parameterised statements: table and column names come from the
model, every value is a parameter prepared as the ORM prepares it (``pre_save`` for the
creation times, ``get_db_prep_save`` for dates, JSON and anything unusual). Call inside a
transaction.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import models, transaction
from django.utils import timezone

# Fields whose database value is the Python value itself when it has the expected type
# (the exact classes: a subclass may prepare its values differently).
_PLAIN_TYPES: dict[type[models.Field[Any, Any]], tuple[type, ...]] = {
    models.CharField: (str,),
    models.TextField: (str,),
    models.EmailField: (str,),
    models.SlugField: (str,),
    models.IntegerField: (int,),
    models.BigIntegerField: (int,),
    models.PositiveIntegerField: (int,),
    models.PositiveSmallIntegerField: (int,),
    models.SmallIntegerField: (int,),
    models.BooleanField: (bool,),
    models.ForeignKey: (int,),
}


def _prepared(f: Any, conn: Any, now: Any) -> Callable[[Any], Any]:
    """A function object -> database value of the field ``f``; ``now``: the creation time
    of the batch (``auto_now``/``auto_now_add`` fields get it, as ``pre_save`` would give
    each row its own)."""
    attname = f.attname
    if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
        value = f.get_db_prep_save(now, conn)

        def stamped(o: Any) -> Any:
            setattr(o, attname, now)
            return value

        return stamped
    plain = _PLAIN_TYPES.get(type(f))
    last: list[Any] = [object(), None]  # the last value and its database value

    def orm(o: Any) -> Any:
        value = f.pre_save(o, True)
        if value is last[0]:  # a batch's rows often share one value (a time, a dict)
            return last[1]
        prepared = f.get_db_prep_save(value, conn)
        last[0], last[1] = value, prepared  # held here, so its id is not reused meanwhile
        return prepared

    if plain is None:
        return orm

    def direct(o: Any) -> Any:
        value = getattr(o, attname)
        return value if value is None or type(value) in plain else orm(o)

    return direct


def objects_insert(model: Any, objs: Sequence[Any], *, ids: bool = False) -> None:
    """``bulk_create`` of new rows (no conflicts handled, no signals).
    ``ids``: the new ids are read back (RETURNING, in the order of the rows, as
    ``bulk_create`` reads them on SQLite >= 3.35 and PostgreSQL) and set on the objects."""
    if not objs:
        return
    conn = transaction.get_connection()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    preps = [_prepared(f, conn, now) for f in fields]
    new_ids = rows_insert(
        model,
        [f.name for f in fields],
        [[prep(o) for prep in preps] for o in objs],
        returning=model._meta.pk.column if ids else "",
    )
    for obj, pk in zip(objs if ids else (), new_ids, strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, conn.alias


def rows_insert(
    model: Any,
    names: list[str],
    rows: Sequence[Sequence[Any]],
    batch: int = 500,
    *,
    returning: str = "",
) -> list[Any]:
    """Insert ``rows`` (tuples of database values for the fields ``names``) with multi-row
    INSERTs (COPY on PostgreSQL when nothing is returned), without model instances; for
    plain columns only (no defaults are applied).
    ``returning``: a column whose values of the new rows are returned, in order."""
    out: list[Any] = []
    if not rows:
        return out
    conn = transaction.get_connection()
    qn = conn.ops.quote_name
    columns = ", ".join(qn(model._meta.get_field(n).column) for n in names)
    if conn.vendor == "postgresql" and not returning:
        # COPY: the rows stream in one statement, each value dumped by psycopg's C code
        # (a multi-row INSERT of 30,000 parameters spent most of its time composing them)
        with (
            conn.cursor() as cur,
            cur.cursor.copy(f"COPY {qn(model._meta.db_table)} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return out
    one = "(" + ", ".join(["%s"] * len(names)) + ")"
    tail = f" RETURNING {qn(returning)}" if returning else ""
    batch = max(1, min(batch, 30_000 // len(names)))  # SQLite takes 32,766 parameters
    with conn.cursor() as cur:
        for i in range(0, len(rows), batch):
            part = rows[i : i + batch]
            cur.execute(
                f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES "  # noqa: S608 - names from the model
                + ", ".join([one] * len(part))
                + tail,
                [v for row in part for v in row],
            )
            if returning:
                out.extend(r[0] for r in cur.fetchall())
    return out


def rows_update(model: Any, objs: Sequence[Any], names: list[str]) -> None:
    """``bulk_update`` of ``names`` as one parameterised UPDATE per row, sent with
    ``executemany``: Django's bulk_update builds a CASE WHEN per field over the whole batch,
    which SQLite evaluates for every row (500 rows x 16 fields: ~0.7 s a chunk)."""
    if not objs:
        return
    conn = transaction.get_connection()
    qn = conn.ops.quote_name
    fields = [model._meta.get_field(n) for n in names]
    pk = model._meta.pk
    # names from the model, values as parameters
    sql = "UPDATE {} SET {} WHERE {} = %s".format(  # noqa: S608
        qn(model._meta.db_table),
        ", ".join(f"{qn(f.column)} = %s" for f in fields),
        qn(pk.column),
    )
    params = [
        [*(f.get_db_prep_save(getattr(o, f.attname), conn) for f in fields), o.pk] for o in objs
    ]
    with conn.cursor() as cur:
        cur.executemany(sql, params)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: a chunk of an import allocates ~100 objects a
    row, which made the collector run its young generations every few rows and, with
    Django's long-lived objects in the heap, an old one every few hundred (~12 % of an
    import's time, bench/README.md, "2026-11-30 (morning)"). Reference counting still frees
    what is dropped; cycles made inside wait for the first collection after the block,
    so the memory this holds is bounded by the block's own work."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
