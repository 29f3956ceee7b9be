import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch

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
    return round_money(invoice.total - invoice_amount_paid(invoice), invoice.currency)


def payment_unapplied(payment: Payment) -> Decimal:
    applied = exact_sum(payment.allocations.values_list("amount", flat=True))
    return round_money(payment.amount - applied, payment.currency)


@dataclass(frozen=True)
class Balance:
    """What a customer owes in one currency: the open (finalized) invoices' totals minus the
    payments allocated to them; `overdue` is the part of it on invoices past their due date."""

    currency: str
    due: Decimal
    overdue: Decimal
    open_invoices: int
    overdue_invoices: int


def customer_balances(*, customer: Customer, as_of: dt.date | None = None) -> list[Balance]:
    """The customer's balance per currency (theirs first), from two queries; [] when all is paid.

    An invoice is overdue on the day after its due date (due on Mar 1: overdue on Mar 2).
    """
    as_of = as_of or clock.today()
    invoices = list(
        Invoice.objects.filter(customer=customer, status=Invoice.Status.FINALIZED).prefetch_related(
            Prefetch("allocations", queryset=PaymentAllocation.objects.only("invoice_id", "amount"))
        )
    )
    figures: dict[str, list] = {}
    for invoice in invoices:
        currency = str(invoice.currency)
        paid = exact_sum(a.amount for a in invoice.allocations.all())
        due = round_money(invoice.total - paid, currency)
        row = figures.setdefault(currency, [Decimal(0), Decimal(0), 0, 0])
        row[0] += due
        row[2] += 1
        if invoice.due_date < as_of:
            row[1] += due
            row[3] += 1
    mine = str(customer.currency)
    return [
        Balance(currency, due, overdue, count, late)
        for currency, (due, overdue, count, late) in sorted(
            figures.items(), key=lambda item: (item[0] != mine, item[0])
        )
    ]
