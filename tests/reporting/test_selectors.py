"""Each figure of reporting.selectors, computed by hand on a small book of business."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from catalog.models import Charge
from invoicing.models import Invoice
from invoicing.services import invoice_create, subscription_bill
from metering.services import events_ingest
from quotes.models import Quote
from quotes.services import quote_accept, quote_populate_lines
from receivables.services import payment_record
from reporting import selectors
from subscriptions.models import BillingPeriod, Subscription
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    PlanFactory,
    QuoteFactory,
    TokensMetricFactory,
    UserFactory,
    day,
    hybrid_plan,
    subscribe,
)

AS_OF = day("2026-03-20")
BACKFILL = dt.timedelta(days=400)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel("2026-03-20 12:00Z", tick=False):
        yield


def yearly_plan(fee: str, currency="USD"):
    plan = PlanFactory(billing_interval_months=12, currency=currency)
    ChargeFactory(plan=plan, name="Annual licence", unit_price=Decimal(fee))
    return plan


def sub(external_id, *, plan, start, term=12, customer=None):
    return subscribe(
        customer=customer or CustomerFactory(currency=plan.currency),
        plan=plan,
        external_id=external_id,
        start=start,
        term_months=term,
    )


@pytest.fixture
def book(db):
    """USD: A $625/month since Jan 15, B $1,200/year since Feb 1 ($100 a month), C $300/month
    ending Mar 10 (churn), D $1,250/month from Mar 5 (new), X canceled; EUR: E €625/month."""
    sub("A", plan=hybrid_plan(platform_fee="500.00", seat_price="25.00"), start="2026-01-15")
    sub("B", plan=yearly_plan("1200.00"), start="2026-02-01")
    sub(
        "C", plan=hybrid_plan(platform_fee="200.00", seat_price="20.00"), start="2025-12-10", term=3
    )
    sub("D", plan=hybrid_plan(platform_fee="1000.00", seat_price="50.00"), start="2026-03-05")
    canceled = sub("X", plan=hybrid_plan(platform_fee="999.00"), start="2026-01-01")
    Subscription.objects.filter(pk=canceled.pk).update(status=Subscription.Status.CANCELED)
    sub("E", plan=hybrid_plan(platform_fee="500.00", currency="EUR"), start="2026-01-01")


def test_mrr_is_the_monthly_fixed_fees_of_subscriptions_counted_that_day(book):
    revenue = selectors.recurring_revenue()

    # A 625 + B 1,200 / 12 + D 1,250 (C ended Mar 10, X canceled); usage is not in MRR.
    assert revenue.mrr == {"EUR": Decimal("625.00"), "USD": Decimal("1975.00")}
    assert revenue.arr == {"EUR": Decimal("7500.00"), "USD": Decimal("23700.00")}
    assert revenue.subscriptions == 4


def test_a_quarterly_fee_is_a_third_a_month_and_arr_gives_it_back_whole(db):
    plan = PlanFactory(billing_interval_months=3)
    ChargeFactory(plan=plan, unit_price=Decimal("100.00"))
    sub("Q", plan=plan, start="2026-01-01")

    revenue = selectors.recurring_revenue()

    assert revenue.mrr["USD"].quantize(Decimal("0.0001")) == Decimal("33.3333")
    assert revenue.arr["USD"].quantize(Decimal("0.0001")) == Decimal("400.0000")


def test_mrr_on_an_earlier_date_counts_what_was_in_force_then(book):
    # Jan 20: A, C (since Dec 10) and E; B and D had not started.
    assert selectors.recurring_revenue(day("2026-01-20")).mrr == {
        "EUR": Decimal("625.00"),
        "USD": Decimal("925.00"),
    }


def test_movements_bridge_the_month_start_to_now(book):
    moves = selectors.mrr_movements()

    assert moves.month_start == day("2026-03-01")
    assert moves.start["USD"] == Decimal("1025.00")  # A 625 + B 100 + C 300
    assert moves.new["USD"] == Decimal("1250.00")  # D
    assert moves.churn["USD"] == Decimal("300.00")  # C
    assert moves.expansion == {} and moves.contraction == {}
    assert (moves.new_count, moves.churn_count) == (1, 1)
    for currency in ("USD", "EUR"):
        assert moves.end[currency] == (
            moves.start.get(currency, 0)
            + moves.new.get(currency, 0)
            + moves.expansion.get(currency, 0)
            - moves.contraction.get(currency, 0)
            - moves.churn.get(currency, 0)
        )
    assert moves.end == selectors.recurring_revenue().mrr


def test_a_changed_quantity_is_expansion_or_contraction(book):
    a = Subscription.objects.get(external_id="A").items.get(name="Seats")
    a.quantity = Decimal(9)  # 4 more seats at $25 = +100 (items are read as they are now)
    a.save()
    snapshot = selectors.mrr_snapshot
    before = snapshot(day("2026-03-01"))
    a_start = before[a.subscription_id].mrr

    assert a_start == Decimal("725.00")  # with items as they are now: no change inside the month
    assert selectors.mrr_movements().expansion == {}


def test_net_revenue_retention_is_now_over_a_year_ago_for_the_same_customers(db):
    p, q = CustomerFactory(), CustomerFactory()
    sub("P1", plan=hybrid_plan(platform_fee="500.00"), start="2025-01-01", term=24, customer=p)
    sub("Q1", plan=hybrid_plan(platform_fee="250.00"), start="2025-02-01", term=12, customer=q)
    sub("P2", plan=yearly_plan("1200.00"), start="2026-01-01", customer=p)  # expansion
    sub("R1", plan=hybrid_plan(platform_fee="900.00"), start="2026-01-01")  # not in the base

    retention = selectors.net_retention()

    assert retention.base_date == day("2025-03-20")
    assert retention.base == {"USD": Decimal("1000.00")}  # P 625 + Q 375
    assert retention.current == {"USD": Decimal("725.00")}  # P 625 + 100; Q churned
    assert retention.ratio == {"USD": Decimal("0.725")}
    assert retention.customers == 2


def test_net_revenue_retention_without_a_base_is_none(book):
    # No customer billed a year ago (Mar 20, 2025): nothing to retain, no ratio.
    retention = selectors.net_retention()
    assert retention.base == {} and retention.customers == 0
    assert retention.ratio.get("USD") is None


@pytest.fixture
def billed(db):
    """A monthly $625 subscription from Feb 10 with $1.50 calls: 4 calls in February, so the
    Feb 10 invoice is $625.00 and the Mar 10 one $625.00 + $6.00. $200 paid on the first."""
    customer = CustomerFactory()
    subscription = sub(
        "M",
        plan=hybrid_plan(platform_fee="500.00", call_price="1.50"),
        start="2026-02-10",
        customer=customer,
    )
    with time_machine.travel("2026-02-10 01:00Z", tick=False):
        (first,) = subscription_bill(subscription=subscription, today=day("2026-02-10"))
    with time_machine.travel("2026-02-20 12:00Z", tick=False):
        events_ingest(
            raw_events=[
                {
                    "transaction_id": f"c{n}",
                    "external_subscription_id": "M",
                    "code": "api_calls",
                    "timestamp": "2026-02-20T10:00:00Z",
                    "properties": {},
                }
                for n in range(4)
            ]
        )
    with time_machine.travel("2026-03-10 01:00Z", tick=False):
        (second,) = subscription_bill(subscription=subscription, today=day("2026-03-10"))
    payment_record(
        customer=customer,
        amount=Decimal("200.00"),
        currency="USD",
        received_on=AS_OF,
        allocations={first: Decimal("200.00")},
    )
    # A draft for another subscription: awaiting review, not billed, not owed.
    other = sub("N", plan=hybrid_plan(platform_fee="100.00"), start="2026-03-15")
    period = BillingPeriod.objects.get(subscription=other, sequence=0)
    invoice_create(
        subscription=other, billing_date=period.billed_from, advance=period, arrears=None
    )
    return first, second


def test_billings_are_issued_invoice_totals_by_calendar_month(billed):
    first, second = billed
    assert (first.total, second.total) == (Decimal("625.00"), Decimal("631.00"))

    figures = selectors.billings()

    assert figures.this_month_total == {"USD": Decimal("631.00")}
    assert figures.last_month_total == {"USD": Decimal("625.00")}
    assert (figures.this_month_count, figures.last_month_count) == (1, 1)


def test_outstanding_and_overdue_net_of_a_partial_payment(billed):
    figures = selectors.receivables()

    # Feb 10 invoice: 625 − 200 = 425, due Mar 12 (overdue); Mar 10: 631, due Apr 9.
    assert figures.outstanding == {"USD": Decimal("1056.00")}
    assert figures.overdue == {"USD": Decimal("425.00")}
    assert (figures.outstanding_count, figures.overdue_count) == (2, 1)
    assert figures.awaiting_review == 1
    assert Invoice.objects.filter(status=Invoice.Status.DRAFT).count() == 1


def test_usage_revenue_per_metric_and_the_daily_trend(billed):
    usage = selectors.usage_revenue()

    assert [(m.metric_code, m.currency, m.amount) for m in usage.by_metric] == [
        ("api_calls", "USD", Decimal("6.00"))
    ]
    assert usage.total == {"USD": Decimal("6.00")}
    (calls,) = usage.trend
    assert calls.metric_code == "api_calls"
    assert calls.days[0] == day("2026-02-19") and calls.days[-1] == AS_OF
    assert dict(zip(calls.days, calls.quantities, strict=True))[day("2026-02-20")] == 4
    assert sum(calls.quantities) == 4


def test_forecast_is_fixed_fees_by_period_plus_the_90_day_usage_trend(db):
    tokens = TokensMetricFactory()
    plan = hybrid_plan(platform_fee="500.00", seat_price="25.00", call_price="0.10")
    ChargeFactory(
        plan=plan,
        name="Tokens",
        metric=tokens,
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0.001"),
        default_quantity=Decimal(0),
    )
    sub("F", plan=plan, start="2026-01-01")
    # 90,000 tokens in the 90 days before Mar 20 (1,000 a day); no calls.
    events_ingest(
        raw_events=[
            {
                "transaction_id": f"t{n}",
                "external_subscription_id": "F",
                "code": "tokens",
                "timestamp": stamp,
                "properties": {"tokens": 30000},
            }
            for n, stamp in enumerate(
                ["2026-01-05T00:00:00Z", "2026-02-05T00:00:00Z", "2026-03-05T00:00:00Z"]
            )
        ],
        max_lateness=BACKFILL,
    )

    outlook = selectors.forecast()

    assert [m.month.start for m in outlook.months] == [
        day("2026-04-01"),
        day("2026-05-01"),
        day("2026-06-01"),
    ]
    assert [m.fixed["USD"] for m in outlook.months] == [Decimal("625.00")] * 3
    # 1,000 tokens a day × 30, 31, 30 days × $0.001
    assert [m.usage["USD"] for m in outlook.months] == [
        Decimal("30.00"),
        Decimal("31.00"),
        Decimal("30.00"),
    ]
    assert [m.total["USD"] for m in outlook.months] == [
        Decimal("655.00"),
        Decimal("656.00"),
        Decimal("655.00"),
    ]


def test_forecast_stops_at_the_end_of_the_term(db):
    sub("G", plan=hybrid_plan(platform_fee="500.00"), start="2026-02-15", term=3)  # ends May 15

    outlook = selectors.forecast()

    # billed Apr 15; nothing starts after the term (usage: no events, nothing)
    assert [m.total.get("USD") for m in outlook.months] == [
        Decimal("625.00"),
        Decimal("0.00"),
        None,
    ]


@pytest.fixture
def pipeline(db):
    rep, other_rep = UserFactory(username="rep"), UserFactory(username="other")
    plan = hybrid_plan(platform_fee="500.00", seat_price="25.00")
    mine = CustomerFactory()
    expiring = dict(start_date=day("2026-04-01"), valid_until=day("2026-03-25"))
    QuoteFactory(customer=mine, plan=plan, owner=rep, **expiring)
    QuoteFactory(customer=mine, plan=plan, owner=rep, status=Quote.Status.SENT, **expiring)
    QuoteFactory(plan=plan, valid_until=day("2026-04-30"))  # draft, not this week
    QuoteFactory(plan=plan, status=Quote.Status.DECLINED, valid_until=day("2026-03-21"))
    accepted = QuoteFactory(
        customer=mine, plan=plan, owner=rep, start_date=day("2026-04-01"), valid_until=AS_OF
    )
    quote_populate_lines(quote=accepted)
    quote_accept(quote=accepted)
    # Renewals: mine ends Apr 15 (in 90 days); someone else's ends Apr 1; one ends in July.
    sub("mine-renewing", plan=plan, start="2026-01-15", term=3, customer=mine)
    theirs = CustomerFactory()
    QuoteFactory(customer=theirs, plan=plan, owner=other_rep, valid_until=day("2026-01-01"))
    sub("theirs-renewing", plan=plan, start="2026-01-01", term=3, customer=theirs)
    sub("mine-later", plan=plan, start="2026-01-15", term=6, customer=mine)
    return rep


def test_sales_figures(pipeline):
    figures = selectors.sales_figures(owner=pipeline)

    assert {q.status: q.count for q in figures.quotes_by_status} == {
        "draft": 3,
        "in_review": 0,
        "approved": 0,
        "sent": 1,
        "accepted": 1,
        "declined": 1,
        "expired": 0,
        "superseded": 0,
    }
    assert [(q.status, q.valid_until) for q in figures.expiring] == [
        ("draft", day("2026-03-25")),
        ("sent", day("2026-03-25")),
    ]
    assert figures.signed_arr == {"USD": Decimal("7500.00")}  # 12 × (500 + 5 × 25)
    assert figures.signed_count == 1
    assert [(r.external_id, r.end_date, r.arr) for r in figures.renewals] == [
        ("mine-renewing", day("2026-04-15"), Decimal("7500.00"))
    ]
    assert figures.renewals_mine


def test_renewals_for_everyone_without_an_owner(pipeline):
    figures = selectors.sales_figures()

    assert [r.external_id for r in figures.renewals] == ["theirs-renewing", "mine-renewing"]


def test_a_seat_change_is_expansion_and_a_cancellation_is_churn_on_their_dates(db):
    from subscriptions.changes import subscription_cancel, subscription_set_quantity
    from tests.invoicing.test_proration import basic_plan, item, subscribe

    growing = subscribe(basic_plan(), external_id="sub_growing")
    leaving = subscribe(basic_plan(), external_id="sub_leaving")
    subscription_set_quantity(
        subscription=growing,
        item=item(growing, "Seats", "2026-03-16"),
        quantity=Decimal("20"),
        effective_date=day("2026-03-16"),
        today=day("2026-03-10"),
    )
    subscription_cancel(
        subscription=leaving,
        reason="Budget cut",
        effective_date=day("2026-03-12"),
        today=day("2026-03-10"),
    )

    before, after = (selectors.mrr_movements(day(d)) for d in ("2026-03-11", "2026-03-20"))

    # Mar 11: both at 500 + 12 × 30 = 860. Mar 20: 8 more seats (+240), Leaving gone (−860).
    assert before.start == before.end == {"USD": Decimal("1720")}
    assert after.expansion == {"USD": Decimal("240")}
    assert after.churn == {"USD": Decimal("860")} and after.churn_count == 1
    assert after.end == {"USD": Decimal("1100")}
