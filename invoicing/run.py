"""The billing run at scale: a plan of chunks, each chunk billed by sets in one transaction.

`billing_plan(today)` lists the subscriptions a run on `today` looks at, in chunks of
settings.BILLING_CHUNK_SIZE (by id, a stable order); `bill_chunk(ids, today)` bills one chunk.
The beat task sends one Celery task per chunk (invoicing.tasks), so more workers bill faster;
`invoicing.services.billing_run` runs the same chunks one after the other in process.

A chunk is billed by sets, not subscription by subscription (`build_chunk`): its subscriptions
(locked, in id order), billing periods, invoices already made, changes to invoice at once and
prepaid credits are read in one query each, the usage of all its subscriptions and metrics in
one aggregate (metering.selectors.usage_for_periods), what late usage compares with in one more;
every invoice is then built in memory by the one builder (invoicing.builder.build_invoice) that
the upcoming invoice and shadow billing use. `_write` saves them with bulk inserts (history rows
too) and numbers them from one gapless block of the series, taken under its lock in a stable
order (subscription id, then billing date) just before the inserts. Only the rare cases do
more, per document: prepaid credit drawn, a credit balance to apply, an invoice below zero, a
cancellation to settle, a term that ends.

Re-running the plan or a chunk bills nothing twice: the one-invoice-per-subscription-per-date
constraint is the last word. A chunk that meets it (another run billed some of its dates at the
same time) is billed again one subscription at a time; one subscription's bad data does not stop
the others (`BillingRunResult.failed`).
"""

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from simple_history.utils import bulk_create_with_history

from core import clock
from invoicing.balance import invoice_credit_at_finalization
from invoicing.builder import BillingReads, BuiltInvoice, billed_window, build_invoice
from invoicing.cancellations import cancellation_settle
from invoicing.documents import invoices_issued
from invoicing.models import CreditBalanceEntry, CreditUse, Invoice, InvoiceLine
from invoicing.numbering import next_numbers
from invoicing.schedule import (
    BILLED_STATUSES,
    BillingDate,
    billing_schedule,
    due_subscriptions,
    unbilled,
)
from subscriptions.models import (
    BillingPeriod,
    PrepaidCredit,
    Subscription,
    SubscriptionChange,
)
from subscriptions.services import prepaid_credit_draw, subscription_end

logger = logging.getLogger(__name__)

INVOICE_SERIES = "INV"


@dataclass(frozen=True)
class BillingRunResult:
    invoices: list[Invoice]
    subscriptions_seen: int
    failed: dict[str, str]  # external id → what went wrong (logged; retried on the next run)


@dataclass
class SubscriptionBill:
    """What one subscription bills on a date, built and not saved: its invoices in order (the
    changes invoiced at once, then its billing dates), or what stopped it."""

    subscription: Subscription
    schedule: list[BillingDate]
    changes: list[tuple[SubscriptionChange, BillingPeriod]]  # to invoice at once, with their period
    due: list[BillingDate]  # the dates of the schedule not invoiced yet
    invoices: list[BuiltInvoice] = field(default_factory=list)
    error: str = ""


def billing_plan(today: dt.date, chunk_size: int | None = None) -> list[list[int]]:
    """The ids of the subscriptions a run on `today` looks at, in chunks, in id order."""
    size = chunk_size or settings.BILLING_CHUNK_SIZE
    ids = list(due_subscriptions(today).values_list("pk", flat=True))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _ledger_copy(credit: PrepaidCredit) -> PrepaidCredit:
    """A detached copy whose `remaining` the builder's draws are followed on (the row is drawn
    by subscriptions' service when the invoice is saved)."""
    return PrepaidCredit(
        pk=credit.pk,
        subscription_id=credit.subscription_id,
        metric_id=credit.metric_id,
        granted=credit.granted,
        remaining=credit.remaining,
        granted_on=credit.granted_on,
        note=credit.note,
    )


def _by_subscription(rows) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for row in rows:
        grouped.setdefault(row.subscription_id, []).append(row)
    return grouped


def build_chunk(
    subscription_ids, today: dt.date, *, lock: bool, strict: bool = False
) -> list[SubscriptionBill]:
    """What a billing run on `today` bills for these subscriptions, built in memory, in id order.

    With `lock` (the real run, inside its transaction) the subscriptions and their prepaid
    credits are locked; without (shadow billing) nothing is locked or written. A subscription
    whose invoices cannot be built is returned with its `error` and no invoices (`strict`: the
    error is raised)."""
    subscriptions = Subscription.objects.filter(
        pk__in=list(subscription_ids), status__in=BILLED_STATUSES
    ).select_related("customer")
    if lock:
        subscriptions = subscriptions.select_for_update(of=("self",))
    subscriptions = list(subscriptions.order_by("pk"))
    ids = [subscription.pk for subscription in subscriptions]
    if not ids:
        return []
    periods = _by_subscription(
        BillingPeriod.objects.filter(subscription__in=ids).order_by("subscription", "sequence")
    )
    invoiced = Invoice.objects.filter(subscription__in=ids).exclude(status=Invoice.Status.VOID)
    done: dict[int, set[dt.date]] = {}
    for subscription_id, billing_date in invoiced.filter(change__isnull=True).values_list(
        "subscription", "billing_date"
    ):
        done.setdefault(subscription_id, set()).add(billing_date)
    changes = _by_subscription(
        SubscriptionChange.objects.filter(
            subscription__in=ids, invoice_now=True, at__date__lte=today
        )
        .exclude(pk__in=invoiced.filter(change__isnull=False).values("change"))
        .order_by("subscription", "at", "id")
    )
    credits = PrepaidCredit.objects.filter(subscription__in=ids, remaining__gt=0)
    if lock:
        credits = credits.select_for_update()
    credits = _by_subscription(
        _ledger_copy(credit) for credit in credits.order_by("subscription", "granted_on", "id")
    )
    bills, wanted = [], {}
    for subscription in subscriptions:
        own, invoiced_dates = periods.get(subscription.pk, []), done.get(subscription.pk, set())
        schedule = billing_schedule(subscription, own)
        bill = SubscriptionBill(
            subscription,
            schedule,
            changes=[
                (change, period)
                for change in changes.get(subscription.pk, [])
                if (period := _period_of(own, change.effective_date)) is not None
            ],
            due=unbilled(subscription, schedule, today=today, done=invoiced_dates),
        )
        wanted[subscription] = (
            [billed_window(due.arrears) for due in bill.due if due.arrears is not None],
            [billed_window(period) for due in bill.due for period in due.billed_periods],
        )
        bills.append(bill)
    reads = BillingReads.load(wanted)
    for bill in bills:
        try:
            bill.invoices = _build(bill, credits.get(bill.subscription.pk, []), reads)
        except Exception as exc:  # one bad subscription must not stop everyone else's billing
            if strict:
                raise
            logger.exception("billing %s failed", bill.subscription.external_id)
            bill.error = getattr(exc, "message", None) or repr(exc)
            bill.invoices = []
    return bills


def _period_of(periods: list[BillingPeriod], day: dt.date) -> BillingPeriod | None:
    """The period a change on `day` prorates (none on a period's first day)."""
    return next((p for p in periods if p.billed_from < day < p.end_date), None)


def _build(bill: SubscriptionBill, credits: list[PrepaidCredit], reads) -> list[BuiltInvoice]:
    subscription, made = bill.subscription, []
    for change, period in bill.changes:
        built = build_invoice(
            subscription=subscription,
            billing_date=change.at.date(),
            advance=None,
            arrears=period,
            change=change,
            reads=reads,
        )
        if built is not None:
            made.append(built)
    for due in bill.due:
        built = build_invoice(
            subscription=subscription,
            billing_date=due.date,
            advance=due.advance,
            arrears=due.arrears,
            credits=[credit for credit in credits if credit.remaining > 0],
            billed_periods=due.billed_periods,
            billed_lines=[line for earlier in made for line in earlier.lines],
            reads=reads,
        )
        if built is None:
            continue
        for draw in built.draws:  # followed on the copies; the rows are drawn when saved
            draw.credit.remaining -= draw.amount
        made.append(built)
    return made


def finalize_fields(invoice: Invoice, number: str, today: dt.date, now: dt.datetime) -> None:
    """What finalization sets: the number, issue and due dates, the customer's snapshot."""
    customer = invoice.customer
    invoice.number = number
    invoice.status = Invoice.Status.FINALIZED
    invoice.issue_date = today
    terms = invoice.subscription.payment_terms_days
    terms = customer.payment_terms_days if terms is None else terms
    invoice.due_date = today + dt.timedelta(days=terms)
    invoice.finalized_at = now
    invoice.customer_snapshot = {
        "name": customer.name,
        "external_id": customer.external_id,
        "billing_email": customer.billing_email,
        "address": customer.address,
    }


def _write(bills: list[SubscriptionBill], today: dt.date) -> list[Invoice]:
    """Save the built invoices of a chunk, finalized and numbered (inside its transaction)."""
    built = [b for bill in bills for b in bill.invoices]
    if built:
        now = clock.now()
        # The block of numbers, in a stable order; the series stays locked until commit.
        for b, number in zip(built, next_numbers(INVOICE_SERIES, len(built)), strict=True):
            finalize_fields(b.invoice, number, today, now)
        invoices = bulk_create_with_history([b.invoice for b in built], Invoice, default_date=now)
        for b, invoice in zip(built, invoices, strict=True):
            for line in b.lines:
                line.invoice = invoice
        InvoiceLine.objects.bulk_create([line for b in built for line in b.lines])
        uses = []
        for b in built:
            for draw in b.draws:
                prepaid_credit_draw(credit=draw.credit, amount=draw.amount)
                use = CreditUse(credit=draw.credit, invoice_line=draw.line, amount=draw.amount)
                uses.append(use)
        CreditUse.objects.bulk_create(uses)
        _settle([b.invoice for b in built])
    for bill in bills:
        subscription = bill.subscription
        if subscription.canceled_on is not None:
            cancellation_settle(subscription=subscription, today=today)
        elif bill.schedule and bill.schedule[-1].date <= today:
            subscription_end(subscription=subscription)
    return [b.invoice for b in built]


def _settle(invoices: list[Invoice]) -> None:
    """At finalization an invoice takes the customer's credit balance, goes to it when below
    zero, or is paid when its total is zero (invoicing.balance). One query finds the customers
    with a balance; only their invoices, and those not above zero, do more."""
    customers = {invoice.customer_id for invoice in invoices}
    with_balance = set(
        CreditBalanceEntry.objects.filter(customer__in=customers)
        .values_list("customer", flat=True)
        .distinct()
    )
    with_balance |= {invoice.customer_id for invoice in invoices if invoice.total < 0}
    for invoice in invoices:  # in number order: a credit made by one is taken by the next
        if invoice.customer_id in with_balance or invoice.total <= 0:
            invoice_credit_at_finalization(invoice)


def bill_subscriptions(
    subscription_ids, today: dt.date, *, strict: bool = False
) -> tuple[list[Invoice], dict[str, str]]:
    """Bill the subscriptions in one transaction (a savepoint inside the caller's): (invoices
    made, external id → error of those that could not be built). The emails and PDFs are sent by
    tasks once it commits. An IntegrityError means another run billed some of the same dates."""
    with transaction.atomic():
        bills = build_chunk(subscription_ids, today, lock=True, strict=strict)
        invoices = _write([bill for bill in bills if not bill.error], today)
    invoices_issued([invoice.pk for invoice in invoices])
    failed = {bill.subscription.external_id: bill.error for bill in bills if bill.error}
    return invoices, failed


def bill_chunk(subscription_ids, today: dt.date) -> BillingRunResult:
    """Bill every date due up to `today` of the chunk's subscriptions, in one transaction. One
    subscription's bad data does not stop the others: it is reported in the result's `failed`."""
    try:
        invoices, failed = bill_subscriptions(subscription_ids, today)
    except Exception:  # a conflict with another run, or one subscription's write failed
        logger.info("chunk of %d billed one at a time", len(subscription_ids), exc_info=True)
        invoices, failed = [], {}
        for subscription_id in subscription_ids:
            try:
                made, errors = bill_subscriptions([subscription_id], today)
            except IntegrityError:
                continue  # another run billed it at the same time: the constraint is the last word
            except Exception as exc:
                logger.exception("billing subscription %s failed", subscription_id)
                external_id = (
                    Subscription.objects.filter(pk=subscription_id)
                    .values_list("external_id", flat=True)
                    .first()
                )
                failed[external_id or str(subscription_id)] = getattr(exc, "message", None) or repr(
                    exc
                )
                continue
            invoices += made
            failed.update(errors)
    return BillingRunResult(
        invoices=invoices, subscriptions_seen=len(subscription_ids), failed=failed
    )
