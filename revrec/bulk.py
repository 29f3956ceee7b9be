"""Inserting many rows at once, for the close's batch steps (revrec.ledger.post_entries, the
recognition run, contracts_sync).

On PostgreSQL, insert_rows sends each column as one array (INSERT … SELECT * FROM unnest(…)
RETURNING id), without building a model instance per row; elsewhere it is bulk_create. Either
way the rows go through the database's constraints and triggers like any other insert; the
callers check what the models' save() would (nothing here calls save()).
"""

from django.db import connection, models


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
