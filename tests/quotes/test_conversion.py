"""An accepted quote becomes the contract: the subscription snapshots net prices, negotiated
tiers, discounts, ramp phases, one-time fees, commitments and credits, and bills exactly what
was quoted."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from catalog.models import Charge, ChargeTier
from invoicing.models import Invoice
from invoicing.services import billing_run
from metering.models import Event
from quotes.models import QuoteLine
from quotes.services import quote_accept, quote_submit
from quotes.totals import quote_totals
from subscriptions.models import PrepaidCredit
from tests.quotes.deal import northwind_deal, scale_plan

pytestmark = pytest.mark.django_db
TODAY = "2026-12-01 09:00Z"


def accepted(quote):
    with time_machine.travel(TODAY, tick=False):
        return quote_accept(quote=quote_submit(quote=quote), name="Ada Park", title="CFO")


def test_the_subscription_snapshots_the_negotiated_terms():
    quote = accepted(northwind_deal())
    subscription = quote.subscription
    assert (subscription.billing_interval_months, subscription.term_months) == (1, 24)
    assert (quote.accepted_by_name, quote.accepted_by_title) == ("Ada Park", "CFO")

    items = {item.name: item for item in subscription.items.all()}
    assert list(items) == ["Platform fee", "Seats", "API calls", "Implementation"]
    seats = items["Seats"]
    assert (D(seats.list_pricing["unit_price"]), seats.discount_percent) == (D("40"), D("10"))
    assert [
        (p["start"], p["end"], D(p["quantity"]), p["pricing"]["unit_price"]) for p in seats.phases
    ] == [
        ("2027-01-01", "2028-01-01", D("100"), "36"),
        ("2028-01-01", "2029-01-01", D("150"), "34.2"),
    ]
    calls = items["API calls"].pricing
    assert (calls["model"], calls["min_amount"]) == ("graduated", "3000")
    assert [(t["up_to"], t["unit_price"]) for t in calls["tiers"]] == [
        ("2000000", "0.0018"),
        (None, "0.0009"),
    ]
    implementation = items["Implementation"]
    assert (implementation.billing_timing, implementation.pricing["unit_price"]) == (
        "one_time",
        "9000",
    )

    # The schedule follows the ramp: month 1 bills the implementation too (1,000 + 3,600 +
    # 9,000); months 2–12 4,600.00; months 13–24 1,000 + 5,130 = 6,130.00. In all 137,760.00:
    # the quote's TCV (209,760.00) without the usage commitments (24 × 3,000.00).
    advance = [p.advance_amount for p in subscription.billing_periods.order_by("sequence")]
    assert advance == [D("13600")] + [D("4600")] * 11 + [D("6130")] * 12
    totals = quote_totals(quote)
    assert sum(advance) == totals.tcv - totals.commitments == D("137760")


def test_prepaid_credits_are_granted_and_billed_once():
    quote = northwind_deal()
    QuoteLine.objects.create(
        quote=quote, kind="credit", description="Usage credits", quantity=D(1),
        unit_price=D("10000"), discount_percent=D(10), position=4,
    )  # fmt: skip
    subscription = accepted(quote).subscription
    credit = PrepaidCredit.objects.get(subscription=subscription)
    # 10,000.00 of credit, paid 9,000.00 on the first invoice with the implementation
    assert (credit.granted, credit.remaining, credit.metric) == (D("10000"), D("10000"), None)
    first = subscription.billing_periods.get(sequence=0)
    assert first.advance_amount == D("13600") + D("9000")


def test_catalog_changes_after_acceptance_change_nothing():
    quote = accepted(northwind_deal())
    before = [(i.name, i.pricing, i.phases) for i in quote.subscription.items.all()]
    Charge.objects.filter(plan=quote.plan).update(unit_price=D("999"))
    ChargeTier.objects.update(unit_price=D("1"))
    after = [(i.name, i.pricing, i.phases) for i in quote.subscription.items.all()]
    assert after == before


def send_calls(subscription, month: dt.date, calls: int) -> None:
    """A month's calls, in two events on its 10th (the metric sums each event's `calls`)."""
    at = dt.datetime.combine(month.replace(day=10), dt.time(12), tzinfo=dt.UTC)
    half = calls // 2
    Event.objects.bulk_create(
        Event(
            customer=subscription.customer,
            subscription=subscription,
            transaction_id=f"{month:%Y-%m}-{n}",
            code="api_call_batches",
            properties={"calls": amount},
            timestamp=at,
            received_at=at,
        )
        for n, amount in enumerate([half, calls - half])
    )


# Calls per month of 2027, and what each month's usage comes to under the negotiated tiers
# (2,000,000 at 0.0018 = 3,600.00, then 0.0009) and the 3,000.00 monthly minimum:
USAGE = [
    (3_000_000, D("4500.00"), D("0")),  # 3,600 + 1,000,000 × 0.0009
    (1_000_000, D("1800.00"), D("1200.00")),  # under the minimum: a 1,200.00 true-up
    (2_500_000, D("4050.00"), D("0")),  # 3,600 + 450
    (2_000_000, D("3600.00"), D("0")),
    (0, D("0.00"), D("3000.00")),  # nothing used: the whole minimum
    (4_000_000, D("5400.00"), D("0")),  # 3,600 + 1,800
    (3_000_000, D("4500.00"), D("0")),
    (1_666_667, D("3000.00"), D("0")),  # 3,000.0006 rounds to 3,000.00: no true-up
    (5_000_000, D("6300.00"), D("0")),
    (3_000_000, D("4500.00"), D("0")),
    (2_222_222, D("3800.00"), D("0")),  # 3,600 + 222,222 × 0.0009 = 3,799.9998
    (3_000_000, D("4500.00"), D("0")),
]


def test_a_year_of_the_deal_bills_exactly_what_was_quoted():
    quote = northwind_deal(plan=scale_plan(calls_counted=False))
    subscription = accepted(quote).subscription
    totals = quote_totals(quote)
    figures = {f.line.name: f for f in totals.lines}
    months = [dt.date(2027, m, 1) for m in range(1, 13)] + [dt.date(2028, 1, 1)]

    for number, month in enumerate(months):
        with time_machine.travel(dt.datetime.combine(month, dt.time(1), tzinfo=dt.UTC), tick=False):
            billing_run()
        if number < 12:
            send_calls(subscription, month, USAGE[number][0])

    invoices = list(Invoice.objects.filter(subscription=subscription).order_by("billing_date"))
    assert [i.billing_date for i in invoices] == months
    for number, invoice in enumerate(invoices):
        lines = {(line.kind, line.description): line.amount for line in invoice.lines.all()}
        fees = {d: a for (k, d), a in lines.items() if k in ("fee", "one_time")}
        # In advance: the quote's net fees of the month starting (month 13: the ramp's second
        # phase), and the implementation once, on the first invoice
        seats = figures["Seats"].net_first if number < 12 else figures["Seats"].net_last
        expected_fees = {"Platform fee": figures["Platform fee"].net_first, "Seats": seats}
        if number == 0:
            expected_fees["Implementation (one-time fee)"] = figures["Implementation"].committed
        assert fees == expected_fees, invoice.billing_date
        # In arrears: the month before's usage at the negotiated tiers, topped up to the
        # quote's minimum commitment
        usage = {d: a for (k, d), a in lines.items() if k in ("usage", "true_up")}
        if number == 0:
            assert usage == {}
            continue
        _calls, amount, true_up = USAGE[number - 1]
        assert usage.get("API calls") == amount, invoice.billing_date
        assert usage.get("API calls: minimum commitment true-up", D(0)) == true_up
        assert amount + true_up >= figures["API calls"].committed / totals.periods
        assert invoice.total == sum(fees.values()) + amount + true_up

    # Over the first year the fixed fees billed are the quote's first-year total without its
    # usage commitments: 12 × 4,600.00 + 9,000.00 = 64,200.00
    billed_fees = sum(
        line.amount
        for invoice in invoices[:12]
        for line in invoice.lines.all()
        if line.kind in ("fee", "one_time")
    )
    assert billed_fees == totals.first_year - 12 * D("3000") == D("64200.00")


def test_billed_quarterly_the_schedule_has_eight_periods_of_three_months():
    # Seats 3 × 3,600 = 10,800 a quarter in year 1, 3 × 5,130 = 15,390 in year 2; the platform
    # fee 3 × 1,000; the implementation once: 3,000 + 10,800 + 9,000 = 22,800.00 first.
    quote = accepted(northwind_deal(billing_interval_months=3))
    subscription = quote.subscription
    assert subscription.billing_interval_months == 3
    advance = [p.advance_amount for p in subscription.billing_periods.order_by("sequence")]
    assert advance == [D("22800")] + [D("13800")] * 3 + [D("18390")] * 4
    calls = subscription.items.get(name="API calls").pricing
    assert calls["min_amount"] == "9000"  # 3,000 a month, per quarter


def test_the_quotes_payment_terms_set_the_invoices_due_dates():
    quote = accepted(northwind_deal(payment_terms_days=45))  # the customer's are 30
    assert quote.subscription.payment_terms_days == 45
    with time_machine.travel("2027-01-01 01:00Z", tick=False):
        billing_run()
    invoice = Invoice.objects.get(subscription=quote.subscription)
    assert (invoice.issue_date, invoice.due_date) == (dt.date(2027, 1, 1), dt.date(2027, 2, 15))
