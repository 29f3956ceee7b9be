"""billing_run: one invoice per subscription per billing date, gapless numbers, rounding once."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction

from catalog.models import Charge
from invoicing.models import Invoice, InvoiceLine, NumberSeries
from invoicing.services import billing_run
from metering.models import Event
from subscriptions.models import Subscription
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    day,
    hybrid_plan,
    subscribe,
)


def bill(on: str, at: str = "01:00") -> list[Invoice]:
    """Run billing as the hourly job would, at a given UTC time."""
    with time_machine.travel(f"{on} {at}Z", tick=False):
        return billing_run().invoices


def calls(subscription, count: int, on: str) -> None:
    """Record `count` API calls on a day (at noon UTC)."""
    at = dt.datetime.combine(day(on), dt.time(12), tzinfo=dt.UTC)
    Event.objects.bulk_create(
        Event(
            customer=subscription.customer,
            subscription=subscription,
            transaction_id=f"{subscription.external_id}-{on}-{n}",
            code="api_calls",
            timestamp=at,
            received_at=at,
        )
        for n in range(count)
    )


def lines_of(invoice) -> list[tuple]:
    return [
        (line.kind, line.description, line.quantity, line.amount) for line in invoice.lines.all()
    ]


def fixed_fee_plan(*fees: tuple[str, str, str], currency="USD", call_price=None):
    """A plan of fixed fees in advance: (name, unit price, default quantity); optional usage."""
    plan = PlanFactory(currency=currency)
    for position, (name, price, quantity) in enumerate(fees):
        ChargeFactory(
            plan=plan,
            name=name,
            unit_price=Decimal(price),
            default_quantity=Decimal(quantity),
            position=position,
        )
    if call_price is not None:
        ChargeFactory(
            plan=plan,
            name="API calls",
            metric=MetricFactory(),
            billing_timing=Charge.Timing.IN_ARREARS,
            unit_price=Decimal(call_price),
            unit_name="call",
            default_quantity=Decimal("0"),
            position=len(fees),
        )
    return plan


def test_billing_twice_on_the_same_day_makes_one_invoice(db):
    # Given a subscription starting on Jan 15 (500 + 5 × 25 in advance)
    subscription = subscribe(customer=CustomerFactory(), plan=hybrid_plan(), start="2026-01-15")

    # When the hourly job runs several times that day and the following days
    first = bill("2026-01-15", "01:00")
    again = bill("2026-01-15", "02:00")
    later = bill("2026-01-20")

    # Then the date is billed once
    assert [(i.number, i.billing_date, i.total) for i in first] == [
        ("INV-000001", day("2026-01-15"), Decimal("625.00"))
    ]
    assert again == [] and later == []
    assert Invoice.objects.filter(subscription=subscription).count() == 1
    assert InvoiceLine.objects.count() == 2


def test_invoice_numbers_are_gapless_and_sequential_across_customers(db):
    # Given three customers, two starting on Jan 15 and one on Feb 1
    plan = hybrid_plan()
    for external_id, start in [
        ("acme", "2026-01-15"),
        ("globex", "2026-01-15"),
        ("initech", "2026-02-01"),
    ]:
        subscribe(
            customer=CustomerFactory(external_id=external_id),
            plan=plan,
            external_id=f"sub_{external_id}",
            start=start,
        )

    # When billing runs on each billing date
    for on in ["2026-01-15", "2026-02-01", "2026-02-15"]:
        bill(on)

    # Then numbers follow finalization order, one series for everyone, without gaps
    assert list(
        Invoice.objects.order_by("number").values_list(
            "number", "customer__external_id", "billing_date", "issue_date", "due_date"
        )
    ) == [
        ("INV-000001", "acme", day("2026-01-15"), day("2026-01-15"), day("2026-02-14")),
        ("INV-000002", "globex", day("2026-01-15"), day("2026-01-15"), day("2026-02-14")),
        ("INV-000003", "initech", day("2026-02-01"), day("2026-02-01"), day("2026-03-03")),
        ("INV-000004", "acme", day("2026-02-15"), day("2026-02-15"), day("2026-03-17")),
        ("INV-000005", "globex", day("2026-02-15"), day("2026-02-15"), day("2026-03-17")),
    ]
    assert NumberSeries.objects.get(name="INV").next_value == 6
    assert set(Invoice.objects.values_list("status", flat=True)) == {Invoice.Status.FINALIZED}


@pytest.mark.parametrize(
    ("tax_rate", "price", "line", "subtotal", "tax", "total"),
    [
        # 10.045 → 10.05 per line (the unrounded sum 20.09 would be wrong);
        # 10 % of 20.10 = 2.010 → 2.01 (taxing each line, 1.005 → 1.01 twice, would give 2.02)
        ("10", "10.045", "10.05", "20.10", "2.01", "22.11"),
        # 8.25 % of 200.12 = 16.5099 → 16.51 (per line: 8.25495 → 8.25 twice = 16.50)
        ("8.25", "100.06", "100.06", "200.12", "16.51", "216.63"),
    ],
)
def test_tax_is_computed_once_on_the_subtotal_of_rounded_lines(
    db, tax_rate, price, line, subtotal, tax, total
):
    # Given two fixed fees in advance at the same price
    plan = fixed_fee_plan(("Platform fee", price, "1"), ("Seats", price, "1"))
    subscribe(customer=CustomerFactory(tax_rate=Decimal(tax_rate)), plan=plan)

    # When
    (invoice,) = bill("2026-01-15")

    # Then
    invoice.refresh_from_db()
    assert lines_of(invoice) == [
        ("fee", "Platform fee", Decimal("1"), Decimal(line)),
        ("fee", "Seats", Decimal("1"), Decimal(line)),
    ]
    assert (invoice.subtotal, invoice.tax_rate, invoice.tax_amount, invoice.total) == (
        Decimal(subtotal),
        Decimal(tax_rate),
        Decimal(tax),
        Decimal(total),
    )
    assert invoice.total == sum(line.amount for line in invoice.lines.all()) + invoice.tax_amount


def test_jpy_invoices_have_no_decimals(db):
    # Given a JPY customer with 10 % tax: a 1,000 fee, 3 seats at 333.5, calls at 0.5
    plan = fixed_fee_plan(
        ("Platform fee", "1000", "1"), ("Seats", "333.5", "3"), currency="JPY", call_price="0.5"
    )
    customer = CustomerFactory(currency="JPY", tax_rate=Decimal("10"))
    subscription = subscribe(customer=customer, plan=plan)
    calls(subscription, 7, "2026-01-20")

    # When the first two dates are billed
    (first,) = bill("2026-01-15")
    (second,) = bill("2026-02-15")

    # Then: seats 1000.5 → 1001; tax 200.1 → 200
    first.refresh_from_db()
    assert lines_of(first) == [
        ("fee", "Platform fee", Decimal("1"), Decimal("1000")),
        ("fee", "Seats", Decimal("3"), Decimal("1001")),
    ]
    assert (first.subtotal, first.tax_amount, first.total) == (
        Decimal("2001"),
        Decimal("200"),
        Decimal("2201"),
    )
    # and: 7 × 0.5 = 3.5 → 4; tax 10 % of 2005 = 200.5 → 201
    second.refresh_from_db()
    assert lines_of(second) == [
        ("usage", "API calls", Decimal("7"), Decimal("4")),
        ("fee", "Platform fee", Decimal("1"), Decimal("1000")),
        ("fee", "Seats", Decimal("3"), Decimal("1001")),
    ]
    assert (second.subtotal, second.tax_amount, second.total) == (
        Decimal("2005"),
        Decimal("201"),
        Decimal("2206"),
    )
    amounts = [a for i in (first, second) for a in (i.subtotal, i.tax_amount, i.total)]
    amounts += list(InvoiceLine.objects.values_list("amount", flat=True))
    assert all(a == a.to_integral_value() for a in amounts)


def test_the_final_billing_date_bills_only_usage_in_arrears_then_ends_the_subscription(db):
    # Given a 2-month term with calls in each period
    subscription = subscribe(
        customer=CustomerFactory(), plan=hybrid_plan(), start="2026-01-15", term_months=2
    )
    calls(subscription, 2, "2026-01-20")
    calls(subscription, 3, "2026-02-20")
    bill("2026-01-15")
    bill("2026-02-15")

    # When the term's end (Mar 15) is billed
    (last,) = bill("2026-03-15")

    # Then only the last period's usage is billed: 3 × 0.002 = 0.006 → 0.01
    assert lines_of(last) == [("usage", "API calls", Decimal("3"), Decimal("0.01"))]
    assert [(line.period_start, line.period_end) for line in last.lines.all()] == [
        (day("2026-02-15"), day("2026-03-15"))
    ]
    assert (last.billing_date, last.subtotal, last.total) == (
        day("2026-03-15"),
        Decimal("0.01"),
        Decimal("0.01"),
    )
    # and the term is over; the subscription stays open for late usage for 35 days, then ends
    assert bill("2026-04-15") == []
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert bill("2026-04-19") == []  # Mar 15 + 35 days: no late usage came, no invoice
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ENDED
    assert Invoice.objects.count() == 3


def test_a_late_run_bills_every_missed_date_in_order(db):
    # Given a 2-month term nobody billed
    subscription = subscribe(
        customer=CustomerFactory(), plan=hybrid_plan(), start="2026-01-15", term_months=2
    )

    # When billing first runs after the term is over
    invoices = bill("2026-03-20")

    # Then each billing date has its invoice, numbered in date order; the term closes once late
    # usage can no longer arrive (35 days after its end)
    assert [(i.number, i.billing_date, i.total) for i in invoices] == [
        ("INV-000001", day("2026-01-15"), Decimal("625.00")),
        ("INV-000002", day("2026-02-15"), Decimal("625.00")),
        ("INV-000003", day("2026-03-15"), Decimal("0.00")),
    ]
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    bill("2026-04-20")
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ENDED


def test_usage_of_zero_units_is_a_zero_line(db):
    # Given no usage in the first period
    subscribe(customer=CustomerFactory(), plan=hybrid_plan(), start="2026-01-15")
    bill("2026-01-15")

    # When
    (invoice,) = bill("2026-02-15")

    # Then
    assert lines_of(invoice) == [
        ("usage", "API calls", Decimal("0"), Decimal("0.00")),
        ("fee", "Platform fee", Decimal("1"), Decimal("500.00")),
        ("fee", "Seats", Decimal("5"), Decimal("125.00")),
    ]
    assert invoice.total == Decimal("625.00")


def test_usage_below_half_a_cent_rounds_to_zero(db):
    # Given 2 calls at 0.002 = 0.004 in the first period
    subscription = subscribe(customer=CustomerFactory(), plan=hybrid_plan(), start="2026-01-15")
    calls(subscription, 2, "2026-01-20")
    bill("2026-01-15")

    (invoice,) = bill("2026-02-15")

    assert lines_of(invoice)[0] == ("usage", "API calls", Decimal("2"), Decimal("0.00"))


def test_the_database_refuses_a_second_invoice_for_the_same_billing_date(db):
    # Given an invoice for Jan 15
    subscription = subscribe(customer=CustomerFactory(), plan=hybrid_plan(), start="2026-01-15")
    fields = {
        "customer": subscription.customer,
        "subscription": subscription,
        "billing_date": day("2026-01-15"),
        "currency": "USD",
    }
    Invoice.objects.create(**fields)

    # When a second one is inserted directly, bypassing the services
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(**fields)

    # Then
    assert Invoice.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_billing_runs_bill_each_date_once():
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")

    # Given two subscriptions due on Jan 15
    plan = hybrid_plan()
    for name in ["acme", "globex"]:
        subscribe(customer=CustomerFactory(external_id=name), plan=plan, external_id=f"sub_{name}")
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(len(billing_run(today=day("2026-01-15")).invoices))
        except Exception as exc:
            outcomes.append(repr(exc))
        finally:
            connection.close()

    # When two workers run billing at the same moment
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    # Then the two invoices are made once between them, numbered without a gap
    assert sorted(outcomes, key=str) in ([0, 2], [1, 1])
    assert sorted(Invoice.objects.values_list("number", flat=True)) == ["INV-000001", "INV-000002"]
    assert sorted(Invoice.objects.values_list("subscription__external_id", flat=True)) == [
        "sub_acme",
        "sub_globex",
    ]


def test_an_invoice_of_a_customer_without_billing_email_is_issued_and_not_emailed(
    db, django_capture_on_commit_callbacks, mailoutbox
):
    # Given a customer a sales rep added: finance has not set the billing email yet
    subscription = subscribe(
        customer=CustomerFactory(billing_email=""), plan=hybrid_plan(), start="2026-01-15"
    )

    # When billing runs (and the transaction commits)
    with django_capture_on_commit_callbacks(execute=True):
        invoices = bill("2026-01-15")

    # Then the invoice is issued, and no email goes to an empty address
    assert [(i.subscription, i.total) for i in invoices] == [(subscription, Decimal("625.00"))]
    assert mailoutbox == []


def test_the_invoice_email_shows_the_total_as_money_and_the_due_date_as_people_read_it(
    db, django_capture_on_commit_callbacks, mailoutbox
):
    # Given a customer with a billing email, on the hybrid plan
    customer = CustomerFactory(name="Acme", billing_email="ap@acme.example", payment_terms_days=30)
    subscribe(customer=customer, plan=hybrid_plan(), start="2026-01-15")

    # When billing runs (and the transaction commits)
    with django_capture_on_commit_callbacks(execute=True):
        bill("2026-01-15")

    # Then the email reads the total with its currency's symbol
    assert [m.to for m in mailoutbox] == [["ap@acme.example"]]
    assert (
        "Invoice INV-000001 for $625.00 is due on Feb 14, 2026. You can view and download it"
    ) in mailoutbox[0].body


def test_a_snapshot_with_an_empty_free_units_or_price_is_billed(db):
    # Given a subscription whose usage item's snapshot was edited by hand to hold nulls
    subscription = subscribe(customer=CustomerFactory(), plan=hybrid_plan(), start="2026-01-15")
    item = subscription.items.get(metric__isnull=False)
    item.pricing = {**item.pricing, "free_units": None}
    item.save(update_fields=["pricing"])
    calls(subscription, 1000, "2026-01-20")

    # When the run bills January's usage
    with time_machine.travel("2026-02-15 01:00Z", tick=False):
        result = billing_run()

    # Then the empty value reads as none (the rating engine's reading), and nothing failed
    assert result.failed == {}
    line = InvoiceLine.objects.get(kind="usage", item=item)
    assert (line.quantity, line.amount) == (Decimal("1000"), Decimal("2.00"))
