"""Invoice PDF: an HTML template rendered by WeasyPrint (deterministic from the frozen invoice)."""

from django.conf import settings
from django.template.loader import render_to_string
from weasyprint import HTML

from invoicing.balance import invoice_credit_applied
from invoicing.models import CreditNote, Invoice


def invoice_html(invoice: Invoice) -> str:
    # The customer's credit balance taken by the invoice (at finalization): under the total,
    # with what is left to pay (credit notes are documents of their own, not netted here).
    credit_applied = invoice_credit_applied(invoice)
    return render_to_string(
        "invoicing/invoice_pdf.html",
        {
            "invoice": invoice,
            "credit_applied": credit_applied,
            "credit_applied_line": -credit_applied,
            "amount_due": invoice.total - credit_applied if credit_applied else None,
            "lines": invoice.lines.all(),
            "company": settings.BILLING_COMPANY,
            "customer": invoice.customer_snapshot or {"name": invoice.customer.name},
        },
    )


def invoice_pdf(invoice: Invoice) -> bytes:
    return HTML(string=invoice_html(invoice)).write_pdf()


def credit_note_html(note: CreditNote) -> str:
    invoice = note.invoice
    return render_to_string(
        "invoicing/credit_note_pdf.html",
        {
            "note": note,
            "invoice": invoice,
            "lines": note.lines.all(),
            "company": settings.BILLING_COMPANY,
            "customer": invoice.customer_snapshot or {"name": invoice.customer.name},
        },
    )


def credit_note_pdf(note: CreditNote) -> bytes:
    return HTML(string=credit_note_html(note)).write_pdf()
