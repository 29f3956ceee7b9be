import datetime as dt
from decimal import Decimal

from django.db import transaction

from core.errors import ValidationError
from core.money import round_money
from customers.models import Customer
from invoicing.models import Invoice
from invoicing.services import invoice_mark_paid
from receivables.models import Payment, PaymentAllocation
from receivables.selectors import invoice_amount_due, payment_unapplied


def payment_validate(*, customer: Customer, amount: Decimal, currency: str) -> None:
    if amount <= 0:
        raise ValidationError("A payment amount must be positive.")
    if round_money(amount, currency) != amount:
        raise ValidationError(f"{amount} has more decimals than {currency} allows.")
    if currency != customer.currency:
        raise ValidationError(
            f"{customer} is billed in {customer.currency}; record the payment in that currency."
        )


@transaction.atomic
def payment_record(
    *,
    customer: Customer,
    amount: Decimal,
    currency: str,
    received_on: dt.date,
    method: str = Payment.Method.BANK_TRANSFER,
    reference: str = "",
) -> Payment:
    payment_validate(customer=customer, amount=amount, currency=currency)
    return Payment.objects.create(
        customer=customer,
        amount=amount,
        currency=currency,
        received_on=received_on,
        method=method,
        reference=reference,
    )


@transaction.atomic
def payment_apply(*, payment: Payment, invoice: Invoice, amount: Decimal | None = None) -> Invoice:
    """Apply (part of) a payment to an open invoice; the invoice is paid when nothing is left due.

    Locks the payment, then the invoice (always in this order).
    """
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if amount is not None and round_money(amount, payment.currency) != amount:
        raise ValidationError(f"{amount} has more decimals than {payment.currency} allows.")
    if payment.currency != invoice.currency:
        raise ValidationError(
            f"The payment is in {payment.currency} but invoice {invoice} is in {invoice.currency}."
        )
    if invoice.customer_id != payment.customer_id:
        raise ValidationError(f"Invoice {invoice} belongs to another customer than this payment.")
    if invoice.status != Invoice.Status.FINALIZED:
        raise ValidationError(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}: only open invoices "
            "take payments."
        )
    due, unapplied = invoice_amount_due(invoice), payment_unapplied(payment)
    amount = min(due, unapplied) if amount is None else amount
    if amount <= 0:
        raise ValidationError("Nothing to apply: the payment is used up or the invoice is paid.")
    if amount > unapplied:
        raise ValidationError(f"Only {unapplied} {payment.currency} of this payment is unapplied.")
    if amount > due:
        raise ValidationError(f"Invoice {invoice} has only {due} {invoice.currency} left to pay.")
    PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=amount)
    if amount == due:
        invoice = invoice_mark_paid(invoice=invoice)
    return invoice
