"""Voids: an open, unpaid invoice without credit notes is voided with a reason; its number stays
used, its PDF says VOID, it owes nothing, its prepaid credit comes back, and its date is billed
again."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from core.errors import Conflict, ValidationError
from invoicing.corrections import credit_note_issue, invoice_void
from invoicing.models import Invoice
from invoicing.pdf import invoice_html
from invoicing.services import billing_run
from metering.models import Event
from receivables.selectors import customer_balances, invoice_amount_due
from receivables.services import allocation_unapply, payment_record
from subscriptions.models import PrepaidCredit
from tests.factories import CustomerFactory, UserFactory, day, hybrid_plan, subscribe

D = Decimal


def bill(on: str) -> list[Invoice]:
    with time_machine.travel(f"{on} 01:00Z", tick=False):
        return billing_run().invoices


def lines_of(invoice) -> list[tuple]:
    return [
        (line.kind, line.description, line.period_start, line.quantity, line.amount)
        for line in invoice.lines.all()
    ]


def calls(subscription, count: int, on: str) -> None:
    at = dt.datetime.combine(day(on), dt.time(12), tzinfo=dt.UTC)
    Event.objects.bulk_create(
        Event(
            customer=subscription.customer,
            subscription=subscription,
            transaction_id=f"{on}-{n}",
            code=subscription.items.exclude(metric=None).get().metric.code,
            timestamp=at,
            received_at=at,
        )
        for n in range(count)
    )


def void(invoice, reason="Billed the wrong seats", user=None):
    with time_machine.travel("2026-02-16 09:00Z", tick=False):
        return invoice_void(invoice=invoice, reason=reason, voided_by=user)


def test_void_then_rebill_makes_a_new_invoice_with_a_new_number_and_the_same_lines(db):
    # Given a subscription whose Feb 15 invoice bills usage drawn from a 15.00 prepaid credit
    subscription = subscribe(customer=CustomerFactory(), plan=hybrid_plan())
    credit = PrepaidCredit.objects.create(
        subscription=subscription, granted=D("15"), remaining=D("15"), granted_on=day("2026-01-15")
    )
    bill("2026-01-15")
    calls(subscription, 10000, "2026-01-20")  # 10,000 × 0.002 = 20.00, 15.00 of it prepaid
    (february,) = bill("2026-02-15")
    before = lines_of(february)
    credit.refresh_from_db()
    assert (february.number, february.total, credit.remaining) == ("INV-000002", D("630.00"), 0)
    finance = UserFactory(username="fin")

    # When finance voids it, and the next run bills again
    voided = void(february, user=finance)
    credit.refresh_from_db()
    assert credit.remaining == D("15")
    (again,) = bill("2026-02-15")

    # Then the void one keeps its number and says why; the new one has the next number, same lines
    assert (voided.status, voided.number, voided.void_reason, voided.voided_by) == (
        "void",
        "INV-000002",
        "Billed the wrong seats",
        finance,
    )
    assert (again.number, again.billing_date, again.total) == (
        "INV-000003",
        day("2026-02-15"),
        D("630.00"),
    )
    assert lines_of(again) == before
    credit.refresh_from_db()
    assert credit.remaining == 0  # drawn again by the new invoice
    assert [u.amount for u in credit.uses.order_by("id")] == [D("15"), D("-15"), D("15")]
    assert invoice_amount_due(voided) == 0
    (balance,) = customer_balances(customer=subscription.customer, as_of=day("2026-04-01"))
    assert (balance.due, balance.open_invoices) == (D("1255.00"), 2)  # 625.00 + 630.00
    assert "VOID — voided Feb 16, 2026: Billed the wrong seats" in invoice_html(voided)


def test_a_void_needs_a_reason(db):
    subscribe(customer=CustomerFactory(), plan=hybrid_plan())
    (invoice,) = bill("2026-01-15")

    with pytest.raises(ValidationError):
        void(invoice, reason="  ")

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.FINALIZED


def test_a_paid_or_credited_invoice_cannot_be_voided(db):
    customer = CustomerFactory()
    subscribe(customer=customer, plan=hybrid_plan())
    (invoice,) = bill("2026-01-15")
    payment = payment_record(
        customer=customer, amount=D("10.00"), currency="USD", received_on=day("2026-01-20")
    )

    with pytest.raises(Conflict) as paid:
        void(invoice)
    # The payment taken off the invoice (to the customer's account), then a credit note
    allocation_unapply(allocation=payment.allocations.get(), reason="Meant for another invoice")
    credit_note_issue(invoice=invoice, amount=D("1.00"), reason="Goodwill")
    with pytest.raises(Conflict) as credited:
        void(invoice)

    assert paid.value.message == (
        f"Invoice {invoice} has payments or a write-off applied: it cannot be voided. "
        "Issue a credit note instead."
    )
    assert "has credit notes" in credited.value.message
    invoice.refresh_from_db()
    assert (invoice.status, invoice.void_reason) == (Invoice.Status.FINALIZED, "")


def test_a_void_invoice_cannot_be_voided_again_or_credited(db):
    subscribe(customer=CustomerFactory(), plan=hybrid_plan())
    (invoice,) = bill("2026-01-15")
    void(invoice)

    with pytest.raises(Conflict):
        void(invoice)
    with pytest.raises(Conflict):
        credit_note_issue(invoice=invoice, full=True)
