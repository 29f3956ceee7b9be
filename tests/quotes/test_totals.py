"""A quote's figures (quotes.totals): MRR, ARR, ACV, TCV, first year, estimated usage, discount."""

from decimal import ROUND_HALF_UP
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.models import Charge, Plan
from customers.models import Customer
from quotes.models import Quote, QuoteLine
from quotes.pricing import Phase
from quotes.totals import LineExtras, quote_totals
from tests.quotes.deal import northwind_deal


def test_the_northwind_deal_adds_up_as_computed_by_hand(db):
    totals = quote_totals(northwind_deal())

    # the figures of tests/quotes/deal.py's docstring
    assert (totals.mrr_first, totals.mrr_full, totals.arr) == (D("4600"), D("6130"), D("73560"))
    assert (totals.recurring, totals.commitments, totals.one_time, totals.credits) == (
        D("128760.00"),
        D("72000.00"),
        D("9000.00"),
        D("0"),
    )
    assert (totals.tcv, totals.acv, totals.first_year) == (
        D("209760.00"),
        D("100380.00"),
        D("100200.00"),
    )
    assert totals.estimated_usage == D("36000.00")
    assert (totals.list_total, totals.net_total, totals.discount) == (
        D("276000.00"),
        D("245760.00"),
        D("30240.00"),
    )
    assert round(totals.discount_percent, 2) == D("10.96")
    per_line = {f.line.name: (f.list_first, f.net_first, f.net_last) for f in totals.lines}
    assert per_line == {
        "Platform fee": (D("1000.00"), D("1000.00"), D("1000.00")),
        "Seats": (D("4000.00"), D("3600.00"), D("5130.00")),
        "API calls": (D("5000.00"), D("4500.00"), D("4500.00")),
        "Implementation": (D("12000.00"), D("9000.00"), D("9000.00")),
    }


def test_billed_quarterly_fixed_fees_are_three_months_at_once(db):
    # The same deal billed every 3 months: 8 periods. Seats 3 × 3,600 = 10,800 a quarter, then
    # 3 × 5,130 = 15,390; the calls' minimum is 3 × 3,000 = 9,000 a quarter and the estimate
    # 9,000,000 calls a quarter: 2,000,000 × 0.0018 + 7,000,000 × 0.0009 = 3,600 + 6,300 = 9,900
    # (tiers apply per billing period: less than 3 × 4,500).
    quote = northwind_deal(billing_interval_months=3)
    totals = quote_totals(quote)
    assert (totals.periods, totals.months) == (8, 3)
    assert (totals.mrr_first, totals.mrr_full) == (D("4600"), D("6130"))
    assert totals.recurring == D("128760.00")
    assert totals.commitments == D("72000.00")
    assert totals.estimated_usage == 8 * (D("9900") - D("9000"))


def test_prepaid_credits_are_committed_once(db):
    quote = northwind_deal()
    QuoteLine.objects.create(
        quote=quote, kind="credit", description="Usage credits", quantity=D(1),
        unit_price=D("10000"), discount_percent=D(10), position=4,
    )  # fmt: skip
    totals = quote_totals(quote)
    # 10,000 of credit paid 9,000: committed once, in the first year, not in the ACV's one-time
    assert totals.credits == D("9000.00")
    assert totals.tcv == D("209760.00") + D("9000.00")
    assert totals.first_year == D("100200.00") + D("9000.00")
    assert totals.acv == D("100380.00") + D("4500.00")


prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
percents = st.decimals(min_value=D("0"), max_value=D("100"), places=2)
quantities = st.integers(min_value=0, max_value=10_000)


def seats_quote(price, percent, phases):
    """A 24-month quote with one seats line (catalog 40.00), in memory (no database)."""
    plan = Plan(code="p", currency="USD", billing_interval_months=1)
    quote = Quote(plan=plan, customer=Customer(currency="USD"), term_months=24)
    charge = Charge(plan=plan, name="Seats", charge_model="standard", unit_price=D("40"))
    seats = QuoteLine(
        pk=1, quote=quote, kind="recurring", charge=charge, description="Seats",
        unit_price=price, discount_percent=percent,
    )  # fmt: skip
    return quote, [seats], {1: LineExtras([], phases)}


@settings(max_examples=200, deadline=None)
@given(
    price=prices,
    percent=percents,
    first=quantities,
    second=quantities,
    split=st.sampled_from([1, 3, 6, 12, 18, 23]),
)
def test_a_ramped_discounted_line_adds_up_whatever_its_terms(price, percent, first, second, split):
    """Whatever the price, discount and ramp: each period's fee is quantity × net price rounded
    once, the committed total is the exact sum of the period fees, the discount is list − net,
    and a discount never makes the line cost more than the same price undiscounted."""
    phases = [Phase(1, split, D(first)), Phase(split + 1, 24, D(second))]
    quote, lines, extras = seats_quote(price, percent, phases)
    totals = quote_totals(quote, lines, extras)
    figures = totals.lines[0]

    net_price = (price * (100 - percent) / 100).quantize(D("1e-12"), ROUND_HALF_UP)
    expected_first = (D(first) * net_price).quantize(D("0.01"), ROUND_HALF_UP)
    expected_last = (D(second) * net_price).quantize(D("0.01"), ROUND_HALF_UP)
    assert (figures.net_first, figures.net_last) == (expected_first, expected_last)
    assert figures.committed == split * expected_first + (24 - split) * expected_last
    assert totals.tcv == totals.recurring == figures.committed
    assert totals.discount == totals.list_total - totals.net_total

    undiscounted = quote_totals(*seats_quote(price, None, phases)).tcv
    assert totals.tcv <= undiscounted
