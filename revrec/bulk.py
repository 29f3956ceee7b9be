"""Inserting many rows at once, for the close's batch steps (revrec.ledger.post_entries, the
recognition run, contracts_sync).

On PostgreSQL, insert_rows sends each column as one array (INSERT … SELECT * FROM unnest(…)
RETURNING id), without building a model instance per row; elsewhere it is bulk_create. Either
way the rows go through the database's constraints and triggers like any other insert; the
callers check what the models' save() would (nothing here calls save()).
"""

from django.db import connection, models
from django.utils import timezone
from simple_history.utils import bulk_create_with_history


def insert_rows(model: type[models.Model], fields: list[str], rows: list[tuple]) -> list[int]:
    """Insert `rows` (tuples of the values of `fields`, attnames: "entry_id") into the model's
    table; returns the new primary keys in the order of `rows`."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        made = model.objects.bulk_create(
            [model(**dict(zip(fields, row, strict=True))) for row in rows]
        )
        return [obj.pk for obj in made]
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    casts = ", ".join(f"%s::{column.db_type(connection)}[]" for column in columns)
    names = ", ".join(connection.ops.quote_name(column.column) for column in columns)
    arrays = [list(values) for values in zip(*rows, strict=True)]
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({names}) "
        f"SELECT * FROM unnest({casts}) RETURNING {connection.ops.quote_name(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
        return [row[0] for row in cursor.fetchall()]


def create_with_history(model: type[models.Model], objs: list[models.Model]) -> list:
    """Insert unsaved `objs` (auto_now_add fields set now) and a "+" history row for each, as
    save() and django-simple-history would (no user, no change reason); sets their pks. On other
    databases than PostgreSQL: simple_history's bulk_create_with_history."""
    if not objs:
        return objs
    if connection.vendor != "postgresql":
        return bulk_create_with_history(objs, model)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    names = [f.attname for f in fields]
    rows = [tuple(f.pre_save(obj, add=True) for f in fields) for obj in objs]
    for obj, pk in zip(objs, insert_rows(model, names, rows), strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, "default"
    history = model.history.model
    now = timezone.now()
    extra = {"history_date": now, "history_type": "+", "history_change_reason": None}
    extra["history_user_id"] = None
    columns = [
        f.attname
        for f in history._meta.concrete_fields
        if f.attname != "history_id" and (f.attname in extra or hasattr(objs[0], f.attname))
    ]
    insert_rows(
        history,
        columns,
        [tuple(extra[c] if c in extra else getattr(obj, c) for c in columns) for obj in objs],
    )
    return objs
