"""Cash application: payments, allocations, reversals, refunds and write-offs.

Every write runs in a transaction and keeps the invoice's stored sums (Invoice.paid_amount,
written_off_amount) under its row lock, ending with invoicing.balance.invoice_settle, which
derives the invoice's status; the database refuses an open amount below zero. Locks in this
order: the payment, its invoices (by id), the customer (their credit balance).

A payment is always allocated in full: to invoices (explicitly, or oldest due date first) and
the rest on account, in the customer's credit balance, which their next invoices take at
finalization.
"""

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction

from core import clock
from core.errors import Conflict, ValidationError
from core.formatting import format_money
from core.money import exact_sum, round_money
from customers.models import Customer
from invoicing.balance import (
    credit_balance,
    credit_balance_post,
    credit_balance_take,
    invoice_settle,
    lock_customer,
)
from invoicing.models import CreditBalanceEntry, Invoice
from receivables.models import Payment, PaymentAllocation, Refund, WriteOff


def _check_amount(amount, currency: str, what: str) -> None:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValidationError(f"{what} must be above zero.")
    if round_money(amount, currency) != amount:
        raise ValidationError(f"{what} ({amount}) has more decimals than {currency} allows.")


def _check_day(day: dt.date, what: str, *, not_before: dt.date | None = None) -> dt.date:
    """A document's date: not in the future, and not before `not_before` (what it follows)."""
    if day > clock.today():
        raise ValidationError(f"{what} cannot be in the future ({day:%b %-d, %Y}).")
    if not_before is not None and day < not_before:
        raise ValidationError(
            f"{what} ({day:%b %-d, %Y}) cannot be before {not_before:%b %-d, %Y}."
        )
    return day


def payment_validate(*, customer: Customer, amount: Decimal, currency: str) -> None:
    if str(currency) != str(customer.currency):
        raise ValidationError(
            f"{customer} is billed in {customer.currency}: record the payment in "
            f"{customer.currency}, not {currency}."
        )
    _check_amount(amount, str(currency), "The payment amount")


def open_invoices(customer: Customer, currency: str | None = None):
    """The customer's invoices with something to pay (in `currency`, theirs by default), oldest
    due date first."""
    currency = str(currency or customer.currency)
    return Invoice.objects.filter(
        customer=customer, currency=currency, status=Invoice.Status.FINALIZED
    ).order_by("due_date", "id")


def _check_currency(invoice: Invoice, currency: str) -> None:
    if str(invoice.currency) != currency:
        raise ValidationError(
            f"Invoice {invoice} is in {invoice.currency}: a payment in {currency} cannot pay it."
        )


def _row(
    payment, amount, *, on, invoice=None, credit_entry=None, by=None, reverses=None, reason=""
):
    """One signed allocation row of the payment: to an invoice, or on account (credit_entry)."""
    PaymentAllocation.objects.create(
        payment=payment,
        invoice=invoice,
        credit_entry=credit_entry,
        amount=amount,
        applied_on=on,
        reverses=reverses,
        reason=reason[:300],
        created_by=by,
    )


def _allocate(payment, invoice, amount, *, on, by=None, reverses=None, reason="") -> None:
    """Move `amount` (signed) of the payment to or from an invoice whose row lock is held."""
    _row(payment, amount, on=on, invoice=invoice, by=by, reverses=reverses, reason=reason)
    invoice.paid_amount += amount
    invoice_settle(invoice, ("paid_amount",))


def _on_account(payment, amount, *, on, by=None, reverses=None, reason="") -> None:
    """Move `amount` (signed) of the payment to or from the customer's credit balance; the
    caller holds the customer's row lock."""
    entry = credit_balance_post(
        customer=payment.customer,
        currency=str(payment.currency),
        amount=amount,
        kind=CreditBalanceEntry.Kind.PAYMENT,
        effective_on=on,
        memo=f"Payment {payment.reference or payment.pk}",
    )
    _row(payment, amount, on=on, credit_entry=entry, by=by, reverses=reverses, reason=reason)


# Locks take `of=("self",)` where a query joins the customer: PostgreSQL would lock the joined
# customer row too, ahead of the invoices, against the lock order (a deadlock with a payment
# that holds an invoice and waits for the customer).


def _lock_invoices(customer: Customer, ids) -> dict[int, Invoice]:
    rows = Invoice.objects.select_for_update().filter(customer=customer, pk__in=list(ids))
    return {invoice.pk: invoice for invoice in rows.order_by("pk")}


def payment_record(
    *,
    customer: Customer,
    amount: Decimal,
    currency: str,
    received_on: dt.date,
    method: str = Payment.Method.BANK_TRANSFER,
    reference: str = "",
    allocations: dict[Invoice | int, Decimal] | None = None,
    auto_apply: bool = True,
    idempotency_key: str | None = None,
    created_by=None,
) -> Payment:
    """Record a payment and allocate all of it: to `allocations` (invoice → amount) when given,
    else to the customer's open invoices oldest due date first (unless `auto_apply` is off); the
    rest goes on account. With an `idempotency_key`, a repeated call returns the payment the
    first one recorded (the same figures are required), marked `replayed`."""
    currency = str(currency)
    payment_validate(customer=customer, amount=amount, currency=currency)
    if received_on > clock.today():
        raise ValidationError(
            f"The payment cannot be received in the future ({received_on:%b %-d, %Y})."
        )
    if idempotency_key:
        earlier = Payment.objects.filter(idempotency_key=idempotency_key).first()
        if earlier is not None:
            return _replayed(earlier, customer, amount, currency, received_on)
    wanted = {(i if isinstance(i, int) else i.pk): a for i, a in (allocations or {}).items()}
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                customer=customer,
                amount=amount,
                currency=currency,
                received_on=received_on,
                method=method,
                reference=reference[:200],
                idempotency_key=idempotency_key or None,
                created_by=created_by,
            )
            _distribute(payment, wanted, auto_apply=auto_apply, by=created_by)
    except IntegrityError:
        earlier = Payment.objects.filter(idempotency_key=idempotency_key).first()
        if idempotency_key and earlier is not None:  # the same request, at the same time
            return _replayed(earlier, customer, amount, currency, received_on)
        raise
    return payment


def _replayed(payment, customer, amount, currency, received_on) -> Payment:
    same = (payment.customer_id, payment.amount, str(payment.currency), payment.received_on)
    if same != (customer.pk, amount, currency, received_on):
        raise Conflict(
            "This idempotency key was used for another payment "
            f"({payment}): use a new key for a new payment."
        )
    payment.replayed = True  # what the API answers with 200, not 201
    return payment


def _distribute(payment: Payment, wanted: dict[int, Decimal], *, auto_apply: bool, by) -> None:
    currency = str(payment.currency)
    on = payment.received_on
    if wanted:
        invoices = _lock_invoices(payment.customer, wanted)
        plan = []
        for invoice_id, amount in wanted.items():
            invoice = invoices.get(invoice_id)
            if invoice is None:
                other = Invoice.objects.filter(pk=invoice_id).first()
                raise ValidationError(
                    f"Invoice {other or invoice_id} is not one of {payment.customer}'s."
                )
            if not amount:
                continue
            _check_amount(amount, currency, f"The amount applied to {invoice}")
            if invoice.status != Invoice.Status.FINALIZED:
                raise ValidationError(f"Invoice {invoice} has nothing left to pay.")
            _check_currency(invoice, currency)
            if amount > invoice.open_amount:
                raise ValidationError(
                    f"Invoice {invoice} has {format_money(invoice.open_amount, currency)} open: "
                    f"{format_money(amount, currency)} is more."
                )
            plan.append((invoice, amount))
        total = exact_sum(a for _, a in plan)
        if total > payment.amount:
            raise ValidationError(
                f"The amounts to apply add up to {format_money(total, currency)}, more than the "
                f"payment's {format_money(payment.amount, currency)}."
            )
    elif auto_apply:
        ids = open_invoices(payment.customer, currency).values_list("pk", flat=True)
        invoices = _lock_invoices(payment.customer, ids)
        ordered = sorted(invoices.values(), key=lambda i: (i.due_date, i.pk))
        plan, left = [], payment.amount
        for invoice in ordered:
            take = min(left, invoice.open_amount)
            if take > 0:
                plan.append((invoice, take))
                left -= take
    else:
        plan = []
    lock_customer(payment.customer)
    for invoice, amount in plan:
        if invoice.issue_date > on:
            # Money received before its invoice was issued (recorded late): on account from the
            # day it came, applied on the day the invoice was issued.
            _on_account(payment, amount, on=on, by=by)
            _on_account(
                payment, -amount, on=invoice.issue_date, by=by, reason=f"Applied to {invoice}"
            )
        _allocate(payment, invoice, amount, on=max(on, invoice.issue_date), by=by)
    rest = payment.amount - exact_sum(a for _, a in plan)
    if rest > 0:
        _on_account(payment, rest, on=on, by=by)


def payment_on_account(payment: Payment) -> Decimal:
    """What of the payment sits on the customer's account (not applied to an invoice)."""
    rows = payment.allocations.filter(invoice__isnull=True).values_list("amount", flat=True)
    return round_money(exact_sum(rows), str(payment.currency))


def payment_apply(
    *, payment: Payment, invoice: Invoice, amount: Decimal | None = None, by=None
) -> Invoice:
    """Apply money of the payment that is on account to an open invoice (`amount`, or as much as
    both allow). The customer's credit balance must still hold it."""
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update(of=("self",))
            .select_related("customer")
            .get(pk=payment.pk)
        )
        if payment.reversed_on:
            raise Conflict(f"This payment was reversed on {payment.reversed_on:%b %-d, %Y}.")
        if invoice.customer_id != payment.customer_id:
            raise ValidationError(f"Invoice {invoice} belongs to another customer.")
        invoice = _lock_invoices(payment.customer, [invoice.pk])[invoice.pk]
        if invoice.status != Invoice.Status.FINALIZED:
            raise ValidationError(f"Invoice {invoice} has nothing left to pay.")
        currency = str(payment.currency)
        _check_currency(invoice, currency)
        customer = lock_customer(payment.customer)
        available = min(payment_on_account(payment), credit_balance(customer, currency))
        if amount is None:
            amount = min(available, invoice.open_amount)
            if amount <= 0:
                raise ValidationError(
                    "Nothing to apply: nothing of this payment is on account, or the invoice "
                    "is paid."
                )
        _check_amount(amount, currency, "The amount to apply")
        if amount > available:
            raise ValidationError(
                f"Only {format_money(available, currency)} of this payment is on account and "
                f"still in the credit balance: {format_money(amount, currency)} is more."
            )
        if amount > invoice.open_amount:
            raise ValidationError(
                f"Invoice {invoice} has {format_money(invoice.open_amount, currency)} open: "
                f"{format_money(amount, currency)} is more."
            )
        today = clock.today()
        _on_account(payment, -amount, on=today, by=by, reason=f"Applied to {invoice}")
        _allocate(payment, invoice, amount, on=today, by=by)
        return invoice


def allocation_net(allocation: PaymentAllocation) -> Decimal:
    """What of an allocation still stands (its amount less the rows that took it back)."""
    back = allocation.reversals.values_list("amount", flat=True)
    return allocation.amount + exact_sum(back)


def allocation_unapply(*, allocation: PaymentAllocation, reason: str, by=None) -> Invoice:
    """Take a payment's application off an invoice (applied to the wrong one): the invoice opens
    again and the money goes on account, in the customer's credit balance."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the payment is un-applied (the reason is required).")
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update(of=("self",))
            .select_related("customer")
            .get(pk=allocation.payment_id)
        )
        if allocation.invoice_id is None or allocation.amount < 0:
            raise ValidationError("Only an application of a payment to an invoice is un-applied.")
        invoice = _lock_invoices(payment.customer, [allocation.invoice_id])[allocation.invoice_id]
        net = allocation_net(allocation)
        if net <= 0:
            raise Conflict(f"This application to {invoice} was already taken back.")
        today = clock.today()
        _allocate(payment, invoice, -net, on=today, by=by, reverses=allocation, reason=reason)
        lock_customer(payment.customer)
        _on_account(payment, net, on=today, by=by, reason=f"Un-applied from {invoice}: {reason}")
        return invoice


def payment_reverse(
    *, payment: Payment, reason: str, on: dt.date | None = None, by=None
) -> list[Invoice]:
    """A payment that did not happen after all (a bounced transfer): every invoice it paid opens
    again, and what it put on account leaves the credit balance (if that money was already
    applied to invoices, those applications are taken back, newest first). Returns the invoices
    opened again."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the payment is reversed (the reason is required).")
    on = _check_day(on or clock.today(), "The reversal")
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update(of=("self",))
            .select_related("customer")
            .get(pk=payment.pk)
        )
        if payment.reversed_on:
            raise Conflict(
                f"This payment was already reversed on {payment.reversed_on:%b %-d, %Y}."
            )
        if on < payment.received_on:
            raise ValidationError("A payment cannot be reversed before it was received.")
        rows = list(payment.allocations.filter(amount__gt=0, invoice__isnull=False))
        invoices = _lock_invoices(payment.customer, {row.invoice_id for row in rows})
        reopened = []
        for row in rows:
            net = allocation_net(row)
            if net > 0:
                invoice = invoices[row.invoice_id]
                _allocate(payment, invoice, -net, on=on, by=by, reverses=row, reason=reason)
                reopened.append(invoice)
        on_account = payment_on_account(payment)
        if on_account > 0:
            entry, taken_back = credit_balance_take(
                customer=payment.customer,
                currency=str(payment.currency),
                amount=on_account,
                kind=CreditBalanceEntry.Kind.PAYMENT,
                effective_on=on,
                memo=f"Payment {payment.reference or payment.pk} reversed: {reason}",
                reclaim=True,
            )
            reopened += taken_back
            _row(payment, -on_account, on=on, credit_entry=entry, by=by, reason=reason)
        payment.reversed_on, payment.reversal_reason = on, reason[:300]
        payment.save(update_fields=["reversed_on", "reversal_reason"])
        return reopened


def refund_record(
    *,
    customer: Customer,
    amount: Decimal,
    refunded_on: dt.date | None = None,
    method: str = Payment.Method.BANK_TRANSFER,
    reference: str = "",
    reason: str = "",
    by=None,
) -> Refund:
    """Pay back (part of) the customer's credit balance."""
    currency = str(customer.currency)
    _check_amount(amount, currency, "The refund")
    refunded_on = _check_day(refunded_on or clock.today(), "The refund")
    with transaction.atomic():
        entry, _ = credit_balance_take(
            customer=customer,
            currency=currency,
            amount=amount,
            kind=CreditBalanceEntry.Kind.REFUND,
            effective_on=refunded_on,
            memo=f"Refund {reference}".strip(),
        )
        return Refund.objects.create(
            customer=customer,
            amount=amount,
            currency=currency,
            refunded_on=refunded_on,
            method=method,
            reference=reference[:200],
            reason=reason[:300],
            credit_entry=entry,
            created_by=by,
        )


def invoice_write_off(
    *,
    invoice: Invoice,
    reason: str,
    amount: Decimal | None = None,
    on: dt.date | None = None,
    by=None,
) -> WriteOff:
    """Write off what is left open on an invoice (or `amount` of it) as bad debt."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the invoice is written off (the reason is required).")
    with transaction.atomic():
        invoice = _lock_invoices(invoice.customer, [invoice.pk])[invoice.pk]
        currency = str(invoice.currency)
        if invoice.status != Invoice.Status.FINALIZED:
            raise ValidationError(f"Invoice {invoice} has nothing left to write off.")
        on = _check_day(on or clock.today(), "The write-off", not_before=invoice.issue_date)
        amount = invoice.open_amount if amount is None else amount
        _check_amount(amount, currency, "The amount written off")
        if amount > invoice.open_amount:
            raise ValidationError(
                f"Invoice {invoice} has {format_money(invoice.open_amount, currency)} open: "
                f"{format_money(amount, currency)} is more."
            )
        write_off = WriteOff.objects.create(
            invoice=invoice,
            amount=amount,
            written_off_on=on,
            reason=reason[:300],
            created_by=by,
        )
        invoice.written_off_amount += amount
        invoice_settle(invoice, ("written_off_amount",))
        return write_off
