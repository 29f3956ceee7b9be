"""The customer's credit balance and what settles an invoice.

A customer's credit balance is money on their account, in their favour: the sum of their
CreditBalanceEntry rows (append-only). It grows by a payment's cash put on account (receivables),
a credit note beyond what was left to pay on its invoice, and an invoice below zero; it shrinks
when it is applied to an invoice (automatically at finalization, or by finance) and by refunds.

An invoice's open amount is total − credit notes (less what went to the balance) − payments and
credit applied − write-offs (Invoice.open_amount). Every change to those stored sums happens under
the invoice's row lock and ends with invoice_settle, which derives the status: paid when nothing
is open, finalized (open) otherwise. The database refuses an open amount below zero.

Locks, always in this order: a payment, then invoices (by id), then the customer (whose row
guards their credit balance).
"""

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum

from core import clock
from core.errors import Conflict, ValidationError
from core.formatting import format_money
from core.money import exact_sum, round_money
from customers.models import Customer
from invoicing.models import CreditBalanceEntry, CreditNote, Invoice

ZERO = Decimal(0)
SETTLEABLE = (Invoice.Status.FINALIZED, Invoice.Status.PAID)


def credit_balance(customer: Customer, currency: str | None = None) -> Decimal:
    """The customer's credit balance in `currency` (theirs by default) today."""
    currency = str(currency or customer.currency)
    amounts = CreditBalanceEntry.objects.filter(customer=customer, currency=currency)
    return round_money(exact_sum(amounts.values_list("amount", flat=True)), currency)


def credit_balances(customer: Customer | None = None) -> dict[tuple[int, str], Decimal]:
    """{(customer id, currency): balance} for every customer (or one) with a balance other than
    zero."""
    entries = CreditBalanceEntry.objects.order_by()
    if customer is not None:
        entries = entries.filter(customer=customer)
    rows = entries.values_list("customer_id", "currency", "amount")
    sums: dict[tuple[int, str], Decimal] = {}
    for customer_id, currency, amount in rows:
        key = (customer_id, str(currency))
        sums[key] = sums.get(key, ZERO) + amount
    return {key: amount for key, amount in sums.items() if amount}


def invoice_credit_applied(invoice: Invoice) -> Decimal:
    """The customer's credit balance applied to the invoice (at finalization, or by finance),
    net of what was taken back: the invoice's APPLIED entries, negated (0 when none)."""
    amounts = invoice.credit_balance_entries.filter(kind=CreditBalanceEntry.Kind.APPLIED)
    return round_money(-exact_sum(amounts.values_list("amount", flat=True)), invoice.currency)


def lock_customer(customer: Customer | int) -> Customer:
    pk = customer if isinstance(customer, int) else customer.pk
    return Customer.objects.select_for_update().get(pk=pk)


def lock_invoice(invoice: Invoice | int) -> Invoice:
    pk = invoice if isinstance(invoice, int) else invoice.pk
    # of=("self",): the joined customer row is locked after the invoices (lock_customer), not
    # with it.
    return Invoice.objects.select_for_update(of=("self",)).select_related("customer").get(pk=pk)


def invoice_settle(invoice: Invoice, fields: tuple[str, ...] = ()) -> Invoice:
    """Save the invoice's changed sums (`fields`) and its derived status: paid when nothing is
    open, finalized otherwise. The caller holds the invoice's row lock. The database's check
    (invoice_open_not_negative) is the last word on the sums."""
    if invoice.status not in SETTLEABLE:
        raise Conflict(f"Invoice {invoice} is {invoice.get_status_display().lower()}: not open.")
    settled = invoice.open_amount <= 0
    invoice.status = Invoice.Status.PAID if settled else Invoice.Status.FINALIZED
    if settled and invoice.paid_at is None:
        invoice.paid_at = clock.now()
    elif not settled:
        invoice.paid_at = None
    try:
        with transaction.atomic():
            invoice.save(update_fields=[*fields, "status", "paid_at"])
    except IntegrityError as exc:
        raise Conflict(
            f"Invoice {invoice} cannot be settled beyond its total: only "
            f"{format_money(max(invoice.open_amount, ZERO), invoice.currency)} is open."
        ) from exc
    return invoice


def credit_balance_post(
    *,
    customer: Customer,
    currency: str,
    amount: Decimal,
    kind: str,
    effective_on: dt.date,
    invoice: Invoice | None = None,
    credit_note: CreditNote | None = None,
    memo: str = "",
) -> CreditBalanceEntry:
    """Record one movement of the balance. The caller holds the customer's row lock (and checks
    that a negative movement is covered)."""
    if not amount:
        raise ValidationError("A credit balance movement cannot be zero.")
    return CreditBalanceEntry.objects.create(
        customer=customer,
        currency=currency,
        amount=amount,
        kind=kind,
        effective_on=effective_on,
        invoice=invoice,
        credit_note=credit_note,
        memo=memo[:300],
    )


def _apply(invoice: Invoice, amount: Decimal | None, on: dt.date) -> Decimal:
    """Apply the balance to an invoice whose row lock is held; returns what was applied."""
    currency = str(invoice.currency)
    customer = lock_customer(invoice.customer_id)
    available = credit_balance(customer, currency)
    wanted = min(available, invoice.open_amount) if amount is None else amount
    if amount is None and wanted <= 0:
        return ZERO
    if wanted <= 0 or round_money(wanted, currency) != wanted:
        raise ValidationError(
            f"Enter an amount above zero in {currency}, to {currency}'s minor unit."
        )
    if wanted > available:
        raise ValidationError(
            f"{customer} has {format_money(available, currency)} of credit balance: "
            f"{format_money(wanted, currency)} is more."
        )
    if wanted > invoice.open_amount:
        raise ValidationError(
            f"Invoice {invoice} has {format_money(invoice.open_amount, currency)} open: "
            f"{format_money(wanted, currency)} is more."
        )
    credit_balance_post(
        customer=customer,
        currency=currency,
        amount=-wanted,
        kind=CreditBalanceEntry.Kind.APPLIED,
        effective_on=on,
        invoice=invoice,
    )
    invoice.paid_amount += wanted
    invoice_settle(invoice, ("paid_amount",))
    return wanted


def credit_balance_apply(
    *, invoice: Invoice, amount: Decimal | None = None, on: dt.date | None = None
) -> Decimal:
    """Apply the customer's credit balance to an open invoice: `amount`, or as much as both
    allow. Returns what was applied (zero when there is no balance)."""
    with transaction.atomic():
        invoice = lock_invoice(invoice)
        if invoice.status != Invoice.Status.FINALIZED:
            raise Conflict(
                f"Invoice {invoice} is {invoice.get_status_display().lower()}: only an open "
                "invoice takes credit."
            )
        return _apply(invoice, amount, on or clock.today())


def invoice_credit_at_finalization(invoice: Invoice) -> None:
    """At finalization (invoice locked): an invoice below zero goes to the customer's balance
    whole; an invoice with something to pay takes what the balance holds."""
    if invoice.total < 0:
        credit_balance_post(
            customer=lock_customer(invoice.customer_id),
            currency=str(invoice.currency),
            amount=-invoice.total,
            kind=CreditBalanceEntry.Kind.NEGATIVE_INVOICE,
            effective_on=invoice.issue_date,
            invoice=invoice,
        )
        invoice_settle(invoice)
    elif invoice.total > 0:
        _apply(invoice, None, invoice.issue_date)
    else:
        invoice_settle(invoice)


def credit_note_settle(invoice: Invoice, note: CreditNote) -> None:
    """After a credit note raised the invoice's credited amount (invoice locked): what it gives
    beyond what was left to pay goes to the customer's credit balance."""
    beyond = -invoice.open_amount if invoice.total > 0 else ZERO
    fields: tuple[str, ...] = ("credited_amount",)
    # Only money the customer paid can go back to them: not what was written off.
    returnable = invoice.paid_amount - invoice.credit_to_balance
    if beyond > returnable:
        currency = str(invoice.currency)
        raise ValidationError(
            f"Invoice {invoice} has {format_money(invoice.written_off_amount, currency)} written "
            f"off: a credit note can give back at most "
            f"{format_money(note.total - beyond + returnable, currency)} with tax."
        )
    if beyond > 0:
        invoice.credit_to_balance += beyond
        fields += ("credit_to_balance",)
        credit_balance_post(
            customer=lock_customer(invoice.customer_id),
            currency=str(invoice.currency),
            amount=beyond,
            kind=CreditBalanceEntry.Kind.CREDIT_NOTE,
            effective_on=note.issue_date,
            invoice=invoice,
            credit_note=note,
        )
    invoice_settle(invoice, fields)


def credit_balance_take(
    *,
    customer: Customer,
    currency: str,
    amount: Decimal,
    kind: str,
    effective_on: dt.date,
    memo: str = "",
    reclaim: bool = False,
) -> tuple[CreditBalanceEntry, list[Invoice]]:
    """Take `amount` off the customer's balance (a refund, or cash of a reversed payment).

    Without `reclaim` the balance must cover it. With `reclaim` (a bounced payment whose money
    on account was already used), the applications of the balance are taken back from the
    newest invoice first until it does: those invoices open again, and are returned. What the
    balance still cannot cover leaves it below zero: the customer owes it. Returns the entry
    that takes it, and the invoices opened again."""
    with transaction.atomic():
        reopened: list[Invoice] = []
        if reclaim:
            applied = (
                CreditBalanceEntry.objects.filter(
                    customer=customer, currency=currency, kind=CreditBalanceEntry.Kind.APPLIED
                )
                .values("invoice_id")
                .annotate(net=Sum("amount"))
                .order_by("-invoice__issue_date", "-invoice_id")
            )
            candidates = [row["invoice_id"] for row in applied]
            lockable = Invoice.objects.select_for_update().filter(pk__in=candidates)
            locked = {invoice.pk: invoice for invoice in lockable.order_by("pk")}
        customer = lock_customer(customer)
        available = credit_balance(customer, currency)
        if reclaim:
            for invoice_id in candidates:
                if available >= amount:
                    break
                invoice = locked[invoice_id]
                net = -exact_sum(
                    invoice.credit_balance_entries.filter(
                        kind=CreditBalanceEntry.Kind.APPLIED
                    ).values_list("amount", flat=True)
                )
                back = min(net, amount - available, invoice.paid_amount)
                if back <= 0:
                    continue
                credit_balance_post(
                    customer=customer,
                    currency=currency,
                    amount=back,
                    kind=CreditBalanceEntry.Kind.APPLIED,
                    effective_on=effective_on,
                    invoice=invoice,
                    memo=f"Taken back: {memo}"[:300],
                )
                invoice.paid_amount -= back
                invoice_settle(invoice, ("paid_amount",))
                reopened.append(invoice)
                available += back
        elif amount > available:
            raise ValidationError(
                f"{customer} has {format_money(available, currency)} of credit balance: "
                f"{format_money(amount, currency)} is more."
            )
        entry = credit_balance_post(
            customer=customer,
            currency=currency,
            amount=-amount,
            kind=kind,
            effective_on=effective_on,
            memo=memo,
        )
        return entry, reopened
