"""Helpers for the cash-application tests: invoices of a round total issued on a given day (with
the due date we want), payments, credit notes, all through the services."""

import datetime as dt
import itertools
from decimal import Decimal

import time_machine

from core.money import exact_sum
from invoicing.balance import credit_balance
from invoicing.corrections import credit_note_issue
from invoicing.models import CreditBalanceEntry, Invoice
from invoicing.services import invoice_finalize
from receivables.models import Payment, PaymentAllocation, WriteOff
from receivables.services import payment_record
from tests.factories import CustomerFactory, PlanFactory, day, subscribe

D = Decimal
_numbers = itertools.count(1)


def customer(name="Acme", currency="USD", **extra):
    """A customer with one subscription (invoices need one)."""
    person = CustomerFactory(name=name, currency=currency, **extra)
    subscribe(
        customer=person,
        plan=PlanFactory(currency=currency),
        external_id=f"sub_{person.external_id}",
    )
    return person


def issue(person, total: str, issued: str, due: str | None = None) -> Invoice:
    """Finalize an invoice of `total` (no tax) on `issued` (so it takes the customer's credit
    balance then); due `due` (default: 30 days later)."""
    draft = Invoice.objects.create(
        customer=person,
        subscription=person.subscriptions.get(),
        billing_date=day(issued) + dt.timedelta(days=next(_numbers) * 1000),  # one per period
        currency=person.currency,
        subtotal=D(total),
        total=D(total),
    )
    with time_machine.travel(f"{issued} 12:00Z", tick=False):
        invoice = invoice_finalize(invoice=draft, issue_date=day(issued))
    if due is not None:
        Invoice.objects.filter(pk=invoice.pk).update(due_date=day(due))
    invoice.refresh_from_db()
    return invoice


def pay(person, amount: str, on: str, **kwargs) -> Payment:
    """A payment received on `on`, through payment_record (allocations=…, auto_apply=…)."""
    return payment_record(
        customer=person, amount=D(amount), currency=person.currency, received_on=day(on), **kwargs
    )


def credit(invoice: Invoice, amount: str, on: str, reason: str = "Goodwill"):
    with time_machine.travel(f"{on} 12:00Z", tick=False):
        return credit_note_issue(invoice=invoice, amount=D(amount), reason=reason)


def fresh(invoice: Invoice) -> Invoice:
    invoice.refresh_from_db()
    return invoice


def figures(invoice: Invoice) -> tuple:
    """(status, open, paid, written off, to balance) as stored."""
    invoice = fresh(invoice)
    return (
        invoice.status,
        invoice.open_amount,
        invoice.paid_amount,
        invoice.written_off_amount,
        invoice.credit_to_balance,
    )


def open_from_rows(invoice: Invoice) -> Decimal:
    """The open amount recomputed from the rows (not the stored sums): total − credit notes +
    their parts sent to the balance − payments' allocations + credit applied − write-offs."""
    invoice = fresh(invoice)
    if invoice.status not in (Invoice.Status.FINALIZED, Invoice.Status.PAID) or invoice.total <= 0:
        return D(0)
    notes = exact_sum(invoice.credit_notes.values_list("total", flat=True))
    allocated = exact_sum(
        PaymentAllocation.objects.filter(invoice=invoice).values_list("amount", flat=True)
    )
    entries = exact_sum(
        CreditBalanceEntry.objects.filter(
            invoice=invoice,
            kind__in=[CreditBalanceEntry.Kind.APPLIED, CreditBalanceEntry.Kind.CREDIT_NOTE],
        ).values_list("amount", flat=True)
    )
    written = exact_sum(WriteOff.objects.filter(invoice=invoice).values_list("amount", flat=True))
    return invoice.total - notes - allocated + entries - written


def balance(person) -> Decimal:
    return credit_balance(person)


def rows_written() -> tuple[int, int, int]:
    """(payments, allocations, credit balance entries)."""
    return (
        Payment.objects.count(),
        PaymentAllocation.objects.count(),
        CreditBalanceEntry.objects.count(),
    )


def bounced_month():
    """Acme, through the services:
    Jan 5   invoice A 100.00 (due Feb 4)        Jan 10  invoice B 80.00 (due Feb 9)
    Jan 20  P1 150.00: A 100.00, B 50.00        Jan 25  P2 60.00: B 30.00, 30.00 on account
    Feb 3   P1 reversed: A and B open again     Feb 10  40.00 of A written off
    Feb 15  the 30.00 on account refunded
    """
    from receivables.services import (
        invoice_write_off,
        payment_record,
        payment_reverse,
        refund_record,
    )

    acme = customer(name="Acme Corp")
    a = issue(acme, "100.00", "2026-01-05")
    b = issue(acme, "80.00", "2026-01-10")
    p1 = payment_record(
        customer=acme,
        amount=D("150.00"),
        currency="USD",
        received_on=day("2026-01-20"),
        reference="P1",
    )
    payment_record(
        customer=acme,
        amount=D("60.00"),
        currency="USD",
        received_on=day("2026-01-25"),
        reference="P2",
    )
    payment_reverse(payment=p1, reason="Bounced", on=day("2026-02-03"))
    invoice_write_off(invoice=a, reason="Disputed", amount=D("40.00"), on=day("2026-02-10"))
    refund_record(customer=acme, amount=D("30.00"), refunded_on=day("2026-02-15"), reference="R1")
    return acme, a, b
