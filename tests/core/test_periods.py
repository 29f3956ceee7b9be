"""core.periods: month arithmetic, billing schedules, proration fractions, calendar slices."""

import calendar
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.periods import (
    Period,
    add_months,
    billing_periods,
    calendar_months,
    day_start,
    proration_fraction,
)
from tests.factories import day

# --- add_months ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "months", "expected"),
    [
        # a Jan 31 anchor clamps to each month's last day
        ("2027-01-31", 1, "2027-02-28"),
        ("2028-01-31", 1, "2028-02-29"),  # leap year
        ("2027-01-31", 2, "2027-03-31"),  # anchored on the 31st, not on the clamped 28th
        ("2027-01-31", 3, "2027-04-30"),
        ("2027-01-31", 12, "2028-01-31"),
        # leap days
        ("2028-02-29", 12, "2029-02-28"),
        ("2028-02-29", 48, "2032-02-29"),
        ("2027-11-30", 3, "2028-02-29"),
        # ordinary days, year boundaries, zero and negative offsets
        ("2026-01-15", 1, "2026-02-15"),
        ("2027-12-15", 1, "2028-01-15"),
        ("2027-12-31", 2, "2028-02-29"),
        ("2027-01-15", 0, "2027-01-15"),
        ("2027-01-15", -1, "2026-12-15"),
        ("2027-03-31", -1, "2027-02-28"),
        ("2027-01-31", -2, "2026-11-30"),
    ],
)
def test_add_months_clamps_to_the_end_of_the_target_month(anchor, months, expected):
    assert add_months(day(anchor), months) == day(expected)


# --- billing_periods -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (
            "2027-01-31",
            [
                ("2027-01-31", "2027-02-28"),
                ("2027-02-28", "2027-03-31"),
                ("2027-03-31", "2027-04-30"),
            ],
        ),
        (
            "2028-01-31",
            [
                ("2028-01-31", "2028-02-29"),
                ("2028-02-29", "2028-03-31"),
                ("2028-03-31", "2028-04-30"),
            ],
        ),
        (
            "2026-01-15",
            [
                ("2026-01-15", "2026-02-15"),
                ("2026-02-15", "2026-03-15"),
                ("2026-03-15", "2026-04-15"),
            ],
        ),
    ],
)
def test_monthly_periods_are_anchored_on_the_start_day(start, expected):
    periods = billing_periods(day(start), 3)
    assert periods == [Period(day(a), day(b)) for a, b in expected]


def test_quarterly_periods_over_a_year_are_anchored_on_the_start_day():
    periods = billing_periods(day("2026-01-31"), 12, 3)
    assert periods == [
        Period(day("2026-01-31"), day("2026-04-30")),
        Period(day("2026-04-30"), day("2026-07-31")),
        Period(day("2026-07-31"), day("2026-10-31")),
        Period(day("2026-10-31"), day("2027-01-31")),
    ]
    assert [p.days for p in periods] == [89, 92, 92, 92]


def test_quarterly_periods_from_aug_31_touch_feb_28_and_return_to_the_31st():
    assert billing_periods(day("2026-08-31"), 12, 3) == [
        Period(day("2026-08-31"), day("2026-11-30")),
        Period(day("2026-11-30"), day("2027-02-28")),
        Period(day("2027-02-28"), day("2027-05-31")),
        Period(day("2027-05-31"), day("2027-08-31")),
    ]


def test_a_yearly_interval_over_a_year_is_one_period():
    assert billing_periods(day("2028-02-29"), 12, 12) == [
        Period(day("2028-02-29"), day("2029-02-28"))
    ]


@pytest.mark.parametrize(
    ("term", "interval", "message"),
    [
        (4, 3, "the term must be a whole number of billing intervals"),
        (13, 12, "the term must be a whole number of billing intervals"),
        (0, 1, "term and interval must be positive"),
        (-3, 3, "term and interval must be positive"),
        (12, 0, "term and interval must be positive"),
    ],
)
def test_billing_periods_refuses_a_term_that_is_not_whole_intervals(term, interval, message):
    with pytest.raises(ValueError, match=message):
        billing_periods(day("2026-01-15"), term, interval)


def test_a_period_is_half_open():
    period = Period(day("2026-01-15"), day("2026-02-15"))
    assert period.days == 31
    assert day("2026-01-15") in period
    assert day("2026-02-14") in period
    assert day("2026-02-15") not in period
    assert day("2026-01-14") not in period


# --- proration_fraction ----------------------------------------------------------------------

JANUARY = Period(day("2026-01-01"), day("2026-02-01"))  # 31 days


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (Period(day("2026-01-22"), day("2026-02-01")), Decimal(10) / Decimal(31)),
        # clipped to the period: only Jan 1–10 counts
        (Period(day("2025-12-15"), day("2026-01-11")), Decimal(10) / Decimal(31)),
        (Period(day("2026-01-01"), day("2026-01-02")), Decimal(1) / Decimal(31)),
        (JANUARY, Decimal(1)),
        (Period(day("2025-12-01"), day("2026-03-01")), Decimal(1)),
        # no overlap, on either side
        (Period(day("2026-02-01"), day("2026-03-01")), Decimal(0)),
        (Period(day("2025-12-01"), day("2026-01-01")), Decimal(0)),
    ],
)
def test_proration_fraction_is_days_used_over_days_in_period(used, expected):
    fraction = proration_fraction(JANUARY, used)
    assert type(fraction) is Decimal
    assert fraction == expected


def test_proration_fraction_of_february_in_a_leap_year_counts_29_days():
    february = Period(day("2028-02-01"), day("2028-03-01"))
    used = Period(day("2028-02-15"), day("2028-03-01"))
    assert proration_fraction(february, used) == Decimal(15) / Decimal(29)


# --- calendar_months -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "slices"),
    [
        (
            ("2026-01-15", "2026-04-15"),
            [
                ("2026-01-15", "2026-02-01"),
                ("2026-02-01", "2026-03-01"),
                ("2026-03-01", "2026-04-01"),
                ("2026-04-01", "2026-04-15"),
            ],
        ),
        (("2026-03-05", "2026-03-20"), [("2026-03-05", "2026-03-20")]),
        (
            ("2026-01-01", "2026-03-01"),
            [("2026-01-01", "2026-02-01"), ("2026-02-01", "2026-03-01")],
        ),
        (
            ("2025-12-20", "2026-01-10"),
            [("2025-12-20", "2026-01-01"), ("2026-01-01", "2026-01-10")],
        ),
        (
            ("2026-01-31", "2026-02-28"),
            [("2026-01-31", "2026-02-01"), ("2026-02-01", "2026-02-28")],
        ),
    ],
)
def test_calendar_months_slices_a_period_at_month_starts(period, slices):
    result = calendar_months(Period(day(period[0]), day(period[1])))
    assert result == [Period(day(a), day(b)) for a, b in slices]


def test_calendar_months_day_counts_of_the_end_to_end_term():
    slices = calendar_months(Period(day("2026-01-15"), day("2026-04-15")))
    assert [s.days for s in slices] == [17, 28, 31, 14]


def test_day_start_is_midnight_utc():
    assert day_start(day("2026-02-15")) == dt.datetime(2026, 2, 15, tzinfo=dt.UTC)


# --- properties ------------------------------------------------------------------------------

dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31))


@settings(max_examples=200)
@given(anchor=dates, months=st.integers(min_value=-240, max_value=240))
def test_add_months_moves_whole_months_and_keeps_the_day_when_it_exists(anchor, months):
    result = add_months(anchor, months)
    assert (result.year * 12 + result.month) - (anchor.year * 12 + anchor.month) == months
    last_day = calendar.monthrange(result.year, result.month)[1]
    assert result.day == min(anchor.day, last_day)


@settings(max_examples=200)
@given(
    start=dates,
    interval=st.sampled_from([1, 3, 12]),
    intervals=st.integers(min_value=1, max_value=24),
)
def test_billing_periods_are_contiguous_and_cover_exactly_the_term(start, interval, intervals):
    # Given a term that is a whole number of intervals
    term = interval * intervals

    # When
    periods = billing_periods(start, term, interval)

    # Then [start, start + term) is covered exactly, without gaps or overlaps
    assert len(periods) == intervals
    assert periods[0].start == start
    assert periods[-1].end == add_months(start, term)
    assert all(a.end == b.start for a, b in zip(periods, periods[1:], strict=False))
    assert all(p.start < p.end for p in periods)
    assert sum(p.days for p in periods) == (add_months(start, term) - start).days
    # and every boundary is anchored on the start day, never on a previously clamped day
    assert [p.start for p in periods] == [add_months(start, k * interval) for k in range(intervals)]


@settings(max_examples=200)
@given(start=dates, length=st.integers(min_value=1, max_value=800))
def test_calendar_months_cover_the_period_with_one_slice_per_month(start, length):
    period = Period(start, start + dt.timedelta(days=length))
    slices = calendar_months(period)
    assert slices[0].start == period.start
    assert slices[-1].end == period.end
    assert all(a.end == b.start for a, b in zip(slices, slices[1:], strict=False))
    # each slice lies within one calendar month (its first and last day share the month)
    last_days = [s.end - dt.timedelta(days=1) for s in slices]
    assert all(
        (s.start.year, s.start.month) == (last.year, last.month)
        for s, last in zip(slices, last_days, strict=True)
    )
    assert sum(s.days for s in slices) == length
