"""Customer statement: what the customer owed at the start of a date range, every movement in it
with a running balance, and what they owed at its end — in one currency (theirs by default).

The balance is invoices issued minus credit notes issued minus payments received (a payment
counts on the day it is received, applied to invoices or not: unapplied cash lowers the balance).
A void reverses its invoice on the day it is voided: the UTC date of `Invoice.voided_at` (the
date `core.clock.today()` read when it was voided), never before the invoice's issue date. A
balance below zero is credit in the customer's favour.

Every figure comes from one list of dated movements: the opening is the sum of those before
`start`, the closing that plus the movements in the range. So the closing of one statement is the
opening of the next, to the cent, by construction.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string

from core.errors import ValidationError
from core.formatting import format_day, format_money
from core.money import exact_sum, round_money
from customers.models import Customer
from invoicing.models import CreditNote, Invoice
from receivables.models import Payment, Refund, WriteOff

# Order of movements on one day: what is billed first, then what reduces it.
_KIND_ORDER = {
    "invoice": 0,
    "credit_note": 1,
    "void": 2,
    "payment": 3,
    "reversal": 4,
    "write_off": 5,
    "refund": 6,
}


@dataclass(frozen=True)
class StatementLine:
    day: dt.date
    kind: str  # invoice, credit_note, void, payment, reversal, write_off, refund
    reference: str
    description: str
    amount: Decimal  # signed: + what the customer owes more, − what they owe less
    balance: Decimal  # the running balance after this movement
    currency: str

    @property
    def charge(self) -> Decimal | None:
        return self.amount if self.amount >= 0 else None

    @property
    def credit(self) -> Decimal | None:
        return -self.amount if self.amount < 0 else None

    @property
    def balance_shown(self) -> str:
        return balance_shown(self.balance, self.currency)


@dataclass(frozen=True)
class Statement:
    customer: Customer
    currency: str
    start: dt.date
    end: dt.date
    opening: Decimal
    lines: list[StatementLine] = field(default_factory=list)
    closing: Decimal = Decimal(0)

    @property
    def opening_words(self) -> str:
        return balance_words(self.opening, self.currency, on=self.start - dt.timedelta(days=1))

    @property
    def closing_words(self) -> str:
        return balance_words(self.closing, self.currency, on=self.end)

    @property
    def opening_shown(self) -> str:
        return balance_shown(self.opening, self.currency)

    @property
    def closing_shown(self) -> str:
        return balance_shown(self.closing, self.currency)

    @property
    def filename(self) -> str:
        return (
            f"statement-{self.customer.external_id}-{self.start:%Y-%m-%d}-{self.end:%Y-%m-%d}.pdf"
        )


def balance_shown(amount: Decimal, currency: str) -> str:
    """$120.00 owed reads $120.00; a credit of $50.00 reads "$50.00 credit"."""
    if amount < 0:
        return f"{format_money(-amount, currency)} credit"
    return format_money(amount, currency)


def balance_words(amount: Decimal, currency: str, *, on: dt.date) -> str:
    """The balance as a sentence to the customer: owed, nothing, or credit in their favour."""
    if amount > 0:
        return f"You owed {format_money(amount, currency)} on {format_day(on)}."
    if amount < 0:
        return (
            f"You had a credit of {format_money(-amount, currency)} in your favour on "
            f"{format_day(on)}: nothing to pay."
        )
    return f"You owed nothing on {format_day(on)}."


def void_day(invoice: Invoice) -> dt.date:
    """The day a void reverses its invoice: voided_at's UTC date, not before the issue date."""
    voided = invoice.voided_at.astimezone(dt.UTC).date()
    return max(voided, invoice.issue_date)


def _movements(customer: Customer, currency: str, end: dt.date) -> list[tuple]:
    """(day, kind, reference, description, amount) of every movement up to `end`, unordered."""
    moves = []
    invoices = Invoice.objects.filter(
        customer=customer,
        currency=currency,
        issue_date__lte=end,
        status__in=[Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.VOID],
    ).only("number", "issue_date", "due_date", "total", "status", "voided_at")
    for invoice in invoices:
        due = f", due {format_day(invoice.due_date)}" if invoice.due_date else ""
        moves.append(
            (invoice.issue_date, "invoice", invoice.number, f"Invoice{due}", invoice.total)
        )
        if invoice.status == Invoice.Status.VOID and invoice.voided_at is not None:
            day = void_day(invoice)
            if day <= end:
                voided = f"Invoice of {format_day(invoice.issue_date)} voided"
                moves.append((day, "void", invoice.number, voided, -invoice.total))
    notes = CreditNote.objects.filter(
        customer=customer, currency=currency, issue_date__lte=end
    ).select_related("invoice")
    for note in notes:
        moves.append(
            (
                note.issue_date,
                "credit_note",
                note.number,
                f"Credit note on invoice {note.invoice.number}",
                -note.total,
            )
        )
    payments = Payment.objects.filter(customer=customer, currency=currency, received_on__lte=end)
    for payment in payments:
        method = payment.get_method_display()
        moves.append(
            (
                payment.received_on,
                "payment",
                payment.reference or f"Payment #{payment.pk}",
                f"Payment received ({method.lower()})",
                -payment.amount,
            )
        )
        if payment.reversed_on is not None and payment.reversed_on <= end:
            moves.append(
                (
                    payment.reversed_on,
                    "reversal",
                    payment.reference or f"Payment #{payment.pk}",
                    f"Payment of {format_day(payment.received_on)} reversed: "
                    f"{payment.reversal_reason}",
                    payment.amount,
                )
            )
    write_offs = WriteOff.objects.filter(
        invoice__customer=customer, invoice__currency=currency, written_off_on__lte=end
    ).select_related("invoice")
    for write_off in write_offs:
        moves.append(
            (
                write_off.written_off_on,
                "write_off",
                write_off.invoice.number,
                f"Written off: {write_off.reason}",
                -write_off.amount,
            )
        )
    refunds = Refund.objects.filter(customer=customer, currency=currency, refunded_on__lte=end)
    for refund in refunds:
        moves.append(
            (
                refund.refunded_on,
                "refund",
                refund.reference or f"Refund #{refund.pk}",
                f"Refund of your credit balance ({refund.get_method_display().lower()})",
                refund.amount,
            )
        )
    return moves


def customer_statement(
    *, customer: Customer, start: dt.date, end: dt.date, currency: str | None = None
) -> Statement:
    """The statement of `customer` from `start` to `end`, both included."""
    if end < start:
        raise ValidationError(
            f"The statement ends ({format_day(end)}) before it starts ({format_day(start)}): "
            "pick an end date on or after the start date."
        )
    currency = str(currency or customer.currency)
    moves = _movements(customer, currency, end)
    opening = round_money(exact_sum(m[4] for m in moves if m[0] < start), currency)
    in_range = sorted(
        (m for m in moves if m[0] >= start),
        key=lambda m: (m[0], _KIND_ORDER[m[1]], m[2]),
    )
    lines, balance = [], opening
    for day, kind, reference, description, amount in in_range:
        balance = round_money(balance + amount, currency)
        lines.append(StatementLine(day, kind, reference, description, amount, balance, currency))
    return Statement(customer, currency, start, end, opening, lines, balance)


def last_full_month(today: dt.date) -> tuple[dt.date, dt.date]:
    """The calendar month before `today`'s: (first day, last day)."""
    end = today.replace(day=1) - dt.timedelta(days=1)
    return end.replace(day=1), end


def statement_html(statement: Statement) -> str:
    return render_to_string(
        "receivables/statement_pdf.html",
        {"statement": statement, "company": settings.BILLING_COMPANY},
    )


def statement_pdf(statement: Statement) -> bytes:
    from weasyprint import HTML  # loaded when a PDF is made

    return HTML(string=statement_html(statement)).write_pdf()


def statement_email(statement: Statement) -> str:
    """Email the statement (PDF attached) to the customer's billing email; returns the address."""
    customer = statement.customer
    if not customer.billing_email:
        raise ValidationError(
            f"{customer} has no billing email: Finance sets it on the customer's page first."
        )
    message = EmailMessage(
        subject=(
            f"Statement from {settings.BILLING_COMPANY['name']}: "
            f"{format_day(statement.start)} to {format_day(statement.end)}"
        ),
        body=(
            f"Hello {customer.name},\n\n"
            f"Your statement from {format_day(statement.start)} to {format_day(statement.end)} "
            f"is attached. {statement.closing_words}\n"
        ),
        from_email=settings.BILLING_COMPANY["email"],
        to=[customer.billing_email],
    )
    message.attach(statement.filename, statement_pdf(statement), "application/pdf")
    message.send()
    return customer.billing_email
