"""Money arithmetic: the one place amounts are rounded, and the one splitter.

Rule (DESIGN.md): engines keep full precision; an amount is rounded once, to the currency's ISO 4217
minor unit, half-up. Splitting an amount (revenue schedules, allocations) uses largest remainder so
the parts always add up to the whole.
"""

from collections.abc import Iterable, Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from moneyed import get_currency

from core.errors import DomainError

# Field precision used across apps.
PRICE_MAX_DIGITS = 28
PRICE_DECIMAL_PLACES = 12  # unit prices: a token can cost 0.000002
AMOUNT_MAX_DIGITS = 20
AMOUNT_DECIMAL_PLACES = 4  # rounded amounts; 4 covers every ISO 4217 minor unit
QUANTITY_MAX_DIGITS = 28
QUANTITY_DECIMAL_PLACES = 6

# SQLite stores a decimal column as a double: 15 significant digits survive the round trip, more
# do not (1234567890123456.78 comes back as 1234567890123460). PostgreSQL's numeric is exact.
SQLITE_SIGNIFICANT_DIGITS = 15


def minor_units(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    try:
        sub_unit = get_currency(currency.upper()).sub_unit
    except Exception as exc:  # moneyed raises CurrencyDoesNotExist
        raise DomainError(
            f"Unknown currency {currency!r}: use an ISO 4217 code such as USD."
        ) from exc
    return len(str(sub_unit)) - 1


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half-up (away from zero on a tie)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"round_money takes a Decimal, got {type(amount).__name__}")
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def round_quantity(quantity: Decimal) -> Decimal:
    """A quantity at the precision it is stored with (QUANTITY_DECIMAL_PLACES), half-up, as
    PostgreSQL's numeric rounds it: what is rated is what the invoice line shows."""
    return quantity.quantize(Decimal(1).scaleb(-QUANTITY_DECIMAL_PLACES), rounding=ROUND_HALF_UP)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """Exact sum of Decimals. Money read from the database is added up here, in Python, rather
    than by SQL SUM(), which SQLite computes in floating point."""
    return sum(values, Decimal(0))


def significant_digits(value: Decimal) -> int:
    """Digits from the first non-zero one to the last non-zero one: 1200.50 has 4, 0 has 0."""
    if not value:
        return 0
    return len(value.normalize().as_tuple().digits)


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount as an integer count of minor units (cents), after rounding."""
    return int(round_money(amount, currency).scaleb(minor_units(currency)))


def split(total: Decimal, weights: Sequence[Decimal | int], currency: str) -> list[Decimal]:
    """Split a rounded total in proportion to weights; parts are rounded and sum exactly to total.

    Largest remainder: every part is first rounded down to the minor unit, then the leftover
    minor units go one by one to the parts with the largest remainders (earliest first on ties).
    """
    if not weights:
        raise DomainError("Cannot split an amount into zero parts.")
    weights = [Decimal(w) for w in weights]
    if any(w < 0 for w in weights) or sum(weights) == 0:
        raise DomainError("Split weights must be non-negative and not all zero.")
    q = quantum(currency)
    total = round_money(total, currency)
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    weight_sum = sum(weights)
    exact = [magnitude * w / weight_sum for w in weights]
    parts = [e.quantize(q, rounding=ROUND_DOWN) for e in exact]
    leftover = int((magnitude - sum(parts)) / q)
    order = sorted(range(len(parts)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:leftover]:
        parts[i] += q
    result = [sign * p for p in parts]
    assert sum(result) == total, "split parts must sum to the total"
    return result


def plain(value: Decimal | int, grouping: bool = False) -> str:
    """A number as plain text without trailing zeros or exponent: 1500, 0.000002 (1,500 with
    grouping)."""
    if not value:
        return "0"
    return f"{Decimal(value).normalize():{',' if grouping else ''}f}"
