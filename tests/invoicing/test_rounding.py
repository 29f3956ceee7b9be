"""A usage charge with its minimum commitment is rated whole and rounded once (invoicing.builder).

7,505 units at 0.001 with a 10.00 minimum: the charge is 10.00, billed as usage 7.51 + true-up 2.49,
never 7.51 + 2.50 = 10.01. Exact figures first, then the invariants for any quantity and price.
"""

import datetime as dt
from decimal import Decimal

import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog import rating
from catalog.models import BillableMetric, Charge
from core.money import round_money
from core.periods import Period
from invoicing.builder import rate_usage, split_minimum
from invoicing.services import billing_run
from metering import selectors as usage_selectors
from metering.models import Event
from subscriptions.services import prepaid_credit_grant, subscription_create
from tests.factories import ChargeFactory, CustomerFactory, PlanFactory, TokensMetricFactory, day

D = Decimal


def tokens_subscription(*, price="0.001", minimum="10.00", credit_units=None):
    plan = PlanFactory()
    ChargeFactory(
        plan=plan,
        name="Tokens",
        metric=TokensMetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D(price),
        min_amount=D(minimum),
        default_quantity=D(0),
    )
    with time_machine.travel("2026-01-01 00:00Z", tick=False):
        sub = subscription_create(
            customer=CustomerFactory(),
            plan=plan,
            external_id="sub_min",
            start_date=day("2026-01-01"),
            term_months=1,
        )
        if credit_units is not None:
            metric = BillableMetric.objects.get(code="tokens")
            prepaid_credit_grant(subscription=sub, amount=D(credit_units), metric=metric)
    return sub


def tokens(sub, count: int) -> None:
    Event.objects.create(
        customer=sub.customer,
        subscription=sub,
        transaction_id="t1",
        code="tokens",
        timestamp=dt.datetime(2026, 1, 10, tzinfo=dt.UTC),
        properties={"tokens": count},
        received_at=dt.datetime(2026, 1, 10, tzinfo=dt.UTC),
    )


def bill_on(text):
    with time_machine.travel(f"{text} 01:00Z", tick=False):
        return billing_run().invoices


def lines_of(invoice):
    return [(line.kind, line.quantity, line.amount) for line in invoice.lines.all()]


def test_usage_under_a_minimum_is_rounded_once_7_51_plus_2_49_is_10_00(db):
    sub = tokens_subscription()
    tokens(sub, 7505)

    (invoice,) = bill_on("2026-02-01")

    assert lines_of(invoice) == [
        ("usage", D("7505"), D("7.51")),  # 7,505 × 0.001 = 7.505 → 7.51
        ("true_up", D("0"), D("2.49")),  # the charge 10.00, rounded once, − 7.51
    ]
    assert invoice.total == D("10.00")
    true_up = invoice.lines.get(kind="true_up")
    assert true_up.explanation == [
        {
            "description": "minimum commitment 10: the period's charge 10.00, rounded once, "
            "− 7.51 on the usage line",
            "subtotal": "2.49",
        }
    ]
    # and current usage shows the same 10.00 for the period
    (usage,) = usage_selectors.usage_for_period(
        subscription=sub, period=Period(day("2026-01-01"), day("2026-02-01"))
    )
    assert usage.amount == D("10.00")


def test_prepaid_units_and_a_minimum_are_rounded_once_7_51_plus_1_49_is_9_00(db):
    # 8,505 tokens, 1,000 of them prepaid: 7,505 billed (7.505); the minimum is measured on all
    # of the usage (8.505), so the top-up is 1.495 and the charge 7.505 + 1.495 = 9.00.
    sub = tokens_subscription(credit_units="1000")
    tokens(sub, 8505)

    (invoice,) = bill_on("2026-02-01")

    assert lines_of(invoice) == [("usage", D("8505"), D("7.51")), ("true_up", D("0"), D("1.49"))]
    assert invoice.total == D("9.00")  # not 7.51 + 1.50 = 9.01
    usage, true_up = invoice.lines.all()
    assert usage.explanation[0] == {"description": "1,000 units from prepaid credit, 7,505 billed"}
    assert true_up.explanation[0]["description"] == (
        "minimum commitment 10 (measured on all of the usage, prepaid units included): "
        "the period's charge 9.00, rounded once, − 7.51 on the usage line"
    )
    credit = sub.prepaid_credits.get()
    assert credit.remaining == D("0")
    assert [u.amount for u in credit.uses.all()] == [D("1000")]


def test_a_true_up_that_rounds_to_nothing_makes_no_line(db):
    # 9,996 × 0.001 = 9.996 → 9.996 + 0.004 = 10.00, and the usage line is already 10.00
    sub = tokens_subscription()
    tokens(sub, 9996)
    (invoice,) = bill_on("2026-02-01")
    assert lines_of(invoice) == [("usage", D("9996"), D("10.00"))]


# --- invariants ---------------------------------------------------------------------------------

CURRENCIES = st.sampled_from(["USD", "JPY", "KWD"])
QUANTITIES = st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False)
PRICES = st.decimals(min_value=0, max_value=1000, places=12, allow_nan=False)
MINIMUMS = st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False)


def is_rounded(amount: Decimal, currency: str) -> bool:
    return amount == round_money(amount, currency)


@settings(max_examples=300, deadline=None)
@given(quantity=QUANTITIES, price=PRICES, minimum=MINIMUMS, currency=CURRENCIES)
def test_usage_plus_true_up_is_the_rounded_charge(quantity, price, minimum, currency):
    pricing = {"model": "standard", "unit_price": str(price), "min_amount": str(minimum)}

    charge = rate_usage(pricing, quantity, D(0), currency)

    assert charge.usage_amount + charge.true_up_amount == round_money(
        max(quantity * price, minimum), currency
    )
    assert charge.usage_amount == round_money(quantity * price, currency)
    assert charge.true_up_amount >= 0
    assert is_rounded(charge.usage_amount, currency)
    assert is_rounded(charge.true_up_amount, currency)


@settings(max_examples=300, deadline=None)
@given(
    quantity=QUANTITIES,
    share=st.decimals(min_value=0, max_value=1, places=3),
    price=PRICES,
    minimum=MINIMUMS,
    currency=CURRENCIES,
)
def test_with_prepaid_units_the_minimum_is_measured_on_all_usage(
    quantity, share, price, minimum, currency
):
    prepaid = (quantity * share).quantize(D("0.000001"))
    pricing = {"model": "standard", "unit_price": str(price), "min_amount": str(minimum)}

    charge = rate_usage(pricing, quantity, prepaid, currency)

    billed = (quantity - prepaid) * price
    top_up = max(minimum - quantity * price, D(0))
    assert charge.usage_amount == round_money(billed, currency)
    assert charge.usage_amount + charge.true_up_amount == round_money(billed + top_up, currency)
    assert charge.true_up_amount >= 0
    assert is_rounded(charge.true_up_amount, currency)


@settings(max_examples=300, deadline=None)
@given(
    usage=st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False),
    true_up=st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False),
    currency=CURRENCIES,
)
def test_split_minimum_lines_sum_to_the_rounded_whole(usage, true_up, currency):
    usage_line, true_up_line = split_minimum(usage, true_up, currency)
    assert usage_line + true_up_line == round_money(usage + true_up, currency)
    assert usage_line == round_money(usage, currency)
    assert true_up_line >= 0 and is_rounded(true_up_line, currency)


def test_a_graduated_charge_with_a_cap_and_a_minimum_still_rounds_once():
    pricing = {
        "model": "graduated",
        "tiers": [{"up_to": "100", "unit_price": "0.0125"}, {"unit_price": "0.0033"}],
        "min_amount": "5.00",
    }
    # 100 × 0.0125 + 105 × 0.0033 = 1.25 + 0.3465 = 1.5965 → 1.60; charge 5.00; true-up 3.40
    charge = rate_usage(pricing, D("205"), D(0), "USD")
    assert rating.rate(pricing, D("205")).true_up == D("3.4035")
    assert (charge.usage_amount, charge.true_up_amount, charge.charge) == (
        D("1.60"),
        D("3.40"),
        D("5.00"),
    )
