"""Invoice documents: the email announcing an invoice and its PDF, outside billing's transaction.

Billing only records that invoices were issued (`invoices_issued`): once its transaction commits,
one email task and one PDF task are sent for all of them (a chunk of the billing run sends two
tasks, not two per invoice). Both are idempotent, so a retried or repeated task does nothing twice:
- an invoice is emailed once: the task locks its row, skips it if `emailed_at` is set, sends, sets
  `emailed_at` and commits; a row locked by someone else (another worker sending it, a payment)
  is not waited for but tried again later by the task;
- a PDF is rendered once per version of the document: the version is the SHA-256 of the HTML it is
  rendered from, so the PDF is rendered again only when something it shows has changed (paid, void,
  credit balance applied).

If the commit after a send fails (the database went away in between), the retry sends that email
again: at least once, never twice for a send that was recorded.
"""

import enum
import hashlib
import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from kombu.exceptions import KombuError

from core import clock
from core.formatting import format_money
from invoicing.models import Invoice, InvoicePDF

logger = logging.getLogger(__name__)


def invoices_issued(invoice_ids: list[int]) -> None:
    """Call inside the transaction that issues invoices: once it commits, their email and PDF
    tasks are sent (nothing is sent if it rolls back). A broker that cannot be reached does not
    fail what has committed: the error is logged and the invoices stay unemailed (`emailed_at`
    null) and without a stored PDF (rendered on first download)."""
    ids = list(invoice_ids)
    if not ids:
        return

    def send() -> None:
        from invoicing.tasks import email_invoices, render_invoice_pdfs

        try:
            email_invoices.delay(ids)
            render_invoice_pdfs.delay(ids)
        except (OSError, KombuError):
            logger.exception("invoices %s issued, their email and PDF tasks not sent", ids)

    transaction.on_commit(send)


class Emailed(enum.Enum):
    SENT = "sent"
    NOTHING_TO_DO = "nothing to do"  # sent already, no billing email, a draft or void
    BUSY = "busy"  # its row is locked: another worker sending it, or a payment being applied


def email_invoice_once(invoice_id: int) -> Emailed:
    """Email one issued invoice to its customer's billing email unless it was sent already.
    Its row is locked while sending and until `emailed_at` is committed, so two workers never
    both send it; a row locked by someone else is not waited for (BUSY: the task tries it again
    later, when it finds it sent or free). A send that fails raises (the task retries) and leaves
    the invoice unemailed."""
    with transaction.atomic():
        invoice = (
            Invoice.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("customer")
            .filter(pk=invoice_id)
            .first()
        )
        if invoice is None:
            exists = Invoice.objects.filter(pk=invoice_id).exists()
            return Emailed.BUSY if exists else Emailed.NOTHING_TO_DO
        if invoice.emailed_at is not None or invoice.status in (
            Invoice.Status.DRAFT,
            Invoice.Status.VOID,
        ):
            return Emailed.NOTHING_TO_DO
        if not invoice.customer.billing_email:  # finance has not set it yet (sales added them)
            logger.warning(
                "invoice %s not emailed: %s has no billing email", invoice, invoice.customer
            )
            return Emailed.NOTHING_TO_DO
        due = invoice.due_date
        send_mail(
            subject=f"Invoice {invoice.number} from {settings.BILLING_COMPANY['name']}",
            message=(
                f"Hello {invoice.customer.name},\n\n"
                f"Invoice {invoice.number} for {format_money(invoice.total, invoice.currency)} "
                f"is due on {due:%b} {due.day}, {due.year}. "
                "You can view and download it in your billing portal.\n"
            ),
            from_email=settings.BILLING_COMPANY["email"],
            recipient_list=[invoice.customer.billing_email],
        )
        # Not save(): delivery bookkeeping makes no history row and touches no other field.
        Invoice.objects.filter(pk=invoice.pk).update(emailed_at=clock.now())
    return Emailed.SENT


def invoice_pdf_version(html: str) -> str:
    return hashlib.sha256(html.encode()).hexdigest()


def invoice_pdf_stored(invoice: Invoice) -> bytes:
    """The invoice's PDF: the stored one if it was rendered from the same HTML as the invoice
    shows now, otherwise rendered (WeasyPrint, the slow part) and stored. Two renders of the same
    new version at once: the first stored wins, the other returns it."""
    from invoicing.pdf import invoice_html, render_pdf  # WeasyPrint: loaded when a PDF is made

    html = invoice_html(invoice)
    version = invoice_pdf_version(html)
    stored = InvoicePDF.objects.filter(invoice_id=invoice.pk).values_list("version", "content")
    for stored_version, content in stored:
        if stored_version == version:
            return bytes(content)
    content = render_pdf(html)
    fields = {"version": version, "content": content, "rendered_at": clock.now()}
    try:
        with transaction.atomic():
            InvoicePDF.objects.update_or_create(invoice_id=invoice.pk, defaults=fields)
    except IntegrityError:  # another render created the row first: its bytes are the same version
        stored = InvoicePDF.objects.filter(invoice_id=invoice.pk, version=version)
        content = bytes(stored.values_list("content", flat=True).first() or content)
    return content
