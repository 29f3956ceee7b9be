"""The upcoming invoice (invoicing.selectors.upcoming_invoice): the billing run's own invoice of
the next billing date, built now and saved nowhere."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Charge, ChargeTier
from invoicing.models import CreditUse, Invoice, InvoiceLine, NumberSeries
from invoicing.selectors import upcoming_invoice
from invoicing.services import billing_run
from metering.models import Event
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription
from subscriptions.services import prepaid_credit_grant
from tests.factories import ChargeFactory, CustomerFactory, MetricFactory, PlanFactory, subscribe

D = Decimal


def preview_plan():
    """500.00 platform fee in advance, 80.00 support in arrears, graduated API calls
    (0–100 at 1.00, 100–500 at 0.80, above at 0.50) with a 600.00 minimum per period."""
    plan = PlanFactory()
    ChargeFactory(plan=plan, name="Platform fee", unit_price=D("500"), position=0)
    ChargeFactory(
        plan=plan,
        name="Support",
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D("80"),
        position=1,
    )
    calls = ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        charge_model="graduated",
        billing_timing=Charge.Timing.IN_ARREARS,
        default_quantity=D(0),
        min_amount=D("600"),
        position=2,
    )
    for start, up_to, price in [(0, 100, "1.00"), (100, 500, "0.80"), (500, None, "0.50")]:
        ChargeTier.objects.create(charge=calls, from_units=start, up_to=up_to, unit_price=D(price))
    return plan


def calls(subscription, count: int, at: str) -> None:
    stamp = dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC)
    Event.objects.bulk_create(
        Event(
            customer=subscription.customer,
            subscription=subscription,
            transaction_id=f"{at}-{n}",
            code="api_calls",
            timestamp=stamp,
            received_at=stamp,
        )
        for n in range(count)
    )


def bill_on(on: str) -> list[Invoice]:
    with time_machine.travel(f"{on} 01:00Z", tick=False):
        return billing_run().invoices


def lines(lines) -> list[tuple]:
    return [(line.kind, line.description, line.quantity, line.amount) for line in lines]


@pytest.fixture
def subscription(db) -> Subscription:
    """Acme (8.25 % tax) from Jan 1, 2026 for 3 months, with 50.00 of prepaid credit; January's
    invoice (the platform fee in advance) is made, and 400 calls are used in January."""
    customer = CustomerFactory(external_id="acme", tax_rate=D("8.25"))
    with time_machine.travel("2026-01-01 00:00Z", tick=False):
        subscription = subscribe(customer=customer, plan=preview_plan(), start="2026-01-01")
        prepaid_credit_grant(subscription=subscription, amount=D("50.00"))
    bill_on("2026-01-01")
    calls(subscription, 400, "2026-01-10T12:00:00")
    return subscription


FEBRUARY_1 = [
    ("usage", "API calls", D("400"), D("340.00")),  # 100 × 1.00 + 300 × 0.80
    ("true_up", "API calls: minimum commitment true-up", D("0"), D("260.00")),  # 600 − 340
    ("credit", "Prepaid credit applied (0 USD left)", D("0"), D("-50.00")),
    ("fee", "Support", D("1"), D("80.00")),  # January, in arrears
    ("fee", "Platform fee", D("1"), D("500.00")),  # February, in advance
]


def test_the_upcoming_invoice_is_the_next_billing_dates_invoice(subscription):
    # When the customer looks on Jan 20
    with time_machine.travel("2026-01-20 09:00Z", tick=False):
        upcoming = upcoming_invoice(subscription=subscription)

    # Then it is the invoice of Feb 1, for January: 1,130.00 + 8.25 % (93.225 → 93.23)
    assert (upcoming.billing_date, upcoming.period_start, upcoming.period_end) == (
        dt.date(2026, 2, 1),
        dt.date(2026, 1, 1),
        dt.date(2026, 2, 1),
    )
    assert (upcoming.customer, upcoming.currency) == (subscription.customer, "USD")
    assert lines(upcoming.lines) == FEBRUARY_1
    assert all(line.pk is None for line in upcoming.lines)
    assert (upcoming.subtotal, upcoming.tax_rate, upcoming.tax_amount, upcoming.total) == (
        D("1130.00"),
        D("8.25"),
        D("93.23"),
        D("1223.23"),
    )


def test_on_the_billing_date_the_invoice_equals_the_preview_taken_the_day_before(subscription):
    # Given the preview on Jan 31, after the last usage of January
    with time_machine.travel("2026-01-31 23:00Z", tick=False):
        preview = upcoming_invoice(subscription=subscription)

    # When the billing run makes the Feb 1 invoice
    (invoice,) = bill_on("2026-02-01")

    # Then it is the preview, line by line and in its totals
    assert invoice.billing_date == preview.billing_date
    assert lines(invoice.lines.all()) == lines(preview.lines) == FEBRUARY_1
    assert [(line.period_start, line.period_end) for line in invoice.lines.all()] == [
        (line.period_start, line.period_end) for line in preview.lines
    ]
    assert (invoice.subtotal, invoice.tax_rate, invoice.tax_amount, invoice.total) == (
        preview.subtotal,
        preview.tax_rate,
        preview.tax_amount,
        preview.total,
    )
    assert invoice.total == D("1223.23")


def test_a_preview_writes_nothing_and_locks_nothing(subscription):
    models = [Invoice, InvoiceLine, CreditUse, NumberSeries, PrepaidCredit, BillingPeriod]
    before = {model: model.objects.count() for model in models}
    remaining = list(PrepaidCredit.objects.values_list("remaining", flat=True))

    with (
        time_machine.travel("2026-01-20 09:00Z", tick=False),
        CaptureQueriesContext(connection) as queries,
    ):
        assert upcoming_invoice(subscription=subscription).total == D("1223.23")

    statements = [q["sql"].lstrip().split()[0].upper() for q in queries.captured_queries]
    assert set(statements) <= {"SELECT", "WITH"}  # WITH: the usage read, a SELECT of its windows
    assert not any("FOR UPDATE" in q["sql"] for q in queries.captured_queries)
    assert {model: model.objects.count() for model in models} == before
    assert list(PrepaidCredit.objects.values_list("remaining", flat=True)) == remaining == [D(50)]


def test_late_usage_of_an_invoiced_period_is_in_the_next_preview(subscription):
    # Given January invoiced on Feb 1, then 200 more January calls arriving late and 50 in Feb
    bill_on("2026-02-01")
    calls(subscription, 200, "2026-01-31T12:00:00")
    calls(subscription, 50, "2026-02-10T12:00:00")

    # When the customer looks on Feb 20
    upcoming = upcoming_invoice(subscription=subscription, as_of=dt.date(2026, 2, 20))

    # Then the Mar 1 invoice re-rates January on its 600 calls (100 + 400 × 0.80 + 100 × 0.50 =
    # 470.00, still under the minimum: nothing more to bill) and bills February's 50 calls
    assert upcoming.billing_date == dt.date(2026, 3, 1)
    assert lines(upcoming.lines) == [
        ("usage", "API calls", D("50"), D("50.00")),
        ("true_up", "API calls: minimum commitment true-up", D("0"), D("550.00")),
        ("fee", "Support", D("1"), D("80.00")),
        ("fee", "Platform fee", D("1"), D("500.00")),
    ]
    assert (upcoming.subtotal, upcoming.tax_amount, upcoming.total) == (
        D("1180.00"),
        D("97.35"),
        D("1277.35"),
    )


def test_late_usage_worth_more_makes_an_adjustment_line_in_the_preview(subscription):
    bill_on("2026-02-01")
    calls(subscription, 1000, "2026-01-31T12:00:00")  # January: 1,400 calls in all

    upcoming = upcoming_invoice(subscription=subscription, as_of=dt.date(2026, 2, 20))

    # 100 + 400 × 0.80 + 900 × 0.50 = 870.00 now; 600.00 billed before (340.00 of usage and
    # 260.00 of true-up): +270.00
    assert lines(upcoming.lines)[0] == (
        "adjustment",
        "API calls: late usage for Jan 1 – Jan 31, 2026",
        D("1000"),
        D("270.00"),
    )


def test_no_period_in_progress_means_no_upcoming_invoice(subscription):
    assert upcoming_invoice(subscription=subscription, as_of=dt.date(2025, 12, 31)) is None
    assert upcoming_invoice(subscription=subscription, as_of=dt.date(2026, 4, 1)) is None
    last = upcoming_invoice(subscription=subscription, as_of=dt.date(2026, 3, 31))
    assert last.billing_date == dt.date(2026, 4, 1)  # the last period: no fee in advance
    assert [line.description for line in last.lines] == [
        "API calls",
        "API calls: minimum commitment true-up",
        "Prepaid credit applied (0 USD left)",  # not drawn yet: no invoice was made since
        "Support",
    ]


def test_the_live_preview_from_rollups_equals_the_events_preview_and_the_invoice(db):
    # Given January's 400 calls sent through the API's ingestion (which keeps the rollups)
    from metering.services import events_ingest

    customer = CustomerFactory(external_id="acme", tax_rate=D("8.25"))
    with time_machine.travel("2026-01-01 00:00Z", tick=False):
        subscription = subscribe(customer=customer, plan=preview_plan(), start="2026-01-01")
        prepaid_credit_grant(subscription=subscription, amount=D("50.00"))
    bill_on("2026-01-01")
    with time_machine.travel("2026-01-10 12:00Z", tick=False):
        events_ingest(
            raw_events=[
                {
                    "transaction_id": f"c{n}",
                    "external_subscription_id": "sub_acme",
                    "code": "api_calls",
                }
                for n in range(400)
            ]
        )

    # When the preview is read both ways on Jan 31 (live: what current usage and the portal show)
    with time_machine.travel("2026-01-31 23:00Z", tick=False):
        live = upcoming_invoice(subscription=subscription, live=True)
        from_events = upcoming_invoice(subscription=subscription)
    (invoice,) = bill_on("2026-02-01")

    # Then the two previews and the invoice agree line by line
    assert lines(live.lines) == lines(from_events.lines) == lines(invoice.lines.all()) == FEBRUARY_1
    assert live.total == from_events.total == invoice.total == D("1223.23")
