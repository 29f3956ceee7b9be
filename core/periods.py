"""Billing-period arithmetic. Periods are half-open [start, end) dates.

Monthly periods anchor on the start day and clamp to the month's end: an anchor of Jan 31 gives
Feb 28 (Feb 29 in a leap year), then Mar 31 — the anchor day is kept, not the clamped one.
"""

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # exclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def __contains__(self, day: dt.date) -> bool:
        return self.start <= day < self.end


def add_months(anchor: dt.date, months: int) -> dt.date:
    """The anchor moved by whole months, the day clamped to the target month's last day."""
    month_index = anchor.month - 1 + months
    year, month = anchor.year + month_index // 12, month_index % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return dt.date(year, month, day)


def billing_periods(start: dt.date, term_months: int, interval_months: int = 1) -> list[Period]:
    """Consecutive periods over the term, each interval_months long, anchored on start."""
    if term_months <= 0 or interval_months <= 0:
        raise ValueError("term and interval must be positive")
    if term_months % interval_months:
        raise ValueError("the term must be a whole number of billing intervals")
    bounds = [add_months(start, k) for k in range(0, term_months + 1, interval_months)]
    return [Period(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def proration_fraction(period: Period, used: Period) -> Decimal:
    """Share of period covered by used (clipped to it), by days: days_used / days_in_period."""
    start, end = max(period.start, used.start), min(period.end, used.end)
    days_used = max((end - start).days, 0)
    return Decimal(days_used) / Decimal(period.days)


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def calendar_months(period: Period) -> list[Period]:
    """The calendar-month slices of a period (first and last may be partial)."""
    slices, cursor = [], period.start
    while cursor < period.end:
        nxt = add_months(month_start(cursor), 1)
        slices.append(Period(cursor, min(nxt, period.end)))
        cursor = nxt
    return slices


def day_start(day: dt.date) -> dt.datetime:
    """The instant a billing day starts (UTC): period bounds as datetimes for event queries."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
