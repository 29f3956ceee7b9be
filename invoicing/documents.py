"""What is sent once an invoice is issued: its email, after the billing transaction commits."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from core.formatting import format_money
from invoicing.models import Invoice

logger = logging.getLogger(__name__)


def invoices_issued(invoice_ids: list[int]) -> None:
    """Once the transaction that issued these invoices commits, send their emails."""
    if invoice_ids:
        transaction.on_commit(lambda: [_email_invoice(pk) for pk in invoice_ids])


def _email_invoice(invoice_id: int) -> None:
    invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
    if not invoice.customer.billing_email:  # finance has not set it yet (a customer sales added)
        logger.warning("invoice %s not emailed: %s has no billing email", invoice, invoice.customer)
        return
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
        fail_silently=True,
    )
