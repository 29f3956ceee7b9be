"""Corrections of finalized invoices: credit notes and voids. A finalized invoice is never edited.

Credit note: corrects a finalized or paid invoice in full, by line, or by an amount with a
reason. It keeps the invoice's tax rate: tax is computed on the credit note's rounded subtotal
and rounded once, as on invoices. Its number comes from its own gapless series (CN-000001), taken
from the same locked counter as invoice numbers. The invoice's `credited_amount` (the sum of its
credit notes' totals) is raised under the invoice's row lock, and the database refuses it above
the invoice's total (invoice_credited_within_total), so two credit notes issued at once can never
credit more than was invoiced. What it credits beyond what was left to pay (a paid invoice) goes
to the customer's credit balance (invoicing.balance), applied to their next invoices.

Void: an open invoice with no payment and no credit note can be voided with a reason. It keeps its
number (the series has no gap) and says VOID; it no longer counts as billing its date, so the next
billing run bills that date again, and the prepaid credit it drew is given back.
"""

import logging
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction

from core import clock
from core.errors import Conflict, ValidationError
from core.formatting import format_money
from core.money import exact_sum, round_money
from invoicing.balance import credit_note_settle, lock_invoice
from invoicing.models import CreditNote, CreditNoteLine, CreditUse, Invoice, InvoiceLine
from invoicing.numbering import next_number
from subscriptions.models import SubscriptionChange
from subscriptions.services import prepaid_credit_give_back

logger = logging.getLogger(__name__)

CREDIT_NOTE_SERIES = "CN"
CREDITABLE = (Invoice.Status.FINALIZED, Invoice.Status.PAID)


def line_uncredited(line: InvoiceLine) -> Decimal:
    """What is left to credit on an invoice line: its amount minus what credit notes gave back."""
    return line.amount - exact_sum(line.credits.values_list("amount", flat=True))


def credit_note_issue(
    *,
    invoice: Invoice,
    full: bool = False,
    lines: dict[int, Decimal] | None = None,
    amount: Decimal | None = None,
    reason: str = "",
    issued_by=None,
    change: SubscriptionChange | None = None,
) -> CreditNote:
    """Issue a credit note on a finalized or paid invoice: `full`, or `lines` (invoice line id →
    amount to credit, each at most what is left on that line), or `amount` (before tax) with a
    `reason`. Locks the invoice, numbers the note, and emails it to the customer on commit.
    `change`: the cancellation the note settles (invoicing.cancellations), kept on the note."""
    reason = (reason or "").strip()
    if sum((full, lines is not None, amount is not None)) != 1:
        raise ValidationError("Choose one way to credit: in full, by line, or an amount.")
    with transaction.atomic():
        invoice = lock_invoice(invoice)
        if invoice.status not in CREDITABLE:
            raise Conflict(
                f"Invoice {invoice} is {invoice.get_status_display().lower()}: only a finalized "
                "or paid invoice takes a credit note."
            )
        currency = str(invoice.currency)
        invoice_lines = {line.pk: line for line in invoice.lines.all()}
        if full:
            if invoice.credited_amount:
                left = format_money(invoice.total - invoice.credited_amount, currency)
                raise ValidationError(
                    f"Invoice {invoice} already has credit notes: credit what is left ({left}) "
                    "by line or as an amount."
                )
            credits = [(line, line.amount, line.description) for line in invoice_lines.values()]
            kind = CreditNote.Kind.FULL
        elif lines is not None:
            credits = []
            for line_id, wanted in lines.items():
                line = invoice_lines.get(int(line_id))
                if line is None:
                    raise ValidationError(f"Line {line_id} is not on invoice {invoice}.")
                if not wanted:
                    continue
                _check_amount(wanted, currency, f"The credit on “{line.description}”")
                left = line_uncredited(line)
                if wanted > left:
                    raise ValidationError(
                        f"“{line.description}” has {format_money(max(left, Decimal(0)), currency)}"
                        f" left to credit: {format_money(wanted, currency)} is more."
                    )
                credits.append((line, wanted, line.description))
            if not credits:
                raise ValidationError("Enter an amount to credit on at least one line.")
            kind = CreditNote.Kind.LINES
        else:
            if not reason:
                raise ValidationError("Say why this amount is credited (the reason is required).")
            _check_amount(amount, currency, "The amount to credit")
            credits = [(None, amount, reason[:300])]
            kind = CreditNote.Kind.AMOUNT
        subtotal = exact_sum(credited for _, credited, _ in credits)
        tax_amount = round_money(subtotal * invoice.tax_rate / 100, currency)
        total = subtotal + tax_amount
        if total <= 0:
            raise ValidationError("A credit note must credit more than zero.")
        left = invoice.total - invoice.credited_amount
        if total > left:
            raise ValidationError(
                f"Invoice {invoice} has {format_money(left, currency)} left to credit "
                f"(total {format_money(invoice.total, currency)}); this credit note would be "
                f"{format_money(total, currency)} with tax."
            )
        note = CreditNote.objects.create(
            invoice=invoice,
            customer=invoice.customer,
            number=next_number(CREDIT_NOTE_SERIES),
            kind=kind,
            reason=reason,
            currency=currency,
            issue_date=clock.today(),
            subtotal=subtotal,
            tax_rate=invoice.tax_rate,
            tax_amount=tax_amount,
            total=total,
            issued_by=issued_by,
            change=change,
        )
        CreditNoteLine.objects.bulk_create(
            CreditNoteLine(
                credit_note=note,
                invoice_line=line,
                description=description,
                amount=credited,
                position=i,
            )
            for i, (line, credited, description) in enumerate(credits)
        )
        invoice.credited_amount += total
        # Beyond what was left to pay (a paid invoice): to the customer's credit balance.
        credit_note_settle(invoice, note)
        transaction.on_commit(lambda: _email_credit_note(note.pk))
    return note


def _check_amount(amount, currency: str, what: str) -> None:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValidationError(f"{what} must be above zero.")
    if round_money(amount, currency) != amount:
        raise ValidationError(f"{what} ({amount}) has more decimals than {currency} allows.")


def _email_credit_note(credit_note_id: int) -> None:
    from invoicing.pdf import credit_note_pdf  # WeasyPrint: loaded when a PDF is made

    note = CreditNote.objects.select_related("customer", "invoice").get(pk=credit_note_id)
    if not note.customer.billing_email:
        logger.warning("credit note %s not emailed: %s has no billing email", note, note.customer)
        return
    message = EmailMessage(
        subject=f"Credit note {note.number} from {settings.BILLING_COMPANY['name']}",
        body=(
            f"Hello {note.customer.name},\n\n"
            f"Credit note {note.number} credits {format_money(note.total, note.currency)} "
            f"on invoice {note.invoice.number}. It is attached, and in your billing portal.\n"
        ),
        from_email=settings.BILLING_COMPANY["email"],
        to=[note.customer.billing_email],
    )
    message.attach(f"{note.number}.pdf", credit_note_pdf(note), "application/pdf")
    message.send(fail_silently=True)


def invoice_void(*, invoice: Invoice, reason: str, voided_by=None) -> Invoice:
    """Void an open invoice that has no payment and no credit note. Its number stays used; the
    prepaid credit it drew is given back; its billing date is billed again by the next run."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the invoice is voided (the reason is required).")
    with transaction.atomic():
        invoice = lock_invoice(invoice)
        if invoice.status != Invoice.Status.FINALIZED:
            raise Conflict(
                f"Invoice {invoice} is {invoice.get_status_display().lower()}: only an open "
                "(finalized, unpaid) invoice can be voided."
            )
        # Payments and credit applied, and write-offs, are kept in the invoice's sums under
        # this same row lock.
        if invoice.paid_amount or invoice.written_off_amount:
            raise Conflict(
                f"Invoice {invoice} has payments or a write-off applied: it cannot be voided. "
                "Issue a credit note instead."
            )
        if invoice.credited_amount:
            raise Conflict(
                f"Invoice {invoice} has credit notes: it cannot be voided. "
                "Credit what is left instead."
            )
        uses = list(
            CreditUse.objects.filter(invoice_line__invoice=invoice)
            .select_related("credit")
            .order_by("credit_id", "id")
        )
        given: dict[int, Decimal] = {}
        for use in uses:
            given[use.credit_id] = given.get(use.credit_id, Decimal(0)) + use.amount
        by_credit = {use.credit_id: use for use in uses}
        for credit_id in sorted(given):  # stable order: credits locked by id
            amount = given[credit_id]
            if amount > 0:
                use = by_credit[credit_id]
                prepaid_credit_give_back(credit=use.credit, amount=amount)
                # Append-only: the give-back is a use of the opposite sign on the same line.
                CreditUse.objects.create(
                    credit=use.credit, invoice_line=use.invoice_line, amount=-amount
                )
        invoice.status = Invoice.Status.VOID
        invoice.voided_at = clock.now()
        invoice.voided_by = voided_by
        invoice.void_reason = reason
        invoice.save(update_fields=["status", "voided_at", "voided_by", "void_reason"])
    return invoice
