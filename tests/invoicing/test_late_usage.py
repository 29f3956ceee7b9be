"""Usage that arrives after its period was invoiced is billed on the next invoice, as an
adjustment naming the original period; after the term, a last sweep bills it. Nothing is dropped."""

from decimal import Decimal

import time_machine

from catalog.models import Charge, ChargeTier
from invoicing.models import Invoice
from invoicing.services import billing_run
from metering.services import events_ingest
from subscriptions.models import Subscription
from subscriptions.services import subscription_create
from tests.factories import ChargeFactory, CustomerFactory, MetricFactory, PlanFactory, day

D = Decimal


def tiered_subscription():
    plan = PlanFactory()
    charge = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        charge_model="graduated",
        billing_timing=Charge.Timing.IN_ARREARS,
        default_quantity=D(0),
    )
    for start, up_to, price in [(0, 100, "1.00"), (100, None, "0.50")]:
        ChargeTier.objects.create(charge=charge, from_units=start, up_to=up_to, unit_price=D(price))
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_late",
        start_date=day("2026-01-01"),
        term_months=2,
    )


def send(now, first, count, on):
    with time_machine.travel(now, tick=False):
        events_ingest(
            raw_events=[
                {
                    "transaction_id": f"t{n}",
                    "external_subscription_id": "sub_late",
                    "code": "api_calls",
                    "timestamp": f"{on}T12:00:00Z",
                }
                for n in range(first, first + count)
            ]
        )


def bill(on):
    with time_machine.travel(f"{on} 01:00Z", tick=False):
        return billing_run().invoices


def lines_of(invoice):
    return [
        (line.kind, line.description, line.quantity, line.amount) for line in invoice.lines.all()
    ]


def test_late_usage_is_an_adjustment_on_the_next_invoice_priced_on_the_whole_period(db):
    tiered_subscription()
    send("2026-01-20 12:00Z", 0, 80, on="2026-01-20")
    (january,) = bill("2026-02-01")
    assert lines_of(january) == [("usage", "API calls", D("80"), D("80.00"))]

    # 40 January calls arrive on Feb 3, after January was invoiced; 10 February calls too
    send("2026-02-03 09:00Z", 80, 40, on="2026-01-31")
    send("2026-02-03 09:00Z", 120, 10, on="2026-02-02")

    (february,) = bill("2026-03-01")
    assert lines_of(february) == [
        # January is now 120 calls: 100 × 1.00 + 20 × 0.50 = 110.00, of which 80.00 was billed
        ("adjustment", "API calls: late usage for Jan 1 – Jan 31, 2026", D("40"), D("30.00")),
        ("usage", "API calls", D("10"), D("10.00")),
    ]
    assert february.lines.first().period_start == day("2026-01-01")


def test_usage_arriving_after_the_last_invoice_is_billed_by_the_closing_sweep(db):
    subscription = tiered_subscription()
    bill("2026-02-01")
    send("2026-02-20 12:00Z", 0, 5, on="2026-02-20")
    (last,) = bill("2026-03-01")
    assert lines_of(last) == [("usage", "API calls", D("5"), D("5.00"))]

    send("2026-03-10 12:00Z", 5, 3, on="2026-02-27")  # late, for February
    assert bill("2026-04-01") == []  # the sweep waits until no late usage can come (35 days)
    (sweep,) = bill("2026-04-05")
    assert lines_of(sweep) == [
        ("adjustment", "API calls: late usage for Feb 1 – Feb 28, 2026", D("3"), D("3.00"))
    ]
    assert sweep.billing_date == day("2026-04-05")  # Mar 1 + 35 days
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ENDED
    assert Invoice.objects.count() == 3


def seats_subscription(price: str):
    """Seats held over time (a time-weighted sum), billed in arrears at `price` per seat-month."""
    plan = PlanFactory()
    ChargeFactory(
        plan=plan,
        name="Seats",
        metric=MetricFactory(
            code="seats", name="Seats", aggregation="weighted_sum", field_name="seats"
        ),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D(price),
        default_quantity=D(0),
    )
    sub = subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_seats",
        start_date=day("2026-01-01"),
        term_months=2,
    )
    with time_machine.travel("2026-01-10 12:00Z", tick=False):
        # one seat from Jan 10 noon: 21.5 of January's 31 days = 0.693548387096774193…
        events_ingest(
            raw_events=[
                {
                    "transaction_id": "seat-1",
                    "external_subscription_id": "sub_seats",
                    "code": "seats",
                    "timestamp": "2026-01-10T12:00:00Z",
                    "properties": {"seats": 1},
                }
            ]
        )
    return sub


def test_a_quantity_with_more_than_six_decimals_makes_no_late_usage_line(db):
    seats_subscription("10.00")
    (january,) = bill("2026-02-01")
    # the line keeps 6 places, and that is the quantity rated: 0.693548 × 10 = 6.93548
    assert lines_of(january) == [("usage", "Seats", D("0.693548"), D("6.94"))]

    (february,) = bill("2026-03-01")  # January is checked for late usage: there is none
    assert lines_of(february) == [("usage", "Seats", D("1"), D("10.00"))]


def test_a_price_with_many_decimals_gets_no_spurious_cent(db):
    # 0.693548387096774… × 1.449069767442 = 1.0050000000000967… would round to 1.01;
    # the stored 0.693548 × 1.449069767442 = 1.0049994390698… rounds to 1.00
    seats_subscription("1.449069767442")
    (january,) = bill("2026-02-01")
    assert lines_of(january) == [("usage", "Seats", D("0.693548"), D("1.00"))]

    (february,) = bill("2026-03-01")
    assert [line.kind for line in february.lines.all()] == ["usage"]  # no 0.01 adjustment


def test_late_usage_worth_nothing_more_makes_no_line(db):
    # 100 free calls a month: 3 late calls inside the allowance cost nothing, so no line
    plan = PlanFactory()
    ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D("1.00"),
        free_units=D("100"),
        default_quantity=D(0),
    )
    subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_late",
        start_date=day("2026-01-01"),
        term_months=2,
    )
    send("2026-01-20 12:00Z", 0, 50, on="2026-01-20")
    (january,) = bill("2026-02-01")
    assert lines_of(january) == [("usage", "API calls", D("50"), D("0.00"))]

    send("2026-02-03 09:00Z", 50, 3, on="2026-01-31")
    (february,) = bill("2026-03-01")
    assert lines_of(february) == [("usage", "API calls", D("0"), D("0.00"))]
