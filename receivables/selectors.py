import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch, Q

from core import clock
from core.money import exact_sum, round_money
from customers.models import Customer
from invoicing.models import Invoice
from receivables.models import Payment, PaymentAllocation


def invoice_amount_paid(invoice: Invoice) -> Decimal:
    # Summed in Python: SQL SUM() is floating point on SQLite.
    paid = exact_sum(invoice.allocations.values_list("amount", flat=True))
    return round_money(paid, invoice.currency)


def invoice_amount_due(invoice: Invoice) -> Decimal:
    """What is left to pay: the total minus credit notes and payments, never below zero (a
    credit beyond what was left to pay is the customer's credit: invoice_customer_credit). A void
    invoice owes nothing."""
    return owed(invoice.total, invoice.credited_amount, invoice_amount_paid(invoice), invoice)


def invoice_customer_credit(invoice: Invoice) -> Decimal:
    """What credit notes gave back beyond what was left to pay (a paid invoice credited): money
    the customer has on account. Shown, not applied automatically."""
    paid = invoice_amount_paid(invoice)
    return round_money(
        max(invoice.credited_amount + paid - invoice.total, Decimal(0)), invoice.currency
    )


def owed(total: Decimal, credited: Decimal, paid: Decimal, invoice=None, *, currency=None):
    """total − credited − paid, at least zero (zero on a void invoice)."""
    if invoice is not None:
        if invoice.status == Invoice.Status.VOID:
            return Decimal(0)
        currency = invoice.currency
    return round_money(max(total - credited - paid, Decimal(0)), str(currency))


def payment_unapplied(payment: Payment) -> Decimal:
    applied = exact_sum(payment.allocations.values_list("amount", flat=True))
    return round_money(payment.amount - applied, payment.currency)


@dataclass(frozen=True)
class Balance:
    """What a customer owes in one currency: the open (finalized) invoices' totals minus their
    credit notes and the payments allocated to them; `overdue` is the part of it on invoices past
    their due date; `credit` is what credit notes on paid invoices left on the customer's account
    (shown, not applied automatically)."""

    currency: str
    due: Decimal
    overdue: Decimal
    open_invoices: int
    overdue_invoices: int
    credit: Decimal = Decimal(0)


def customer_balances(*, customer: Customer, as_of: dt.date | None = None) -> list[Balance]:
    """The customer's balance per currency (theirs first), from two queries; [] when all is paid.

    An invoice is overdue on the day after its due date (due on Mar 1: overdue on Mar 2).
    """
    as_of = as_of or clock.today()
    invoices = list(
        Invoice.objects.filter(
            customer=customer, status__in=[Invoice.Status.FINALIZED, Invoice.Status.PAID]
        )
        .filter(Q(status=Invoice.Status.FINALIZED) | Q(credited_amount__gt=0))
        .prefetch_related(
            Prefetch("allocations", queryset=PaymentAllocation.objects.only("invoice_id", "amount"))
        )
    )
    figures: dict[str, list] = {}
    for invoice in invoices:
        currency = str(invoice.currency)
        paid = exact_sum(a.amount for a in invoice.allocations.all())
        due = owed(invoice.total, invoice.credited_amount, paid, currency=currency)
        credit = round_money(
            max(invoice.credited_amount + paid - invoice.total, Decimal(0)), currency
        )
        row = figures.setdefault(currency, [Decimal(0), Decimal(0), 0, 0, Decimal(0)])
        row[4] += credit
        if invoice.status != Invoice.Status.FINALIZED or due <= 0:
            continue  # fully credited: nothing open
        row[0] += due
        row[2] += 1
        if invoice.due_date < as_of:
            row[1] += due
            row[3] += 1
    mine = str(customer.currency)
    return [
        Balance(currency, due, overdue, count, late, credit)
        for currency, (due, overdue, count, late, credit) in sorted(
            figures.items(), key=lambda item: (item[0] != mine, item[0])
        )
    ]


class InvoiceState:
    DRAFT = "draft"
    OPEN = "open"
    PARTIALLY_PAID = "partially paid"
    OVERDUE = "overdue"
    PAID = "paid"
    VOID = "void"


def invoice_state(invoice: Invoice, today: dt.date | None = None) -> str:
    """The one derived state the portal badge, the admin's Overdue filter and dunning read.

    Overdue: finalized, something left to pay, and today is after the due date (due on Mar 1:
    overdue on Mar 2). An invoice whose credit notes and payments cover it is paid."""
    today = today or clock.today()
    if invoice.status == Invoice.Status.VOID:
        return InvoiceState.VOID
    if invoice.status == Invoice.Status.DRAFT:
        return InvoiceState.DRAFT
    if invoice.status == Invoice.Status.PAID:
        return InvoiceState.PAID
    due = invoice_amount_due(invoice)
    if due <= 0:
        return InvoiceState.PAID
    if invoice.due_date < today:
        return InvoiceState.OVERDUE
    if invoice_amount_paid(invoice) > 0:
        return InvoiceState.PARTIALLY_PAID
    return InvoiceState.OPEN


def overdue_invoice_ids(today: dt.date | None = None) -> list[int]:
    """The invoices invoice_state calls overdue (finalized and past due are the candidates)."""
    today = today or clock.today()
    candidates = Invoice.objects.filter(
        status=Invoice.Status.FINALIZED, due_date__lt=today
    ).prefetch_related("allocations")
    return [i.pk for i in candidates if invoice_state(i, today) == InvoiceState.OVERDUE]
