"""Dunning: reminders about open invoices, sent by a daily task following the dunning policy.

Exactly once per invoice and step: the notice row is inserted first, inside a transaction that
holds the invoice's row lock (the lock payment_apply takes), and the database's unique constraint
(invoice, step) refuses a second one, from a rerun or a concurrent run; the email is sent when
that transaction commits. A notice is therefore recorded before its email leaves: a send that
fails is logged, not retried (a customer gets a reminder at most once, never twice).

Backlog: when several steps of an invoice are due at once (an invoice finalized late, a pause
that ended, a task that did not run for days), only the latest due step is sent; the earlier
ones are skipped for good. The customer gets the reminder that fits the invoice today, not a
burst of stale ones.
"""

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template import Context, Template
from django.urls import reverse

from core import clock
from core.formatting import format_day, format_money
from invoicing.documents import invoice_pdf_stored
from invoicing.models import Invoice
from receivables.models import DunningNotice, DunningPause, DunningPolicy, DunningStep
from receivables.selectors import invoice_amount_due

logger = logging.getLogger(__name__)


@dataclass
class DunningRunResult:
    sent: list[DunningNotice] = field(default_factory=list)


def dunning_policy() -> DunningPolicy | None:
    """The policy in force: the first active one (one policy applies to every customer)."""
    return DunningPolicy.objects.filter(active=True).order_by("id").first()


def step_day(invoice: Invoice, step: DunningStep) -> dt.date:
    return invoice.due_date + dt.timedelta(days=step.days_from_due)


def dunning_paused(customer_id: int, today: dt.date) -> bool:
    """Excluded for good, or paused until a day after today (reminders resume on that day)."""
    return DunningPause.objects.filter(
        Q(excluded=True) | Q(paused_until__gt=today), customer_id=customer_id
    ).exists()


def dunning_run(*, today: dt.date | None = None) -> DunningRunResult:
    """Send each open invoice the latest step of the policy whose day has come, once."""
    today = today or clock.today()
    result = DunningRunResult()
    policy = dunning_policy()
    if policy is None:
        return result
    steps = list(policy.steps.order_by("days_from_due"))
    if not steps:
        return result
    earliest = today - dt.timedelta(days=steps[0].days_from_due)  # due on or before this day
    held = DunningPause.objects.filter(Q(excluded=True) | Q(paused_until__gt=today))
    candidates = (
        Invoice.objects.filter(status=Invoice.Status.FINALIZED, due_date__lte=earliest)
        .exclude(customer_id__in=held.values("customer_id"))
        .order_by("due_date", "id")
        .values_list("pk", flat=True)
    )
    for invoice_id in candidates:
        notice = _dunn(invoice_id, steps, today)
        if notice is not None:
            result.sent.append(notice)
    return result


def _dunn(invoice_id: int, steps: list[DunningStep], today: dt.date) -> DunningNotice | None:
    with transaction.atomic():
        # The row lock orders this with payment_apply, credit notes and voiding.
        invoice = (
            Invoice.objects.select_for_update(of=("self",))
            .select_related("customer")
            .get(pk=invoice_id)
        )
        if invoice.status != Invoice.Status.FINALIZED or dunning_paused(invoice.customer_id, today):
            return None
        due_steps = [step for step in steps if step_day(invoice, step) <= today]
        if not due_steps:
            return None
        step = due_steps[-1]
        amount_due = invoice_amount_due(invoice)
        if amount_due <= 0 or not invoice.customer.billing_email:
            return None
        if DunningNotice.objects.filter(invoice=invoice, step=step).exists():
            return None
        try:
            with transaction.atomic():
                notice = DunningNotice.objects.create(
                    invoice=invoice,
                    step=step,
                    sent_on=today,
                    to=invoice.customer.billing_email,
                    amount_due=amount_due,
                )
        except IntegrityError:
            return None  # another run sent it
        transaction.on_commit(lambda: _send(notice.pk), robust=True)
    return notice


def portal_url(invoice: Invoice) -> str:
    base = getattr(settings, "PORTAL_BASE_URL", "").rstrip("/")
    return f"{base}{reverse('portal:invoice', args=[invoice.number])}"


def notice_context(invoice: Invoice, amount_due) -> dict:
    return {
        "invoice": invoice,
        "customer": invoice.customer,
        "amount_due": format_money(amount_due, str(invoice.currency)),
        "due_date": format_day(invoice.due_date),
        "portal_url": portal_url(invoice),
    }


def render_notice(step: DunningStep, invoice: Invoice, amount_due) -> tuple[str, str]:
    context = Context(notice_context(invoice, amount_due), autoescape=False)
    subject = " ".join(Template(step.subject).render(context).split())
    return subject, Template(step.body).render(context)


def _send(notice_id: int) -> None:
    notice = DunningNotice.objects.select_related("invoice__customer", "step").get(pk=notice_id)
    invoice = notice.invoice
    subject, body = render_notice(notice.step, invoice, notice.amount_due)
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.BILLING_COMPANY["email"],
        to=[notice.to],
    )
    message.attach(f"{invoice.number}.pdf", invoice_pdf_stored(invoice), "application/pdf")
    try:
        message.send()
    except Exception:
        logger.exception("dunning notice %s (%s) was recorded but not sent", notice.pk, notice)
