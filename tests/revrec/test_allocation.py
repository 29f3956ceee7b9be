"""revrec.allocation: the exact arithmetic of allocation and recognition (no database).

The worked cases are figured by hand in the comments and repeated in docs/revrec.md ("Allocation
and recognition arithmetic"); the property tests check the invariants over random inputs: parts
sum exactly to their total, are never negative for a non-negative total, and are within one minor
unit of their exact share — over leap years (2028), month ends and one-day periods (each also an
explicit example, tried on every run); and a contract allocated then spread recognizes exactly
its price.
"""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.errors import ValidationError
from core.money import quantum, round_money
from core.periods import Period, add_months
from revrec.allocation import Convention, allocate, recognized_before, remaining, spread

D = Decimal


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def amounts(schedule) -> list[Decimal]:
    return [amount for _, amount in schedule]


def months(schedule) -> list[str]:
    return [f"{p.start:%b %d}–{p.end:%b %d}" for p, _ in schedule]


YEAR_2026 = Period(day("2026-01-01"), day("2027-01-01"))

# ---------------------------------------------------------------------------------------------
# Allocation by relative standalone selling price


def test_a_bundle_sold_at_a_discount_is_allocated_in_proportion_to_its_ssps():
    # Given platform (SSP 12,000), seats (SSP 6,000) and onboarding (SSP 2,000): 20,000 standalone
    # When the bundle sells for 18,000.00 (a 10% discount)
    parts = allocate(D("18000.00"), [D("12000"), D("6000"), D("2000")], "USD")
    # Then each obligation bears the same 10%: 18,000 × 12/20, × 6/20, × 2/20
    assert parts == [D("10800.00"), D("5400.00"), D("1800.00")]


def test_the_cents_left_over_go_to_the_largest_remainders():
    # Given SSPs 10,000 / 5,000 / 2,500 (17,500) and a price of 15,000.00
    # exact shares: 8,571.428571… / 4,285.714285… / 2,142.857142…
    # rounded down: 8,571.42 + 4,285.71 + 2,142.85 = 14,999.98 → 2 cents left over
    # remainders 0.00857 / 0.00429 / 0.00714: the platform and onboarding get one each
    parts = allocate(D("15000.00"), [D("10000"), D("5000"), D("2500")], "USD")
    assert parts == [D("8571.43"), D("4285.71"), D("2142.86")]
    assert sum(parts) == D("15000.00")


def test_ssps_are_weights_at_full_precision():
    # Given SSPs as unit prices per month (per seat 25.50 × 10 seats, platform 499.999)
    parts = allocate(D("900.00"), [D("499.999"), D("255.000")], "USD")
    # Then 900 × 499.999 / 754.999 = 596.0260… and 900 × 255 / 754.999 = 303.9739…
    assert parts == [D("596.03"), D("303.97")]


def test_a_price_above_the_ssps_spreads_the_premium_the_same_way():
    assert allocate(D("110.00"), [D("60"), D("40")], "USD") == [D("66.00"), D("44.00")]


def test_a_credit_is_allocated_like_a_price_with_the_sign():
    # -100.00 over three equal SSPs: -33.34 / -33.33 / -33.33 (the earliest takes the cent)
    assert allocate(D("-100.00"), [D("1"), D("1"), D("1")], "USD") == [
        D("-33.34"),
        D("-33.33"),
        D("-33.33"),
    ]


def test_zero_ssps_share_equally_and_a_zero_price_allocates_zeros():
    assert allocate(D("10.00"), [D("0"), D("0")], "USD") == [D("5.00"), D("5.00")]
    assert allocate(D("0"), [D("3"), D("1")], "USD") == [D("0.00"), D("0.00")]


def test_a_free_obligation_gets_nothing_when_others_have_an_ssp():
    assert allocate(D("90.00"), [D("100"), D("0")], "USD") == [D("90.00"), D("0.00")]


def test_allocation_rounds_to_the_currency_minor_unit():
    assert allocate(D("1000"), [D("1"), D("1"), D("1")], "JPY") == [D("334"), D("333"), D("333")]
    # KWD has 3 decimals: 0.3333… → 0.333 and 0.6666… → 0.666, the mil to the larger remainder
    assert allocate(D("1.000"), [D("1"), D("2")], "KWD") == [D("0.333"), D("0.667")]


def test_nothing_to_allocate_over_no_obligations():
    assert allocate(D("0.00"), [], "USD") == []
    with pytest.raises(ValidationError, match="at least one performance obligation"):
        allocate(D("10.00"), [], "USD")


def test_a_negative_ssp_is_refused():
    with pytest.raises(ValidationError, match="never negative: fix the SSP price book"):
        allocate(D("10.00"), [D("5"), D("-1")], "USD")


# ---------------------------------------------------------------------------------------------
# Spreading over calendar months: daily convention (the default)


def test_a_year_billed_up_front_is_recognized_daily_across_months_of_31_28_and_30_days():
    # Given 12,000.00 for Jan 1 – Dec 31, 2026 (365 days): 32.876712… a day
    # 31-day month: 1,019.178082… → 1,019.17, remainder 0.00808
    # February:       920.547945… →   920.54, remainder 0.00795
    # 30-day month:   986.301369… →   986.30, remainder 0.00137
    # rounded down: 7 × 1,019.17 + 920.54 + 4 × 986.30 = 11,999.93 → 7 cents left over, which
    # go to the 7 largest remainders: the seven 31-day months
    schedule = spread(D("12000.00"), YEAR_2026, "USD")
    assert [p.start.month for p, _ in schedule] == list(range(1, 13))
    assert amounts(schedule) == [
        D("1019.18"),  # Jan 31 days
        D("920.54"),  # Feb 28
        D("1019.18"),  # Mar 31
        D("986.30"),  # Apr 30
        D("1019.18"),  # May 31
        D("986.30"),  # Jun 30
        D("1019.18"),  # Jul 31
        D("1019.18"),  # Aug 31
        D("986.30"),  # Sep 30
        D("1019.18"),  # Oct 31
        D("986.30"),  # Nov 30
        D("1019.18"),  # Dec 31
    ]
    assert sum(amounts(schedule)) == D("12000.00")


def test_a_leap_year_gives_february_its_29th_day():
    # Given 12,000.00 for 2028 (366 days): 32.786885… a day
    # 31-day: 1,016.393442 → 1,016.39 (rem 0.00344); Feb 29 days: 950.819672 → 950.81 (0.00967);
    # 30-day: 983.606557 → 983.60 (0.00656). Rounded down: 11,999.94 → 6 cents: February, the
    # four 30-day months, then January (the earliest of the tied 31-day months)
    schedule = spread(D("12000.00"), Period(day("2028-01-01"), day("2029-01-01")), "USD")
    assert amounts(schedule) == [
        D("1016.40"),  # Jan
        D("950.82"),  # Feb (29 days)
        D("1016.39"),  # Mar
        D("983.61"),  # Apr
        D("1016.39"),  # May
        D("983.61"),  # Jun
        D("1016.39"),  # Jul
        D("1016.39"),  # Aug
        D("983.61"),  # Sep
        D("1016.39"),  # Oct
        D("983.61"),  # Nov
        D("1016.39"),  # Dec
    ]
    assert sum(amounts(schedule)) == D("12000.00")


def test_partial_first_and_last_months_weigh_their_days():
    # Given 2,310.00 for Jan 15 – Apr 15, 2026 (90 days: 17 + 28 + 31 + 14), as in docs/revrec.md
    schedule = spread(D("2310.00"), Period(day("2026-01-15"), day("2026-04-15")), "USD")
    assert months(schedule) == ["Jan 15–Feb 01", "Feb 01–Mar 01", "Mar 01–Apr 01", "Apr 01–Apr 15"]
    assert amounts(schedule) == [D("436.33"), D("718.67"), D("795.67"), D("359.33")]


def test_a_one_day_period_is_recognized_in_its_month():
    schedule = spread(D("100.00"), Period(day("2026-02-28"), day("2026-03-01")), "USD")
    assert months(schedule) == ["Feb 28–Mar 01"]
    assert amounts(schedule) == [D("100.00")]


def test_a_period_inside_one_month_is_one_line():
    schedule = spread(D("250.00"), Period(day("2026-03-10"), day("2026-03-20")), "USD")
    assert months(schedule) == ["Mar 10–Mar 20"]
    assert amounts(schedule) == [D("250.00")]


def test_a_term_starting_on_january_31_has_a_one_day_january():
    # Given 1,200.00 for Jan 31 – Mar 31, 2026 (two monthly periods anchored on the 31st, Mar 31
    # excluded: 59 days = 1 + 28 + 30)
    schedule = spread(D("1200.00"), Period(day("2026-01-31"), day("2026-03-31")), "USD")
    # 1,200 × 1/59 = 20.338983 → 20.33 (0.00898); × 28/59 = 569.491525 → 569.49 (0.00153);
    # × 30/59 = 610.169491 → 610.16 (0.00949): 1,199.98 → 2 cents to March and January
    assert months(schedule) == ["Jan 31–Feb 01", "Feb 01–Mar 01", "Mar 01–Mar 31"]
    assert amounts(schedule) == [D("20.34"), D("569.49"), D("610.17")]


def test_a_zero_amount_gives_zero_lines():
    assert amounts(spread(D("0"), YEAR_2026, "USD")) == [D("0.00")] * 12


def test_a_credit_is_spread_like_a_charge_with_the_sign():
    # -1,200.00 over Jan – Mar 2026 (90 days: 31, 28, 31): 413.33… / 373.33… / 413.33…;
    # 1 cent left over, remainders tied: the earliest month takes it
    schedule = spread(D("-1200.00"), Period(day("2026-01-01"), day("2026-04-01")), "USD")
    assert amounts(schedule) == [D("-413.34"), D("-373.33"), D("-413.33")]


def test_an_empty_period_recognizes_nothing_and_refuses_an_amount():
    empty = Period(day("2026-05-01"), day("2026-05-01"))
    assert spread(D("0.00"), empty, "USD") == []
    with pytest.raises(ValidationError, match="at least one day of service"):
        spread(D("1.00"), empty, "USD")


def test_a_period_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValidationError, match="ends .* before it starts"):
        spread(D("1.00"), Period(day("2026-05-02"), day("2026-05-01")), "USD")


def test_an_unknown_convention_is_a_programming_error():
    with pytest.raises(ValueError, match="daily or monthly"):
        spread(D("1.00"), YEAR_2026, "USD", "weekly")


# ---------------------------------------------------------------------------------------------
# Monthly convention


def test_the_monthly_convention_gives_every_whole_month_the_same_share():
    schedule = spread(D("12000.00"), YEAR_2026, "USD", Convention.MONTHLY)
    assert amounts(schedule) == [D("1000.00")] * 12


def test_the_monthly_convention_weighs_a_partial_month_by_its_days():
    # Given 12,000.00 for Jan 31, 2026 – Jan 31, 2027: Jan 2026 is 1/31 of a month, Feb – Dec
    # whole (11), Jan 2027 30/31: 12 months in all, 1,000.00 a month
    # Jan 2026: 1,000/31 = 32.258064 → 32.25 (0.00806); Jan 2027: 30,000/31 = 967.741935 → 967.74
    # (0.00194): 11,999.99 → the cent goes to Jan 2026
    schedule = spread(
        D("12000.00"), Period(day("2026-01-31"), day("2027-01-31")), "USD", Convention.MONTHLY
    )
    assert len(schedule) == 13
    assert amounts(schedule) == [D("32.26")] + [D("1000.00")] * 11 + [D("967.74")]


def test_the_monthly_convention_in_a_leap_february():
    # Feb 2028 (29 days) whole, and March: 1 + 1 → 50.00 each, though their days differ
    schedule = spread(
        D("100.00"), Period(day("2028-02-01"), day("2028-04-01")), "USD", Convention.MONTHLY
    )
    assert amounts(schedule) == [D("50.00"), D("50.00")]


# ---------------------------------------------------------------------------------------------
# Prospective modifications


def test_recognized_before_a_month_start_is_the_lines_of_the_months_before():
    # Jan – Jun lines of the 2026 year: 1,019.18 + 920.54 + 1,019.18 + 986.30 + 1,019.18 + 986.30
    assert recognized_before(D("12000.00"), YEAR_2026, day("2026-07-01"), "USD") == D("5950.68")


def test_recognized_before_a_mid_month_day_splits_that_months_line_by_days():
    # January's line 1,019.18 over Jan 1–15 (15 days) and Jan 16–31 (16 days):
    # 493.151612… → 493.15 (0.00161) and 526.028387… → 526.02 (0.00839): the cent goes to the rest
    assert recognized_before(D("12000.00"), YEAR_2026, day("2026-01-16"), "USD") == D("493.15")
    assert recognized_before(D("12000.00"), YEAR_2026, day("2026-01-01"), "USD") == D("0.00")
    assert recognized_before(D("12000.00"), YEAR_2026, day("2027-03-01"), "USD") == D("12000.00")


def test_an_upgrade_mid_term_is_spread_prospectively_over_the_remaining_term():
    # Given the 2026 year (12,000.00, daily) upgraded on Jul 1 for 3,000.00 more
    recognized = recognized_before(D("12000.00"), YEAR_2026, day("2026-07-01"), "USD")
    assert recognized == D("5950.68")
    # When what remains (12,000.00 − 5,950.68 = 6,049.32) plus 3,000.00 = 9,049.32 is spread over
    # Jul 1 – Dec 31 (184 days): 49.181086… a day; 31 days 1,524.613695… → 1,524.61 (0.00370),
    # 30 days 1,475.432608… → 1,475.43 (0.00261); 9,049.30 → 2 cents to July and August
    schedule = remaining(
        D("12000.00"),
        recognized,
        Period(day("2026-07-01"), day("2027-01-01")),
        "USD",
        added=D("3000.00"),
    )
    assert amounts(schedule) == [
        D("1524.62"),  # Jul
        D("1524.62"),  # Aug
        D("1475.43"),  # Sep
        D("1524.61"),  # Oct
        D("1475.43"),  # Nov
        D("1524.61"),  # Dec
    ]
    # Then the year recognizes exactly the old price plus the upgrade
    assert recognized + sum(amounts(schedule)) == D("15000.00")


def test_a_downgrade_is_new_consideration_below_zero():
    schedule = remaining(
        D("1200.00"),
        D("400.00"),
        Period(day("2026-05-01"), day("2026-07-01")),
        "USD",
        added=D("-200.00"),
    )
    # 1,200 − 400 − 200 = 600 over May (31) and June (30): 304.918… → 304.91 (0.0082) and
    # 295.081… → 295.08 (0.0016): the cent to May
    assert amounts(schedule) == [D("304.92"), D("295.08")]


# ---------------------------------------------------------------------------------------------
# Properties

CURRENCIES = st.sampled_from(["USD", "JPY", "KWD"])
SPECIAL_DAYS = [
    day("2026-01-31"),
    day("2026-02-28"),
    day("2026-03-31"),
    day("2027-12-31"),
    day("2028-01-31"),
    day("2028-02-28"),
    day("2028-02-29"),
    day("2028-03-01"),
    day("2028-12-31"),
]
STARTS = st.one_of(
    st.sampled_from(SPECIAL_DAYS),
    st.dates(min_value=day("2024-01-01"), max_value=day("2030-12-31")),
)
LENGTHS = st.one_of(st.just(1), st.integers(min_value=1, max_value=800))


def money(currency: str, cents: int) -> Decimal:
    return D(cents) * quantum(currency)


@st.composite
def periods(draw):
    start = draw(STARTS)
    length = draw(LENGTHS)
    return Period(start, start + dt.timedelta(days=length))


@settings(max_examples=400, deadline=None)
@given(
    currency=CURRENCIES,
    units=st.integers(min_value=-(10**12), max_value=10**12),
    ssps=st.lists(
        st.one_of(
            st.just(D(0)),
            st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_allocations_sum_exactly_and_stay_within_a_minor_unit_of_their_share(currency, units, ssps):
    price = money(currency, units)
    parts = allocate(price, ssps, currency)
    assert sum(parts) == price
    assert len(parts) == len(ssps)
    if price >= 0:
        assert all(p >= 0 for p in parts)
    weights = ssps if any(ssps) else [D(1)] * len(ssps)
    for part, weight in zip(parts, weights, strict=True):
        exact = price * weight / sum(weights)
        assert abs(part - exact) < quantum(currency)
        assert part == round_money(part, currency)


def one_day(text: str) -> Period:
    return Period(day(text), day(text) + dt.timedelta(days=1))


@settings(max_examples=400, deadline=None)
@given(
    currency=CURRENCIES,
    units=st.integers(min_value=-(10**12), max_value=10**12),
    service=periods(),
    convention=st.sampled_from(Convention.ALL),
)
# Always tried, whatever the draw: one-day periods on a leap day, a month's last and first day;
# a leap year's February whole; a year from Feb 29; month ends to month ends; odd cents.
@example("USD", 1, one_day("2028-02-29"), Convention.DAILY)
@example("USD", -1, one_day("2028-02-29"), Convention.MONTHLY)
@example("JPY", 7, one_day("2026-01-31"), Convention.MONTHLY)
@example("KWD", 1001, one_day("2027-12-31"), Convention.DAILY)
@example("USD", 2900, Period(day("2028-02-01"), day("2028-03-01")), Convention.DAILY)
@example("USD", 10_000_001, Period(day("2028-02-29"), day("2029-03-01")), Convention.DAILY)
@example("USD", 10_000_001, Period(day("2028-02-29"), day("2029-02-28")), Convention.MONTHLY)
@example("USD", 99_999, Period(day("2026-01-31"), day("2026-03-31")), Convention.MONTHLY)
@example("KWD", -123_457, Period(day("2027-11-30"), day("2028-03-01")), Convention.DAILY)
def test_schedules_sum_exactly_cover_the_period_month_by_month_and_stay_proportional(
    currency, units, service, convention
):
    amount = money(currency, units)
    schedule = spread(amount, service, currency, convention)
    assert sum(amounts(schedule)) == amount
    if amount >= 0:
        assert all(a >= 0 for a in amounts(schedule))
    # the lines tile the service period, one per calendar month
    assert schedule[0][0].start == service.start and schedule[-1][0].end == service.end
    for (a, _), (b, _) in zip(schedule, schedule[1:], strict=False):
        assert a.end == b.start and b.start.day == 1
    for part, _ in schedule:
        assert part.start.replace(day=1) == (part.end - dt.timedelta(days=1)).replace(day=1)
    # each line is within one minor unit of its exact share
    weights = [
        D(p.days)
        if convention == Convention.DAILY
        else D(p.days) / D((add_months(p.start.replace(day=1), 1) - p.start.replace(day=1)).days)
        for p, _ in schedule
    ]
    for (_, line), weight in zip(schedule, weights, strict=True):
        assert abs(line - amount * weight / sum(weights)) < quantum(currency)


@settings(max_examples=300, deadline=None)
@given(
    currency=CURRENCIES,
    units=st.integers(min_value=-(10**10), max_value=10**10),
    added_units=st.integers(min_value=-(10**8), max_value=10**8),
    service=periods(),
    cut=st.floats(min_value=0, max_value=1),
    convention=st.sampled_from(Convention.ALL),
)
def test_a_prospective_change_keeps_what_was_recognized_and_sums_to_the_new_total(
    currency, units, added_units, service, cut, convention
):
    amount, added = money(currency, units), money(currency, added_units)
    change_on = service.start + dt.timedelta(days=int(service.days * cut))
    before = recognized_before(amount, service, change_on, currency, convention)
    # nothing before the start, everything by the end, and never less on a later day
    assert recognized_before(amount, service, service.start, currency, convention) == 0
    assert recognized_before(amount, service, service.end, currency, convention) == amount
    later = recognized_before(
        amount, service, min(change_on + dt.timedelta(days=1), service.end), currency, convention
    )
    if amount >= 0:
        assert 0 <= before <= later <= amount
    else:
        assert 0 >= before >= later >= amount
    # on a month's first day it is exactly the lines of the months before
    if change_on.day == 1:
        lines = spread(amount, service, currency, convention)
        assert before == sum(a for p, a in lines if p.end <= change_on)
    rest = Period(change_on, service.end)
    if rest.days == 0:
        return
    schedule = remaining(amount, before, rest, currency, convention, added=added)
    assert before + sum(amounts(schedule)) == amount + added


@st.composite
def obligations(draw):
    """A contract's fixed obligations: (SSP, service period) each, over leap years and month
    ends, one-day periods among them (a point-in-time fee is a one-day period)."""
    return draw(
        st.lists(
            st.tuples(
                st.one_of(st.just(D(0)), st.decimals(min_value=0, max_value=10**7, places=2)),
                periods(),
            ),
            min_size=1,
            max_size=6,
        )
    )


@settings(max_examples=300, deadline=None)
@given(
    currency=CURRENCIES,
    units=st.integers(min_value=0, max_value=10**10),
    contract=obligations(),
    convention=st.sampled_from(Convention.ALL),
)
@example(
    "USD",
    100_000_001,  # 1,000,000.01 over a leap year's platform fee, its Feb 29 setup, seats
    [
        (D("12000"), Period(day("2028-01-01"), day("2029-01-01"))),
        (D("1500"), one_day("2028-02-29")),
        (D("0"), Period(day("2028-01-31"), day("2028-03-31"))),
    ],
    Convention.DAILY,
)
def test_a_contract_allocated_then_spread_recognizes_exactly_its_price(
    currency, units, contract, convention
):
    # Given a transaction price over obligations with their SSPs and service periods
    price = money(currency, units)
    shares = allocate(price, [ssp for ssp, _ in contract], currency)
    # When each share is spread over its obligation's service
    schedules = [
        spread(share, service, currency, convention)
        for share, (_, service) in zip(shares, contract, strict=True)
    ]
    # Then each obligation's lines sum to its share, and all the lines to the price, to the unit
    for share, schedule in zip(shares, schedules, strict=True):
        assert sum(amounts(schedule)) == share
        assert all(line == round_money(line, currency) for line in amounts(schedule))
    assert sum(sum(amounts(schedule)) for schedule in schedules) == price
