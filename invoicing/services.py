"""Billing: build invoices for what is due, finalize them with a gapless number.

At each boundary b of a subscription's schedule (its start, every period end) one invoice is due:
fixed fees in advance for the period starting at b, and usage (and fixed fees in arrears) for the
period ending at b. "One invoice per subscription per billing date" is a database constraint.
"""

import datetime as dt
import logging

from django.db import IntegrityError, transaction

from core import clock
from core.errors import Conflict
from invoicing.balance import invoice_credit_at_finalization
from invoicing.builder import build_invoice
from invoicing.documents import invoices_issued
from invoicing.models import CreditUse, Invoice
from invoicing.numbering import next_number
from invoicing.run import (
    INVOICE_SERIES,
    BillingRunResult,
    bill_chunk,
    bill_subscriptions,
    billing_plan,
    finalize_fields,
)
from invoicing.schedule import open_credits
from subscriptions.models import Subscription, SubscriptionChange
from subscriptions.services import prepaid_credit_draw

logger = logging.getLogger(__name__)

__all__ = ["BillingRunResult", "billing_run", "invoice_create", "invoice_finalize"]


def invoice_create(
    *,
    subscription: Subscription,
    billing_date: dt.date,
    advance,
    arrears,
    billed_periods=(),
    change: SubscriptionChange | None = None,
) -> Invoice | None:
    """A draft invoice for one billing date, or None if it has no lines or was already invoiced.

    The invoice comes from the one builder (invoicing.builder.build_invoice, which the upcoming
    invoice and shadow billing use too). Call under the subscription's lock: prepaid credits are
    locked here and drawn down through subscriptions' service."""
    built = build_invoice(
        subscription=subscription,
        billing_date=billing_date,
        advance=advance,
        arrears=arrears,
        credits=open_credits(subscription, lock=True),
        billed_periods=billed_periods,
        change=change,
    )
    if built is None:
        return None  # nothing billed on this date (usage-only plan at its start)
    invoice = built.invoice
    try:
        with transaction.atomic():
            invoice.save()
    except IntegrityError:
        return None  # another run got there first: the constraint is the last word
    for line in built.lines:
        line.invoice = invoice
        line.save()
    for draw in built.draws:
        prepaid_credit_draw(credit=draw.credit, amount=draw.amount)
        CreditUse.objects.create(credit=draw.credit, invoice_line=draw.line, amount=draw.amount)
    return invoice


@transaction.atomic
def invoice_finalize(*, invoice: Invoice, issue_date: dt.date | None = None) -> Invoice:
    """Freeze a draft: number from the locked series, issue and due dates, customer snapshot."""
    invoice = (
        Invoice.objects.select_for_update()
        .select_related("customer", "subscription")
        .get(pk=invoice.pk)
    )
    if invoice.status != Invoice.Status.DRAFT:
        raise Conflict(f"Invoice {invoice} is {invoice.get_status_display().lower()}, not a draft.")
    finalize_fields(invoice, next_number(INVOICE_SERIES), issue_date or clock.today(), clock.now())
    invoice.save()
    # Below zero: to the customer's credit balance; otherwise it takes what the balance holds
    # (zero to collect: settled as it is issued).
    invoice_credit_at_finalization(invoice)
    invoices_issued([invoice.pk])  # its email and PDF: tasks sent once this commits
    return invoice


def subscription_bill(*, subscription: Subscription, today: dt.date) -> list[Invoice]:
    """Invoice and finalize every billing date of the subscription up to today: the billing
    run's code (invoicing.run) for a chunk of one, in a savepoint of the caller's transaction.
    What cannot be built raises; a date another run billed at the same time is left to it."""
    try:
        invoices, _ = bill_subscriptions([subscription.pk], today, strict=True)
    except IntegrityError:
        return []  # another run got there first: the constraint is the last word
    return invoices


def subscription_bill_now(*, subscription: Subscription, today: dt.date) -> str:
    """Bill a subscription right after a change of its contract (a cancellation's credit note, a
    proration invoiced at once). The change is committed already: a failure here is logged and
    left to the next billing run, which bills the same dates. Returns what went wrong, or ""."""
    try:
        subscription_bill(subscription=subscription, today=today)
    except Exception as exc:  # the change stands; the hourly run retries
        logger.exception("billing %s after its change failed", subscription.external_id)
        return getattr(exc, "message", None) or repr(exc)
    return ""


def billing_run(*, today: dt.date | None = None) -> BillingRunResult:
    """Invoice everything due, chunk after chunk in this process (the beat task sends the same
    chunks to the workers instead: invoicing.tasks). Safe to run twice, or twice at once: each
    date is billed once."""
    today = today or clock.today()
    invoices, seen, failed = [], 0, {}
    for chunk in billing_plan(today):
        result = bill_chunk(chunk, today)
        invoices += result.invoices
        seen += result.subscriptions_seen
        failed.update(result.failed)
    logger.info(
        "billing run %s: %d invoices for %d subscriptions, %d failed",
        today,
        len(invoices),
        seen,
        len(failed),
    )
    return BillingRunResult(invoices=invoices, subscriptions_seen=seen, failed=failed)
