from decimal import Decimal

from core.money import exact_sum, round_money
from invoicing.models import Invoice
from receivables.models import Payment


def invoice_amount_paid(invoice: Invoice) -> Decimal:
    # Summed in Python: SQL SUM() is floating point on SQLite.
    paid = exact_sum(invoice.allocations.values_list("amount", flat=True))
    return round_money(paid, invoice.currency)


def invoice_amount_due(invoice: Invoice) -> Decimal:
    return round_money(invoice.total - invoice_amount_paid(invoice), invoice.currency)


def payment_unapplied(payment: Payment) -> Decimal:
    applied = exact_sum(payment.allocations.values_list("amount", flat=True))
    return round_money(payment.amount - applied, payment.currency)
