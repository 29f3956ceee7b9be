"""Amounts, prices and quantities as people read them, by Babel (through py-moneyed's locale data).

- `format_money`: a rounded amount in its currency's minor unit: $2,250.00, ¥1,200, €4,409.74. The
  amount is rounded half-up first (core.money.round_money, the one rounding rule), so Babel's own
  half-even rounding never applies.
- `format_price`: a unit price with its significant decimals and at least the currency's minor
  unit: $0.000003, $40.00, ¥40; never trailing zeros beyond that, never an exponent.
- `format_quantity`: 40,901,739 or 2.5, with an optional unit (40,901,739 tokens, 12 seats, 1 seat):
  a unit is named in the singular (Charge.unit_name "seat") and read in the plural by `plural_unit`.

One locale for the whole back office (settings.MONEY_LOCALE, en_US by default).
"""

from decimal import Decimal

from babel.numbers import format_currency, format_decimal
from django.conf import settings

from core.money import PRICE_DECIMAL_PLACES, minor_units, round_money


def _locale() -> str:
    return getattr(settings, "MONEY_LOCALE", "en_US")


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _unsigned_zero(value: Decimal) -> Decimal:
    """A zero below zero (-0.004 rounded, 0 × -1) reads as zero: never "-$0.00" or "-0"."""
    return value if value else abs(value)


def format_money(amount, currency: str) -> str:
    """$2,250.00 — rounded half-up to the currency's minor unit; '' for no amount."""
    value = _decimal(amount)
    if value is None:
        return ""
    rounded = _unsigned_zero(round_money(value, currency))
    return format_currency(rounded, currency.upper(), locale=_locale())


def format_price(price, currency: str) -> str:
    """$0.000003, $40.00, ¥40 — a unit price with all its significant decimals (up to 12)."""
    value = _decimal(price)
    if value is None:
        return ""
    value, places = _unsigned_zero(value), minor_units(currency)
    pattern = "¤#,##0." + "0" * places + "#" * (PRICE_DECIMAL_PLACES - places)
    return format_currency(
        value, currency.upper(), format=pattern, currency_digits=False, locale=_locale()
    )


def format_quantity(quantity, unit: str = "") -> str:
    """40,901,739 tokens — all the quantity's significant decimals, grouped; '' for none."""
    value = _decimal(quantity)
    if value is None:
        return ""
    value = _unsigned_zero(value)
    text = format_decimal(value, format="#,##0.############", locale=_locale())
    return f"{text} {plural_unit(unit, value)}".strip() if unit else text


def plural_unit(unit: str, quantity) -> str:
    """'seats' for any quantity but 1: simply an "s", unless the unit already ends in one
    ("tokens", "units"). English only, like the rest of the back office."""
    if not unit or _decimal(quantity) == 1 or unit.endswith("s"):
        return unit
    return unit + "s"


def format_day(day) -> str:
    """A date as people read it on a page or a message: "Mar 16, 2026"."""
    return f"{day:%b} {day.day}, {day.year}"
