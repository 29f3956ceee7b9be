"""Payments: recorded in the customer's currency, applied to open invoices, never beyond the due."""

from decimal import Decimal

import pytest
import time_machine

from core.errors import ValidationError
from invoicing.models import Invoice
from invoicing.services import billing_run, invoice_create
from receivables.models import Payment, PaymentAllocation
from receivables.selectors import invoice_amount_due, payment_unapplied
from receivables.services import payment_apply, payment_record
from subscriptions.models import BillingPeriod
from tests.factories import ChargeFactory, CustomerFactory, PlanFactory, day, subscribe


def open_invoice(customer=None, *, fee="100.00", currency="USD") -> Invoice:
    """A finalized invoice of one fixed fee (no tax), billed on 2026-01-15."""
    customer = customer or CustomerFactory(currency=currency)
    plan = PlanFactory(currency=currency)
    ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal(fee))
    subscribe(customer=customer, plan=plan, external_id=f"sub_{customer.external_id}")
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        (invoice,) = [i for i in billing_run().invoices if i.customer_id == customer.pk]
    return invoice


def pay(customer, amount: str, currency: str = "USD") -> Payment:
    return payment_record(
        customer=customer, amount=Decimal(amount), currency=currency, received_on=day("2026-01-20")
    )


def state(invoice) -> tuple[str, Decimal]:
    invoice.refresh_from_db()
    return invoice.status, invoice_amount_due(invoice)


def test_partial_payments_keep_the_invoice_open_until_it_is_covered(db):
    # Given an open invoice of 100.00
    invoice = open_invoice()
    customer = invoice.customer
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))

    # When 40.00 is paid
    returned = payment_apply(payment=pay(customer, "40.00"), invoice=invoice)

    # Then it stays open with 60.00 due
    assert returned.status == Invoice.Status.FINALIZED
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("60.00"))

    # When 59.99 more is paid, one cent is still due
    payment_apply(payment=pay(customer, "59.99"), invoice=invoice)
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("0.01"))

    # When the last cent is paid, it is paid
    with time_machine.travel("2026-01-25 10:00Z", tick=False):
        returned = payment_apply(payment=pay(customer, "0.01"), invoice=invoice)
    assert returned.status == Invoice.Status.PAID
    assert state(invoice) == (Invoice.Status.PAID, Decimal("0.00"))
    assert invoice.paid_at.isoformat() == "2026-01-25T10:00:00+00:00"
    assert sorted(PaymentAllocation.objects.values_list("amount", flat=True)) == [
        Decimal("0.01"),
        Decimal("40.00"),
        Decimal("59.99"),
    ]


def test_one_payment_applied_in_parts(db):
    # Given a 100.00 payment
    invoice = open_invoice()
    payment = pay(invoice.customer, "100.00")

    # When it is applied in two parts
    payment_apply(payment=payment, invoice=invoice, amount=Decimal("30.00"))
    assert (state(invoice), payment_unapplied(payment)) == (
        (Invoice.Status.FINALIZED, Decimal("70.00")),
        Decimal("70.00"),
    )
    payment_apply(payment=payment, invoice=invoice)  # the rest

    # Then
    assert (state(invoice), payment_unapplied(payment)) == (
        (Invoice.Status.PAID, Decimal("0.00")),
        Decimal("0.00"),
    )


def test_overpaying_an_invoice_is_refused_and_nothing_is_written(db):
    # Given an invoice of 100.00 with 40.00 paid, and a payment of 150.00
    invoice = open_invoice()
    payment_apply(payment=pay(invoice.customer, "40.00"), invoice=invoice)
    payment = pay(invoice.customer, "150.00")

    # When more than what is due is applied
    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=payment, invoice=invoice, amount=Decimal("60.01"))

    # Then
    assert caught.value.message.startswith(f"Invoice {invoice.number} has only 60.00")
    assert caught.value.message.endswith(" USD left to pay.")
    assert PaymentAllocation.objects.count() == 1
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("60.00"))
    assert payment_unapplied(payment) == Decimal("150.00")


def test_applying_a_larger_payment_without_an_amount_takes_only_what_is_due(db):
    invoice = open_invoice()
    payment = pay(invoice.customer, "150.00")

    payment_apply(payment=payment, invoice=invoice)

    assert state(invoice) == (Invoice.Status.PAID, Decimal("0.00"))
    assert list(PaymentAllocation.objects.values_list("amount", flat=True)) == [Decimal("100.00")]
    assert payment_unapplied(payment) == Decimal("50.00")


def test_applying_more_than_the_payment_is_refused(db):
    invoice = open_invoice()
    payment = pay(invoice.customer, "50.00")

    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=payment, invoice=invoice, amount=Decimal("50.01"))

    assert caught.value.message.startswith("Only 50.00")
    assert caught.value.message.endswith(" USD of this payment is unapplied.")
    assert PaymentAllocation.objects.count() == 0


def test_error_messages_show_amounts_in_the_currencys_minor_unit(db):
    # "100.0000 USD" reads like a different amount to a person; the message should say 100.00
    invoice = open_invoice()
    payment = pay(invoice.customer, "150.00")

    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=payment, invoice=invoice, amount=Decimal("150.00"))

    assert caught.value.message == f"Invoice {invoice.number} has only 100.00 USD left to pay."


@pytest.mark.parametrize("amount", ["0", "-0.01", "-100.00"])
def test_applying_nothing_or_a_negative_amount_is_refused(db, amount):
    invoice = open_invoice()
    payment = pay(invoice.customer, "100.00")

    with pytest.raises(ValidationError):
        payment_apply(payment=payment, invoice=invoice, amount=Decimal(amount))

    assert PaymentAllocation.objects.count() == 0
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))


def test_a_paid_invoice_takes_no_more_payments(db):
    invoice = open_invoice()
    payment_apply(payment=pay(invoice.customer, "100.00"), invoice=invoice)
    extra = pay(invoice.customer, "10.00")

    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=extra, invoice=invoice)

    assert caught.value.message == (
        f"Invoice {invoice.number} is paid: only open invoices take payments."
    )
    assert PaymentAllocation.objects.count() == 1


def test_a_draft_invoice_takes_no_payment(db):
    # Given a draft (not finalized) invoice
    customer = CustomerFactory()
    plan = PlanFactory()
    ChargeFactory(plan=plan, unit_price=Decimal("100"))
    subscription = subscribe(customer=customer, plan=plan)
    period = BillingPeriod.objects.get(subscription=subscription, sequence=0)
    draft = invoice_create(
        subscription=subscription,
        billing_date=period.start_date,
        advance=period,
        arrears=None,
    )
    payment = pay(customer, "100.00")

    with pytest.raises(ValidationError):
        payment_apply(payment=payment, invoice=draft)

    assert PaymentAllocation.objects.count() == 0
    draft.refresh_from_db()
    assert draft.status == Invoice.Status.DRAFT


def test_a_payment_in_another_currency_is_refused_and_nothing_is_written(db):
    customer = CustomerFactory(currency="USD")

    with pytest.raises(ValidationError) as caught:
        pay(customer, "100.00", currency="EUR")

    assert caught.value.message == (
        f"{customer} is billed in USD; record the payment in that currency."
    )
    assert Payment.objects.count() == 0


def test_a_payment_in_another_currency_than_the_invoice_is_not_applied(db):
    # Given a USD invoice, then the customer is switched to EUR billing (an editable field)
    invoice = open_invoice()
    customer = invoice.customer
    customer.currency = "EUR"
    customer.save()
    payment = pay(customer, "100.00", currency="EUR")

    # When the EUR payment is applied to the USD invoice
    with pytest.raises(ValidationError):
        payment_apply(payment=payment, invoice=invoice)

    # Then 100 EUR did not settle 100 USD
    assert PaymentAllocation.objects.count() == 0
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))


def test_a_payment_cannot_be_applied_to_another_customers_invoice(db):
    # Given acme's invoice and globex's payment
    invoice = open_invoice(CustomerFactory(external_id="acme"))
    payment = pay(CustomerFactory(external_id="globex"), "100.00")

    # When
    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=payment, invoice=invoice)

    # Then
    assert caught.value.message == (
        f"Invoice {invoice.number} belongs to another customer than this payment."
    )
    assert PaymentAllocation.objects.count() == 0
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))
    assert payment_unapplied(payment) == Decimal("100.00")


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("10.001", "USD"), ("0.005", "USD"), ("10.5", "JPY"), ("1.0001", "KWD")],
)
def test_a_payment_with_too_many_decimals_is_refused(db, amount, currency):
    customer = CustomerFactory(currency=currency)

    with pytest.raises(ValidationError) as caught:
        pay(customer, amount, currency=currency)

    assert caught.value.message == f"{amount} has more decimals than {currency} allows."
    assert Payment.objects.count() == 0


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("10.01", "USD"), ("10.10", "USD"), ("10", "USD"), ("10", "JPY"), ("10.001", "KWD")],
)
def test_a_payment_within_the_currencys_decimals_is_recorded(db, amount, currency):
    customer = CustomerFactory(currency=currency)

    payment = pay(customer, amount, currency=currency)

    payment.refresh_from_db()
    assert (payment.amount, payment.currency) == (Decimal(amount), currency)


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00"])
def test_a_payment_must_be_positive(db, amount):
    with pytest.raises(ValidationError) as caught:
        pay(CustomerFactory(), amount)

    assert caught.value.message == "A payment amount must be positive."
    assert Payment.objects.count() == 0


def test_applying_an_amount_with_too_many_decimals_is_refused(db):
    # Given an invoice of 100.00 and a payment of 100.00
    invoice = open_invoice()
    payment = pay(invoice.customer, "100.00")

    # When a tenth of a cent is applied
    with pytest.raises(ValidationError):
        payment_apply(payment=payment, invoice=invoice, amount=Decimal("0.001"))

    # Then nothing is allocated (else 99.999 would stay due, a debt no USD payment can settle)
    assert PaymentAllocation.objects.count() == 0
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))
