import datetime as dt
import logging

from celery import group, shared_task
from django.db import OperationalError

from core import clock
from invoicing.documents import Emailed, email_invoice_once, invoice_pdf_stored
from invoicing.models import Invoice
from invoicing.run import bill_chunk, billing_plan

logger = logging.getLogger(__name__)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def run_billing(today: str | None = None) -> int:
    """The periodic billing job (beat, hourly): plan the run and send one task per chunk.
    Returns the number of chunks sent."""
    day = dt.date.fromisoformat(today) if today else clock.today()
    chunks = billing_plan(day)
    if chunks:
        group(bill_billing_chunk.si(ids, day.isoformat()) for ids in chunks).apply_async()
    return len(chunks)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,  # a worker killed mid-chunk: the chunk goes back to the queue
    autoretry_for=(OperationalError, OSError),
    retry_backoff=True,
    max_retries=8,
)
def bill_billing_chunk(subscription_ids: list[int], today: str) -> int:
    """Bill one chunk of the plan (its own transaction: a chunk is billed whole or not at all,
    and re-running it bills nothing twice). Returns the number of invoices made."""
    return len(bill_chunk(subscription_ids, dt.date.fromisoformat(today)).invoices)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError, OSError),  # smtplib.SMTPException is an OSError
    retry_backoff=True,
    max_retries=8,
)
def email_invoices(self, invoice_ids: list[int]) -> int:
    """Email issued invoices, each once (invoicing.documents.email_invoice_once); sent on commit
    by invoicing.documents.invoices_issued. Run again, it sends nothing twice. Invoices whose row
    someone else holds are tried again later, alone. Returns the number sent by this run."""
    sent, busy = 0, []
    for invoice_id in invoice_ids:
        outcome = email_invoice_once(invoice_id)
        sent += outcome is Emailed.SENT
        if outcome is Emailed.BUSY:
            busy.append(invoice_id)
    if busy:
        if self.request.is_eager:  # in process (tests, scripts): no later to try them at
            logger.warning("invoices %s not emailed: their rows are locked", busy)
        else:
            email_invoices.apply_async((busy,), countdown=30)
    return sent


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, OSError),
    retry_backoff=True,
    max_retries=5,
)
def render_invoice_pdfs(invoice_ids: list[int]) -> int:
    """Render and store the PDFs of issued invoices ahead of their first download (each once per
    version: invoicing.documents.invoice_pdf_stored). Returns how many invoices it went through."""
    invoices = Invoice.objects.filter(pk__in=invoice_ids).select_related("customer", "subscription")
    for invoice in invoices:
        invoice_pdf_stored(invoice)
    return len(invoices)
