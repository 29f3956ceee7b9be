"""Pure arithmetic of revenue recognition (no database): allocating a transaction price over
performance obligations by relative standalone selling price, and spreading an obligation's
allocation over accounting periods (calendar months).

Every split is largest-remainder (core.money.split): each part is rounded down to the minor unit,
then the cents left over go one by one to the parts with the largest remainders (the earliest on
a tie). So the parts always sum exactly to the whole, and each part is within one minor unit of
its exact share. A negative amount (a credit) splits as its magnitude does, with the sign.

Conventions for spreading over a service period [start, end) (half-open, like billing periods):
- daily (the default): each calendar month weighs its days of service. A year from Jan 1, 2026
  gives January 31/365 of the amount, February 28/365, April 30/365.
- monthly: each whole calendar month weighs 1, a partial first or last month its fraction of the
  month's days (Jan 16–31 weighs 16/31). Twelve whole months recognize 1/12 each, whatever
  their length.

A prospective modification (issue 22: a change that is not a separate contract) keeps what was
recognized before the change and spreads what remains, plus any new consideration, over the
remaining term: `recognized_before` and `remaining`.
"""

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from core.errors import ValidationError
from core.money import round_money, split
from core.periods import Period, add_months, calendar_months

ZERO = Decimal(0)

Schedule = list[tuple[Period, Decimal]]


class Convention:
    DAILY = "daily"  # by days of service in each month
    MONTHLY = "monthly"  # a whole month counts one share, a partial month its fraction of days

    ALL = (DAILY, MONTHLY)


def allocate(price: Decimal, ssps: Sequence[Decimal], currency: str) -> list[Decimal]:
    """The transaction price split over obligations in proportion to their standalone selling
    prices: a discount (price below the SSPs' sum) or a premium is spread proportionally. The
    parts sum exactly to the price rounded to the currency. All SSPs zero: equal shares.

    SSPs are weights, used at full precision (12,000 and 6,000 weigh as 2 and 1)."""
    if not ssps:
        if round_money(price, currency):
            raise ValidationError(
                f"Cannot allocate {price} over no obligations: the contract needs at least one "
                "performance obligation."
            )
        return []
    if any(ssp < 0 for ssp in ssps):
        raise ValidationError(
            "A standalone selling price is never negative: fix the SSP price book "
            f"(got {', '.join(str(s) for s in ssps if s < 0)})."
        )
    weights = list(ssps) if any(ssps) else [Decimal(1)] * len(ssps)
    return split(price, weights, currency)


def spread(
    amount: Decimal, service: Period, currency: str, convention: str = Convention.DAILY
) -> Schedule:
    """An obligation's allocation recognized over its service period, one line per calendar
    month it touches (the first and last may be partial); the lines sum exactly to the amount
    rounded to the currency."""
    if convention not in Convention.ALL:
        raise ValueError(f"Unknown recognition convention {convention!r}: daily or monthly.")
    if service.end < service.start:
        raise ValidationError(
            f"The service period ends ({service.end}) before it starts ({service.start})."
        )
    months = calendar_months(service)
    if not months:
        if round_money(amount, currency):
            raise ValidationError(
                f"Cannot recognize {amount} over an empty service period (from {service.start} "
                "to the same day): give the obligation at least one day of service."
            )
        return []
    if convention == Convention.DAILY:
        weights = [Decimal(m.days) for m in months]
    else:
        weights = [Decimal(m.days) / Decimal(_month_days(m)) for m in months]  # a month weighs 1
    return list(zip(months, split(amount, weights, currency), strict=True))


def recognized_before(
    amount: Decimal,
    service: Period,
    day: dt.date,
    currency: str,
    convention: str = Convention.DAILY,
) -> Decimal:
    """How much of spread(amount, service) belongs to the days before `day`: the months that
    end by then in full, and the month containing `day` split by days (largest remainder), so
    the part before and the part from `day` on sum exactly to the month's line."""
    before = ZERO
    for month, part in spread(amount, service, currency, convention):
        if month.end <= day:
            before += part
        elif month.start < day:
            before += split(part, [(day - month.start).days, (month.end - day).days], currency)[0]
    return before


def remaining(
    amount: Decimal,
    recognized: Decimal,
    rest: Period,
    currency: str,
    convention: str = Convention.DAILY,
    added: Decimal = ZERO,
) -> Schedule:
    """A prospective modification: what remains unrecognized of `amount` (after `recognized`),
    plus the new consideration `added` (negative: a reduction), spread over the rest of the term.
    What was recognized stays; the new schedule sums exactly to amount − recognized + added."""
    rest_amount = round_money(amount, currency) - round_money(recognized, currency)
    return spread(rest_amount + round_money(added, currency), rest, currency, convention)


def _month_days(part: Period) -> int:
    """The number of days of the calendar month `part` falls in."""
    first = part.start.replace(day=1)
    return (add_months(first, 1) - first).days
