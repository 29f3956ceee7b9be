from decimal import Decimal

from django.db.models import Sum

from core.money import round_money
from invoicing.models import Invoice
from receivables.models import Payment


def invoice_amount_paid(invoice: Invoice) -> Decimal:
    paid = invoice.allocations.aggregate(s=Sum("amount"))["s"] or Decimal(0)
    return round_money(paid, invoice.currency)  # SQLite sums come back with 12 places


def invoice_amount_due(invoice: Invoice) -> Decimal:
    return round_money(invoice.total - invoice_amount_paid(invoice), invoice.currency)


def payment_unapplied(payment: Payment) -> Decimal:
    applied = payment.allocations.aggregate(s=Sum("amount"))["s"] or Decimal(0)
    return round_money(payment.amount - applied, payment.currency)
