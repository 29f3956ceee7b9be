"""Payments: recorded in the customer's currency and allocated in full — to the invoices named,
else to the open invoices oldest due date first — the rest on the customer's account; never
beyond what an invoice has open."""

from decimal import Decimal

import pytest
import time_machine

from core.errors import ValidationError
from invoicing.balance import credit_balance
from invoicing.models import Invoice
from invoicing.services import billing_run, invoice_create
from receivables.models import Payment, PaymentAllocation
from receivables.selectors import invoice_amount_due
from receivables.services import payment_apply, payment_on_account, payment_record
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


def pay(customer, amount: str, currency: str = "USD", **kwargs) -> Payment:
    return payment_record(
        customer=customer,
        amount=Decimal(amount),
        currency=currency,
        received_on=day("2026-01-20"),
        **kwargs,
    )


def state(invoice) -> tuple[str, Decimal]:
    invoice.refresh_from_db()
    return invoice.status, invoice_amount_due(invoice)


def test_partial_payments_keep_the_invoice_open_until_it_is_covered(db):
    # Given an open invoice of 100.00
    invoice = open_invoice()
    customer = invoice.customer
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))

    # When 40.00 is paid (applied to the oldest open invoice, the only one)
    pay(customer, "40.00")

    # Then it stays open with 60.00 due
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("60.00"))

    # When 59.99 more is paid, one cent is still due
    pay(customer, "59.99", allocations={invoice: Decimal("59.99")})
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("0.01"))

    # When the last cent is paid, it is paid
    with time_machine.travel("2026-01-25 10:00Z", tick=False):
        pay(customer, "0.01")
    assert state(invoice) == (Invoice.Status.PAID, Decimal("0.00"))
    assert invoice.paid_at.isoformat() == "2026-01-25T10:00:00+00:00"
    assert invoice.paid_amount == Decimal("100.00")
    assert sorted(PaymentAllocation.objects.values_list("amount", flat=True)) == [
        Decimal("0.01"),
        Decimal("40.00"),
        Decimal("59.99"),
    ]
    assert credit_balance(customer) == Decimal("0.00")


def test_money_on_account_applied_in_parts(db):
    # Given a 100.00 payment recorded without applying it: all on account
    invoice = open_invoice()
    payment = pay(invoice.customer, "100.00", auto_apply=False)
    assert payment_on_account(payment) == Decimal("100.00")
    assert credit_balance(invoice.customer) == Decimal("100.00")

    # When it is applied in two parts
    payment_apply(payment=payment, invoice=invoice, amount=Decimal("30.00"))
    assert (state(invoice), payment_on_account(payment)) == (
        (Invoice.Status.FINALIZED, Decimal("70.00")),
        Decimal("70.00"),
    )
    payment_apply(payment=payment, invoice=invoice)  # the rest

    # Then the invoice is paid and nothing is left on account
    assert (state(invoice), payment_on_account(payment)) == (
        (Invoice.Status.PAID, Decimal("0.00")),
        Decimal("0.00"),
    )
    assert credit_balance(invoice.customer) == Decimal("0.00")


def test_overpaying_an_invoice_is_refused_and_nothing_is_written(db):
    # Given an invoice of 100.00 with 40.00 paid
    invoice = open_invoice()
    pay(invoice.customer, "40.00")

    # When a payment of 150.00 names it for more than is open
    with pytest.raises(ValidationError) as caught:
        pay(invoice.customer, "150.00", allocations={invoice: Decimal("60.01")})

    # Then (no payment row, no allocation, no credit)
    assert caught.value.message == f"Invoice {invoice.number} has $60.00 open: $60.01 is more."
    assert Payment.objects.count() == 1
    assert PaymentAllocation.objects.count() == 1
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("60.00"))
    assert credit_balance(invoice.customer) == Decimal("0.00")


def test_a_larger_payment_pays_what_is_due_and_puts_the_rest_on_account(db):
    invoice = open_invoice()

    payment = pay(invoice.customer, "150.00")

    assert state(invoice) == (Invoice.Status.PAID, Decimal("0.00"))
    applied = payment.allocations.filter(invoice__isnull=False)
    assert list(applied.values_list("amount", flat=True)) == [Decimal("100.00")]
    assert payment_on_account(payment) == Decimal("50.00")
    assert credit_balance(invoice.customer) == Decimal("50.00")


def test_applying_more_than_the_payment_is_refused(db):
    invoice = open_invoice()

    with pytest.raises(ValidationError) as caught:
        pay(invoice.customer, "50.00", allocations={invoice: Decimal("50.01")})

    assert caught.value.message == (
        "The amounts to apply add up to $50.01, more than the payment's $50.00."
    )
    assert (Payment.objects.count(), PaymentAllocation.objects.count()) == (0, 0)


def test_applying_more_than_is_on_account_is_refused(db):
    invoice = open_invoice()
    payment = pay(invoice.customer, "50.00", auto_apply=False)

    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=payment, invoice=invoice, amount=Decimal("50.01"))

    assert caught.value.message == (
        "Only $50.00 of this payment is on account and still in the credit balance: $50.01 is more."
    )
    assert PaymentAllocation.objects.count() == 1  # the 50.00 on account
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))


def test_error_messages_show_amounts_in_the_currencys_minor_unit(db):
    # "$100.0000" reads like a different amount to a person; the message should say $100.00
    invoice = open_invoice()
    payment = pay(invoice.customer, "150.00", auto_apply=False)

    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=payment, invoice=invoice, amount=Decimal("150.00"))

    assert caught.value.message == (f"Invoice {invoice.number} has $100.00 open: $150.00 is more.")


@pytest.mark.parametrize("amount", ["0", "-0.01", "-100.00"])
def test_applying_nothing_or_a_negative_amount_is_refused(db, amount):
    invoice = open_invoice()
    payment = pay(invoice.customer, "100.00", auto_apply=False)

    with pytest.raises(ValidationError):
        payment_apply(payment=payment, invoice=invoice, amount=Decimal(amount))

    assert payment.allocations.filter(invoice__isnull=False).count() == 0
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))
    assert payment_on_account(payment) == Decimal("100.00")


@pytest.mark.parametrize("amount", ["-0.01", "-100.00"])
def test_a_negative_explicit_allocation_is_refused(db, amount):
    invoice = open_invoice()

    with pytest.raises(ValidationError):
        pay(invoice.customer, "100.00", allocations={invoice: Decimal(amount)})

    assert (Payment.objects.count(), PaymentAllocation.objects.count()) == (0, 0)


def test_a_paid_invoice_takes_no_more_payments(db):
    # Given a paid invoice
    invoice = open_invoice()
    pay(invoice.customer, "100.00")

    # When a new payment names it
    with pytest.raises(ValidationError) as caught:
        pay(invoice.customer, "10.00", allocations={invoice: Decimal("10.00")})
    assert caught.value.message == f"Invoice {invoice.number} has nothing left to pay."

    # And when money on account is applied to it
    extra = pay(invoice.customer, "10.00")  # nothing open: all on account
    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=extra, invoice=invoice)
    assert caught.value.message == f"Invoice {invoice.number} has nothing left to pay."

    # Then only the first payment is applied to it
    assert invoice.allocations.count() == 1
    assert credit_balance(invoice.customer) == Decimal("10.00")


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

    # When a payment names it, or FIFO looks for open invoices
    with pytest.raises(ValidationError):
        pay(customer, "100.00", allocations={draft: Decimal("100.00")})
    payment = pay(customer, "100.00")

    # Then the draft is untouched: the payment is all on account
    assert draft.allocations.count() == 0
    assert payment_on_account(payment) == Decimal("100.00")
    draft.refresh_from_db()
    assert (draft.status, draft.paid_amount) == (Invoice.Status.DRAFT, Decimal("0"))


def test_a_payment_in_another_currency_is_refused_and_nothing_is_written(db):
    customer = CustomerFactory(currency="USD")

    with pytest.raises(ValidationError) as caught:
        pay(customer, "100.00", currency="EUR")

    assert caught.value.message == (
        f"{customer} is billed in USD: record the payment in USD, not EUR."
    )
    assert Payment.objects.count() == 0


def test_a_payment_in_another_currency_than_the_invoice_is_not_applied(db):
    # Given a USD invoice, then the customer is switched to EUR billing (an editable field)
    invoice = open_invoice()
    customer = invoice.customer
    customer.currency = "EUR"
    customer.save()

    # When a EUR payment is recorded (oldest due first), or names the USD invoice
    payment = pay(customer, "100.00", currency="EUR")
    with pytest.raises(ValidationError):
        pay(customer, "100.00", currency="EUR", allocations={invoice: Decimal("100.00")})
    with pytest.raises(ValidationError):
        payment_apply(payment=payment, invoice=invoice)

    # Then 100 EUR did not settle 100 USD: it is EUR credit on account
    assert invoice.allocations.count() == 0
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))
    assert credit_balance(customer, "EUR") == Decimal("100.00")


def test_a_payment_cannot_be_applied_to_another_customers_invoice(db):
    # Given acme's invoice and globex's money
    invoice = open_invoice(CustomerFactory(external_id="acme"))
    globex = CustomerFactory(external_id="globex")

    # When globex's payment names acme's invoice
    with pytest.raises(ValidationError) as caught:
        pay(globex, "100.00", allocations={invoice: Decimal("100.00")})
    assert caught.value.message == f"Invoice {invoice.number} is not one of {globex}'s."

    # Or globex's money on account is applied to it
    payment = pay(globex, "100.00")
    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=payment, invoice=invoice)
    assert caught.value.message == f"Invoice {invoice.number} belongs to another customer."

    # Then
    assert invoice.allocations.count() == 0
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))
    assert payment_on_account(payment) == Decimal("100.00")


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("10.001", "USD"), ("0.005", "USD"), ("10.5", "JPY"), ("1.0001", "KWD")],
)
def test_a_payment_with_too_many_decimals_is_refused(db, amount, currency):
    customer = CustomerFactory(currency=currency)

    with pytest.raises(ValidationError) as caught:
        pay(customer, amount, currency=currency)

    assert caught.value.message == (
        f"The payment amount ({amount}) has more decimals than {currency} allows."
    )
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

    assert caught.value.message == "The payment amount must be above zero."
    assert Payment.objects.count() == 0


def test_applying_an_amount_with_too_many_decimals_is_refused(db):
    # Given an invoice of 100.00 and 100.00 on account
    invoice = open_invoice()
    payment = pay(invoice.customer, "100.00", auto_apply=False)

    # When a tenth of a cent is applied
    with pytest.raises(ValidationError):
        payment_apply(payment=payment, invoice=invoice, amount=Decimal("0.001"))
    with pytest.raises(ValidationError):
        pay(invoice.customer, "1.00", allocations={invoice: Decimal("0.001")})

    # Then nothing is allocated (else 99.999 would stay due, a debt no USD payment can settle)
    assert invoice.allocations.count() == 0
    assert state(invoice) == (Invoice.Status.FINALIZED, Decimal("100.00"))


def test_a_payment_received_in_the_future_is_refused(db):
    customer = CustomerFactory()

    with (
        time_machine.travel("2026-01-19 12:00Z", tick=False),
        pytest.raises(ValidationError) as caught,
    ):
        pay(customer, "10.00")

    assert caught.value.message == "The payment cannot be received in the future (Jan 20, 2026)."
    assert Payment.objects.count() == 0
