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


def render_pdf(html: str) -> bytes:
    """WeasyPrint: the slow part (invoicing.documents.invoice_pdf_stored keeps what it made)."""
    return HTML(string=html).write_pdf()


def invoice_pdf(invoice: Invoice) -> bytes:
    """A fresh render; what is served and attached is invoicing.documents.invoice_pdf_stored."""
    return render_pdf(invoice_html(invoice))


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
    return render_pdf(credit_note_html(note))
