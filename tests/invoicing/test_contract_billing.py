"""Invoices bill exactly what the contract (the accepted quote) says: net prices with the list
price and discount in words, a ramp's phases, one-time fees once, a negotiated minimum."""

import datetime as dt
from decimal import Decimal

import time_machine
from django.conf import settings

from catalog.models import Charge, ChargeTier
from catalog.pricing_display import explanation_lines
from invoicing.models import Invoice
from invoicing.services import billing_run
from subscriptions.services import ItemSpec, PhaseSpec, subscription_create
from tests.factories import ChargeFactory, CustomerFactory, MetricFactory, PlanFactory, day
from tests.invoicing.test_billing import calls, lines_of


def bill(on: str) -> list[Invoice]:
    with time_machine.travel(f"{on} 01:00Z", tick=False):
        result = billing_run()
    assert result.failed == {}
    return result.invoices


def standard(price: str) -> dict:
    return {"model": "standard", "unit_price": price}


IMPLEMENTATION = ItemSpec(
    charge=None,
    quantity=Decimal("1"),
    name="Implementation",
    pricing={"model": "flat", "unit_price": "5000"},
    one_time=True,
)


def test_a_one_time_fee_is_billed_once_on_the_first_invoice_with_the_discount_in_words(db):
    # Given 10 seats at $40.00 list, 10% off: $36.00 net, and a $5,000 implementation fee
    plan = PlanFactory()
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=Decimal("40"), unit_name="seat")
    subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_acme",
        start_date=day("2026-01-01"),
        term_months=3,
        items=[
            ItemSpec(
                charge=seats,
                quantity=Decimal("10"),
                pricing=standard("36.00"),
                discount_percent=Decimal("10"),
            ),
            IMPLEMENTATION,
        ],
    )

    first, second, third = bill("2026-01-01"), bill("2026-02-01"), bill("2026-03-01")

    # Then Jan 1: 10 × 36.00 = 360.00 + 5,000.00 = 5,360.00; Feb 1 and Mar 1: 360.00
    assert lines_of(first[0]) == [
        ("fee", "Seats", Decimal("10"), Decimal("360.00")),
        ("fee", "Implementation (one-time fee)", Decimal("1"), Decimal("5000.00")),
    ]
    assert [i.total for i in first + second + third] == [
        Decimal("5360.00"),
        Decimal("360.00"),
        Decimal("360.00"),
    ]
    assert [lines_of(i) for i in second + third] == [
        [("fee", "Seats", Decimal("10"), Decimal("360.00"))]
    ] * 2
    seats_line = first[0].lines.first()
    assert seats_line.unit_price == Decimal("36.00")
    assert explanation_lines(seats_line.explanation, "USD") == [
        "list price $40.00 per seat, 10% discount: $36.00",
        "10 × $36.00 = $360.00",
    ]


def test_a_usage_only_plan_bills_its_one_time_fee_on_the_start_date(db):
    plan = PlanFactory()
    api_calls = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0.01"),
        unit_name="call",
        default_quantity=Decimal("0"),
    )
    subscription = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_usage",
        start_date=day("2026-01-01"),
        term_months=2,
        items=[ItemSpec(charge=api_calls, quantity=Decimal("0")), IMPLEMENTATION],
    )
    calls(subscription, 300, "2026-01-20")
    calls(subscription, 50, "2026-02-10")

    on_start, feb, mar = bill("2026-01-01"), bill("2026-02-01"), bill("2026-03-01")

    # Then Jan 1 bills the fee alone; Feb 1: 300 × 0.01 = 3.00; Mar 1: 50 × 0.01 = 0.50
    assert subscription.billing_periods.first().advance_amount == Decimal("5000.00")
    assert [lines_of(i) for i in on_start + feb + mar] == [
        [("fee", "Implementation (one-time fee)", Decimal("1"), Decimal("5000.00"))],
        [("usage", "API calls", Decimal("300"), Decimal("3.00"))],
        [("usage", "API calls", Decimal("50"), Decimal("0.50"))],
    ]


def test_a_year_of_invoices_follows_the_ramp_discount_one_time_fee_and_minimum(db):
    # Given a contract from Jan 1, 2026 for 12 months:
    # - Platform fee $500.00 a month (catalog price);
    # - Seats at $40.00 list, 10% off = $36.00 net: 100 seats for Jan–Jun, 150 from Jul 1;
    # - Implementation, $5,000.00 once;
    # - API calls, graduated, list 0–1,000 at $0.10 and above at $0.05; negotiated (net)
    #   0–1,000 at $0.08 and above at $0.04, with a $100.00 minimum a month.
    plan = PlanFactory()
    platform = ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal("500"))
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=Decimal("40"), unit_name="seat")
    api_calls = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        charge_model=Charge.Model.GRADUATED,
        unit_name="call",
        default_quantity=Decimal("0"),
    )
    ChargeTier.objects.create(charge=api_calls, up_to=Decimal("1000"), unit_price=Decimal("0.1"))
    ChargeTier.objects.create(
        charge=api_calls, from_units=Decimal("1000"), unit_price=Decimal("0.05")
    )
    net_calls = {
        "model": "graduated",
        "tiers": [
            {"from": "0", "up_to": "1000", "unit_price": "0.08", "flat_fee": "0"},
            {"from": "1000", "up_to": None, "unit_price": "0.04", "flat_fee": "0"},
        ],
        "min_amount": "100",
    }
    subscription = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_ramp",
        start_date=day("2026-01-01"),
        term_months=12,
        items=[
            ItemSpec(charge=platform, quantity=Decimal("1")),
            ItemSpec(
                charge=seats,
                quantity=Decimal("100"),
                pricing=standard("36.00"),
                discount_percent=Decimal("10"),
                phases=[
                    PhaseSpec(day("2026-01-01"), day("2026-07-01"), Decimal("100"), standard("36")),
                    PhaseSpec(day("2026-07-01"), day("2027-01-01"), Decimal("150"), standard("36")),
                ],
            ),
            IMPLEMENTATION,
            ItemSpec(charge=api_calls, quantity=Decimal("0"), pricing=net_calls),
        ],
    )
    usage = [500, 1500, 2500, 800, 1000, 1001, 3000, 0, 1250, 2000, 100, 2200]

    # When the customer's systems send each month's calls and billing runs on each date
    invoices = []
    for month, count in enumerate(usage):
        start = dt.date(2026, 1 + month, 1)
        invoices += bill(start.isoformat())
        calls(subscription, count, start.replace(day=15).isoformat())
    invoices += bill("2027-01-01")
    last_sweep = day("2027-01-01") + dt.timedelta(days=settings.EVENT_LATENESS_DAYS)
    assert bill(last_sweep.isoformat()) == []

    # Then, by hand. Usage (net tiers, $100.00 minimum):
    #   500 → 40.00 + 60.00 true-up; 1,500 → 80 + 500 × 0.04 = 100.00; 2,500 → 80 + 60 = 140.00;
    #   800 → 64.00 + 36.00; 1,000 → 80.00 + 20.00; 1,001 → 80.04 + 19.96; 3,000 → 160.00;
    #   0 → 0.00 + 100.00; 1,250 → 90.00 + 10.00; 2,000 → 120.00; 100 → 8.00 + 92.00;
    #   2,200 → 128.00.
    # In advance: Jan–Jun 500 + 100 × 36 = 4,100.00; Jul–Dec 500 + 150 × 36 = 5,900.00;
    # Jan 1 adds the 5,000.00 implementation fee.
    assert [(i.billing_date, i.total) for i in invoices] == [
        (day("2026-01-01"), Decimal("9100.00")),  # 4,100 + 5,000
        (day("2026-02-01"), Decimal("4200.00")),  # 100 + 4,100
        (day("2026-03-01"), Decimal("4200.00")),  # 100 + 4,100
        (day("2026-04-01"), Decimal("4240.00")),  # 140 + 4,100
        (day("2026-05-01"), Decimal("4200.00")),  # 100 + 4,100
        (day("2026-06-01"), Decimal("4200.00")),  # 100 + 4,100
        (day("2026-07-01"), Decimal("6000.00")),  # 100 + 5,900 (the ramp's second phase)
        (day("2026-08-01"), Decimal("6060.00")),  # 160 + 5,900
        (day("2026-09-01"), Decimal("6000.00")),  # 100 + 5,900
        (day("2026-10-01"), Decimal("6000.00")),  # 100 + 5,900
        (day("2026-11-01"), Decimal("6020.00")),  # 120 + 5,900
        (day("2026-12-01"), Decimal("6000.00")),  # 100 + 5,900
        (day("2027-01-01"), Decimal("128.00")),  # December's usage only
    ]
    # the year: 6 × 4,100 + 6 × 5,900 + 5,000 + usage (8 × 100 + 140 + 160 + 120 + 128 = 1,348)
    assert sum(i.total for i in invoices) == (
        6 * Decimal("4100") + 6 * Decimal("5900") + Decimal("5000") + Decimal("1348")
    )
    assert lines_of(invoices[1]) == [
        ("usage", "API calls", Decimal("500"), Decimal("40.00")),
        ("true_up", "API calls: minimum commitment true-up", Decimal("0"), Decimal("60.00")),
        ("fee", "Platform fee", Decimal("1"), Decimal("500.00")),
        ("fee", "Seats", Decimal("100"), Decimal("3600.00")),
    ]
    assert lines_of(invoices[6])[-1] == ("fee", "Seats", Decimal("150"), Decimal("5400.00"))
    july_seats = invoices[6].lines.get(description="Seats")
    assert explanation_lines(july_seats.explanation, "USD") == [
        "list price $40.00 per seat, 10% discount: $36.00",
        "150 × $36.00 = $5,400.00",
    ]
    # the usage line says the calls were priced at negotiated tiers, beside the list tiers
    usage_line = invoices[3].lines.get(kind="usage")
    assert explanation_lines(usage_line.explanation, "USD") == [
        "list price Graduated · 0 – 1,000: $0.10 · above 1,000: $0.05; contract price "
        "Graduated · 0 – 1,000: $0.08 · above 1,000: $0.04 · minimum $100.00 per period",
        "tier 1–1,000: 1,000 × $0.08 = $80.00",
        "tier 1,001+: 1,500 × $0.04 = $60.00",
    ]
    assert Invoice.objects.filter(subscription=subscription).count() == 13
