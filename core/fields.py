"""Decimal model fields for money, prices and quantities: exact on both databases, or refused.

PostgreSQL stores `numeric(p, s)` exactly. SQLite (the zero-setup default) stores a decimal column
as a double, so a value with more than 15 significant digits would come back changed. The check
lives on the field, in `get_db_prep_save`, because every write goes through it — services, the
admin, `bulk_create`, `update(field=value)` and the history tables — so no caller can forget it.
(A model validator would only run under `full_clean()`, which bulk writes skip.) Lookups and SQL
expressions (`F()`) are not checked: they store nothing new from Python.

The field deconstructs as a plain `DecimalField`: it changes nothing in the schema, so it needs
no migration and can be swapped back at any time.
"""

from decimal import ROUND_HALF_UP, Decimal

from django.db import models

from core.errors import ValidationError
from core.money import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
    SQLITE_SIGNIFICANT_DIGITS,
    plain,
    significant_digits,
)


class ExactDecimalField(models.DecimalField):
    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DecimalField", args, kwargs

    def get_db_prep_save(self, value, connection):
        if connection.vendor == "sqlite" and isinstance(value, Decimal | int | str):
            self._check_sqlite(value)
        return super().get_db_prep_save(value, connection)

    def _check_sqlite(self, value) -> None:
        value = self.to_python(value)
        if not value.is_finite():
            return  # Django's own validation refuses it
        stored = value.quantize(Decimal(1).scaleb(-self.decimal_places), rounding=ROUND_HALF_UP)
        if significant_digits(stored) > SQLITE_SIGNIFICANT_DIGITS:
            where = f"{self.model.__name__}.{self.name}" if hasattr(self, "model") else self.name
            raise ValidationError(
                f"{plain(stored, grouping=True)} ({where}) has {significant_digits(stored)} "
                f"significant digits: SQLite stores {SQLITE_SIGNIFICANT_DIGITS} exactly and would "
                "change it. Use PostgreSQL (DATABASE_URL), which holds it exactly."
            )


def amount_field(**kwargs) -> ExactDecimalField:
    """A rounded amount (invoice lines and totals, payments, revenue)."""
    return ExactDecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs
    )


def quantity_field(**kwargs) -> ExactDecimalField:
    return ExactDecimalField(
        max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES, **kwargs
    )


def price_field(**kwargs) -> ExactDecimalField:
    """A unit price (up to 12 decimal places)."""
    return ExactDecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, **kwargs
    )
