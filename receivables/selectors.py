import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from core import clock
from customers.models import Customer
from invoicing.balance import credit_balances
from invoicing.models import Invoice


def invoice_amount_paid(invoice: Invoice) -> Decimal:
    """Payments and credit balance applied to the invoice, net of what was taken back."""
    return invoice.paid_amount


def invoice_amount_due(invoice: Invoice) -> Decimal:
    """What is left to pay (Invoice.open_amount): total − credit notes (less what went to the
    customer's credit balance) − payments and credit applied − write-offs. Zero on a draft, a
    void invoice or one below zero."""
    return invoice.open_amount


@dataclass(frozen=True)
class Balance:
    """What a customer owes in one currency: the open amounts of their invoices; `overdue` is the
    part of it on invoices past their due date; `credit` is their credit balance (money on
    account, applied to their next invoices at finalization)."""

    currency: str
    due: Decimal
    overdue: Decimal
    open_invoices: int
    overdue_invoices: int
    credit: Decimal = Decimal(0)


def customer_balances(*, customer: Customer, as_of: dt.date | None = None) -> list[Balance]:
    """The customer's balance per currency (theirs first); [] when nothing is open or on account.

    An invoice is overdue on the day after its due date (due on Mar 1: overdue on Mar 2).
    """
    as_of = as_of or clock.today()
    figures: dict[str, list] = {}
    for invoice in Invoice.objects.filter(customer=customer, status=Invoice.Status.FINALIZED):
        row = figures.setdefault(str(invoice.currency), [Decimal(0), Decimal(0), 0, 0])
        due = invoice.open_amount
        row[0] += due
        row[2] += 1
        if invoice.due_date < as_of:
            row[1] += due
            row[3] += 1
    credits = {
        currency: amount for (customer_id, currency), amount in credit_balances(customer).items()
    }
    for currency in credits:
        figures.setdefault(currency, [Decimal(0), Decimal(0), 0, 0])
    mine = str(customer.currency)
    return [
        Balance(currency, due, overdue, count, late, credits.get(currency, Decimal(0)))
        for currency, (due, overdue, count, late) in sorted(
            figures.items(), key=lambda item: (item[0] != mine, item[0])
        )
    ]


class InvoiceState:
    DRAFT = "draft"
    OPEN = "open"
    PARTIALLY_PAID = "partially paid"
    OVERDUE = "overdue"
    PAID = "paid"
    WRITTEN_OFF = "written off"
    VOID = "void"


def invoice_state(invoice: Invoice, today: dt.date | None = None) -> str:
    """The one derived payment state the portal badge, the admin's Overdue filter and dunning
    read, from the invoice's stored sums (never set by hand).

    Overdue: something left to pay and today is after the due date (due on Mar 1: overdue on
    Mar 2). Written off: nothing left to pay and some of it was written off. Paid: nothing left
    to pay (payments, credit applied or credit notes cover it)."""
    today = today or clock.today()
    if invoice.status == Invoice.Status.VOID:
        return InvoiceState.VOID
    if invoice.status == Invoice.Status.DRAFT:
        return InvoiceState.DRAFT
    if invoice.open_amount <= 0:
        return InvoiceState.WRITTEN_OFF if invoice.written_off_amount else InvoiceState.PAID
    if invoice.due_date < today:
        return InvoiceState.OVERDUE
    if invoice.paid_amount > 0:
        return InvoiceState.PARTIALLY_PAID
    return InvoiceState.OPEN


def overdue_invoice_ids(today: dt.date | None = None) -> list[int]:
    """The invoices invoice_state calls overdue (finalized and past due are the candidates)."""
    today = today or clock.today()
    # Finalized means something is left to pay (invoicing.balance.invoice_settle keeps it so).
    overdue = Invoice.objects.filter(status=Invoice.Status.FINALIZED, due_date__lt=today)
    return list(overdue.values_list("pk", flat=True))
