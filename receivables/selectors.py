from decimal import Decimal

from django.db.models import Sum

from invoicing.models import Invoice
from receivables.models import Payment


def invoice_amount_paid(invoice: Invoice) -> Decimal:
    return invoice.allocations.aggregate(s=Sum("amount"))["s"] or Decimal(0)


def invoice_amount_due(invoice: Invoice) -> Decimal:
    return invoice.total - invoice_amount_paid(invoice)


def payment_unapplied(payment: Payment) -> Decimal:
    return payment.amount - (payment.allocations.aggregate(s=Sum("amount"))["s"] or Decimal(0))
