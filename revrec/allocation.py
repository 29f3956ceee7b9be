"""Pure arithmetic of revenue recognition (no database): allocating a transaction price over
performance obligations by relative standalone selling price, and spreading an obligation's
allocation over accounting periods. Every split is largest-remainder (core.money.split): the
parts always sum exactly to the whole.
"""

from collections.abc import Sequence
from decimal import Decimal

from core.money import split
from core.periods import Period, add_months, calendar_months


class Convention:
    DAILY = "daily"  # by days of service in each month
    MONTHLY = "monthly"  # a whole month counts one share, a partial month its fraction of days


def allocate(price: Decimal, ssps: Sequence[Decimal], currency: str) -> list[Decimal]:
    """The transaction price split over obligations in proportion to their standalone selling
    prices (a discount is spread proportionally). All SSPs zero: equal shares."""
    if not ssps:
        return []
    weights = list(ssps) if any(ssps) else [Decimal(1)] * len(ssps)
    return split(price, weights, currency)


def spread(
    amount: Decimal, service: Period, currency: str, convention: str = Convention.DAILY
) -> list[tuple[Period, Decimal]]:
    """An obligation's allocation recognized over its service period, per calendar month."""
    months = calendar_months(service)
    if not months:
        return []
    if convention == Convention.DAILY:
        weights = [Decimal(m.days) for m in months]
    elif convention == Convention.MONTHLY:
        weights = [Decimal(m.days) / Decimal(_month_days(m)) for m in months]  # a month weighs 1
    else:
        raise ValueError(f"Unknown recognition convention {convention!r}: daily or monthly.")
    return list(zip(months, split(amount, weights, currency), strict=True))


def _month_days(part: Period) -> int:
    """The number of days of the calendar month `part` falls in."""
    first = part.start.replace(day=1)
    return (add_months(first, 1) - first).days
