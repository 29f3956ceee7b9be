"""Billing: build invoices for what is due, finalize them with a gapless number.

At each boundary b of a subscription's schedule (its start, every period end) one invoice is due:
fixed fees in advance for the period starting at b, and usage (and fixed fees in arrears) for the
period ending at b. "One invoice per subscription per billing date" is a database constraint.
"""

import datetime as dt
import logging
from dataclasses import dataclass, replace
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from catalog import rating
from catalog.models import Charge
from core import clock
from core.errors import Conflict
from core.money import plain, round_money
from core.periods import Period
from core.templatetags.money import money
from invoicing.models import CreditUse, Invoice, InvoiceLine, NumberSeries
from metering import selectors as usage_selectors
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription
from subscriptions.services import fixed_fees, subscription_end

logger = logging.getLogger(__name__)

INVOICE_SERIES = "INV"


@dataclass(frozen=True)
class BillingRunResult:
    invoices: list[Invoice]
    subscriptions_seen: int
    failed: dict[str, str]  # external id → what went wrong (logged; retried on the next run)


def billing_dates(
    subscription: Subscription,
) -> list[tuple[dt.date, BillingPeriod | None, BillingPeriod | None]]:
    """Each billing date with (period billed in advance, period billed in arrears).

    A period is billed from its `billed_from` (its start, or the end of a trial inside it).
    """
    periods = list(BillingPeriod.objects.filter(subscription=subscription).order_by("sequence"))
    dates = []
    for i, period in enumerate(periods):
        dates.append((period.billed_from, period, periods[i - 1] if i else None))
    if periods:
        dates.append((periods[-1].end_date, None, periods[-1]))
        # Once no more late usage can arrive for the term, a last sweep bills what did.
        dates.append((periods[-1].end_date + lateness(), None, None))
    return dates


def lateness() -> dt.timedelta:
    return dt.timedelta(days=settings.EVENT_LATENESS_DAYS)


@dataclass
class CreditDraw:
    credit: PrepaidCredit
    amount: Decimal
    line: InvoiceLine


def _line(
    kind, item, description, window: Period, quantity, amount, explanation=(), unit_price=None
):
    return InvoiceLine(
        kind=kind,
        item=item,
        description=description,
        period_start=window.start,
        period_end=window.end,
        quantity=quantity,
        unit_price=unit_price,
        amount=amount,
        explanation=list(explanation),
    )


def _unit_price(item) -> Decimal | None:
    price = item.pricing.get("unit_price")
    return Decimal(price) if price is not None else None


def _fee_lines(subscription, period: BillingPeriod, timing: str) -> list[InvoiceLine]:
    window = Period(period.billed_from, period.end_date)
    fees = fixed_fees(
        subscription,
        subscription.items.all(),
        Period(period.start_date, period.end_date),
        period.billed_from,
        timing,
    )
    lines = []
    for fee in fees:
        explanation = fee.rating.explanation()
        description = fee.item.name
        if fee.fraction != 1:
            days = (window.end - window.start).days
            total_days = (period.end_date - period.start_date).days
            description += f" (prorated {days}/{total_days} days)"
            explanation.append({"description": f"prorated × {days}/{total_days} days"})
        lines.append(
            _line(
                InvoiceLine.Kind.FEE,
                fee.item,
                description,
                window,
                fee.item.quantity,
                fee.amount,
                explanation,
                _unit_price(fee.item),
            )
        )
    return lines


def _usage_lines(subscription, period: BillingPeriod, credits, draws) -> list[InvoiceLine]:
    """Usage of the period: unit credits first reduce the quantity, a shortfall under a minimum
    commitment becomes its own true-up line."""
    window = Period(period.billed_from, period.end_date)
    currency = subscription.currency
    lines = []
    for usage in usage_selectors.usage_for_period(subscription=subscription, period=window):
        item, rated, quantity = usage.item, usage.rating, usage.quantity
        used: list[tuple[PrepaidCredit, Decimal]] = []
        if item.pricing["model"] != "percentage":
            free = Decimal(item.pricing.get("free_units", 0))
            left = quantity
            billable = max(quantity - free, Decimal(0))  # free units are never paid by credit
            for credit in credits:
                if credit.metric_id == item.metric_id and credit.remaining > 0 and billable > 0:
                    take = min(credit.remaining, billable)
                    credit.remaining -= take
                    left -= take
                    billable -= take
                    used.append((credit, take))
            if used:
                # Credits pay for units; the commitment is still measured on all of the usage.
                full_true_up = rated.true_up
                rated = rating.rate(item.pricing, left)
                rated = replace(
                    rated, amount=rated.amount - rated.true_up + full_true_up, true_up=full_true_up
                )
        line = _line(
            InvoiceLine.Kind.USAGE,
            item,
            item.name,
            window,
            quantity,
            round_money(rated.amount - rated.true_up, currency),
            rated.explanation()[:-1] if rated.true_up else rated.explanation(),
            _unit_price(item),
        )
        if used:
            taken = sum((t for _, t in used), Decimal(0))
            line.explanation.insert(
                0,
                {
                    "description": f"{plain(taken, grouping=True)} units from prepaid credit, "
                    f"{plain(left, grouping=True)} billed"
                },
            )
            draws += [CreditDraw(credit, take, line) for credit, take in used]
        lines.append(line)
        if rated.true_up:
            lines.append(
                _line(
                    InvoiceLine.Kind.TRUE_UP,
                    item,
                    f"{item.name}: minimum commitment true-up",
                    window,
                    Decimal(0),
                    round_money(rated.true_up, currency),
                    [rated.explanation()[-1]],
                )
            )
    return lines


def _money_credit_lines(subscription, usage_lines, credits, draws, window) -> list[InvoiceLine]:
    """Money credits pay for usage (and true-ups) before anything is billed."""
    due = sum((line.amount for line in usage_lines), Decimal(0))
    lines = []
    for credit in credits:
        if credit.metric_id is not None or credit.remaining <= 0 or due <= 0:
            continue
        take = min(credit.remaining, due)
        credit.remaining -= take
        due -= take
        line = _line(
            InvoiceLine.Kind.CREDIT,
            None,
            f"Prepaid credit applied ({plain(credit.remaining)} {subscription.currency} left)",
            window,
            Decimal(0),
            -take,
        )
        draws.append(CreditDraw(credit, take, line))
        lines.append(line)
    return lines


def _late_usage_lines(subscription, billed_periods: list[BillingPeriod]) -> list[InvoiceLine]:
    """Usage that arrived after its period was invoiced: the difference between what the period's
    usage is worth now and what was billed for it, as lines naming the original period."""
    lines = []
    for period in billed_periods:
        window = Period(period.billed_from, period.end_date)
        billed = {
            row["item"]: row
            for row in InvoiceLine.objects.filter(
                invoice__subscription=subscription,
                period_start=window.start,
                period_end=window.end,
                kind__in=[InvoiceLine.Kind.USAGE, InvoiceLine.Kind.ADJUSTMENT],
                item__isnull=False,
            )
            .values("item")
            .annotate(quantity=Sum("quantity"), amount=Sum("amount"))
        }
        for usage in usage_selectors.usage_for_period(subscription=subscription, period=window):
            item, before = usage.item, billed.get(usage.item.pk)
            billed_quantity = Decimal(before["quantity"]) if before else Decimal(0)
            if usage.quantity == billed_quantity:
                continue
            if item.pricing["model"] == "percentage":
                billed_amount = Decimal(before["amount"]) if before else Decimal(0)
            else:  # re-rate what was billed, so tiers and minimums apply to the whole period
                billed_amount = round_money(
                    rating.rate(item.pricing, billed_quantity).amount, subscription.currency
                )
            last_day = window.end - dt.timedelta(days=1)
            was, now = plain(billed_quantity, grouping=True), plain(usage.quantity, grouping=True)
            lines.append(
                _line(
                    InvoiceLine.Kind.ADJUSTMENT,
                    item,
                    f"{item.name}: late usage for {window.start:%b %-d} – {last_day:%b %-d, %Y}",
                    window,
                    usage.quantity - billed_quantity,
                    usage.amount - round_money(billed_amount, subscription.currency),
                    [{"description": f"{was} billed before, {now} now"}]
                    + usage.rating.explanation(),
                )
            )
    return lines


def invoice_lines_for(
    subscription: Subscription,
    advance: BillingPeriod | None,
    arrears: BillingPeriod | None,
    credits: list[PrepaidCredit] = (),
    billed_periods: list[BillingPeriod] = (),
) -> tuple[list[InvoiceLine], list[CreditDraw]]:
    """The lines of one billing date, unsaved, and the prepaid credit they draw (applied to the
    given credit objects in memory only): shared by real and shadow billing.

    `billed_periods` are earlier periods, already invoiced, that late usage may still reach."""
    lines: list[InvoiceLine] = _late_usage_lines(subscription, billed_periods)
    draws: list[CreditDraw] = []
    if arrears is not None:
        usage = _usage_lines(subscription, arrears, credits, draws)
        window = Period(arrears.billed_from, arrears.end_date)
        lines += usage + _money_credit_lines(subscription, usage, credits, draws, window)
        lines += _fee_lines(subscription, arrears, Charge.Timing.IN_ARREARS)
    if advance is not None:
        lines += _fee_lines(subscription, advance, Charge.Timing.IN_ADVANCE)
    for position, line in enumerate(lines):
        line.position = position
    return lines, draws


def _totals(invoice: Invoice, lines: list[InvoiceLine]) -> None:
    """Tax is computed on the rounded subtotal and rounded once; total = subtotal + tax."""
    invoice.subtotal = sum((line.amount for line in lines), Decimal(0))
    invoice.tax_rate = invoice.customer.tax_rate
    invoice.tax_amount = round_money(invoice.subtotal * invoice.tax_rate / 100, invoice.currency)
    invoice.total = invoice.subtotal + invoice.tax_amount


def invoice_create(
    *, subscription: Subscription, billing_date: dt.date, advance, arrears, billed_periods=()
) -> Invoice | None:
    """A draft invoice for one billing date, or None if it has no lines or was already invoiced.

    Call under the subscription's lock: prepaid credits are locked and drawn down here."""
    credits = list(
        PrepaidCredit.objects.select_for_update()
        .filter(subscription=subscription, remaining__gt=0)
        .order_by("granted_on", "id")
    )
    lines, draws = invoice_lines_for(subscription, advance, arrears, credits, billed_periods)
    if not lines:
        return None  # nothing billed on this date (usage-only plan at its start)
    invoice = Invoice(
        customer=subscription.customer,
        subscription=subscription,
        billing_date=billing_date,
        currency=subscription.currency,
    )
    _totals(invoice, lines)
    try:
        with transaction.atomic():
            invoice.save()
    except IntegrityError:
        return None  # another run got there first: the constraint is the last word
    for line in lines:
        line.invoice = invoice
        line.save()
    for draw in draws:
        CreditUse.objects.create(credit=draw.credit, invoice_line=draw.line, amount=draw.amount)
        PrepaidCredit.objects.filter(pk=draw.credit.pk).update(
            remaining=F("remaining") - draw.amount
        )
    return invoice


def _next_number(series: str) -> str:
    counter, _ = NumberSeries.objects.get_or_create(name=series)
    counter = NumberSeries.objects.select_for_update().get(pk=counter.pk)
    number = f"{series}-{counter.next_value:06d}"
    counter.next_value += 1
    counter.save(update_fields=["next_value"])
    return number


@transaction.atomic
def invoice_finalize(*, invoice: Invoice, issue_date: dt.date | None = None) -> Invoice:
    """Freeze a draft: number from the locked series, issue and due dates, customer snapshot."""
    invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
    if invoice.status != Invoice.Status.DRAFT:
        raise Conflict(f"Invoice {invoice} is {invoice.get_status_display().lower()}, not a draft.")
    customer = invoice.customer
    invoice.number = _next_number(INVOICE_SERIES)
    invoice.status = Invoice.Status.FINALIZED
    invoice.issue_date = issue_date or clock.today()
    invoice.due_date = invoice.issue_date + dt.timedelta(days=customer.payment_terms_days)
    invoice.finalized_at = clock.now()
    invoice.customer_snapshot = {
        "name": customer.name,
        "external_id": customer.external_id,
        "billing_email": customer.billing_email,
        "address": customer.address,
    }
    if invoice.total == 0:  # nothing to collect: settled as it is issued
        invoice.status, invoice.paid_at = Invoice.Status.PAID, invoice.finalized_at
    invoice.save()
    transaction.on_commit(lambda: _email_invoice(invoice.pk))
    return invoice


def _email_invoice(invoice_id: int) -> None:
    invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
    send_mail(
        subject=f"Invoice {invoice.number} from {settings.BILLING_COMPANY['name']}",
        message=(
            f"Hello {invoice.customer.name},\n\n"
            f"Invoice {invoice.number} for {money(invoice.total, invoice.currency)} "
            f"{invoice.currency} is due on "
            f"{invoice.due_date}. You can view and download it in your billing portal.\n"
        ),
        from_email=settings.BILLING_COMPANY["email"],
        recipient_list=[invoice.customer.billing_email],
        fail_silently=True,
    )


@transaction.atomic
def invoice_mark_paid(*, invoice: Invoice) -> Invoice:
    """Called by receivables when allocations cover the total."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.FINALIZED:
        raise Conflict(f"Invoice {invoice} is {invoice.get_status_display().lower()}: not open.")
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = clock.now()
    invoice.save(update_fields=["status", "paid_at"])
    return invoice


def subscription_bill(*, subscription: Subscription, today: dt.date) -> list[Invoice]:
    """Invoice and finalize every billing date of the subscription up to today, under its lock."""
    made = []
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if subscription.status != Subscription.Status.ACTIVE:
            return made
        done = set(
            Invoice.objects.filter(subscription=subscription).values_list("billing_date", flat=True)
        )
        dates = billing_dates(subscription)
        periods = [p for _, p, _ in dates if p is not None]
        for billing_date, advance, arrears in dates:
            if billing_date > today or billing_date in done:
                continue
            invoice = invoice_create(
                subscription=subscription,
                billing_date=billing_date,
                advance=advance,
                arrears=arrears,
                billed_periods=[
                    p for p in periods if p.end_date < billing_date <= p.end_date + lateness()
                ],
            )
            if invoice is not None:
                made.append(invoice_finalize(invoice=invoice, issue_date=today))
        if dates and dates[-1][0] <= today:
            subscription_end(subscription=subscription)
    return made


def billing_run(*, today: dt.date | None = None) -> BillingRunResult:
    """Invoice everything due. Safe to run twice, or twice at once: each date is billed once."""
    today = today or clock.today()
    invoices, seen, failed = [], 0, {}
    due = Subscription.objects.filter(status=Subscription.Status.ACTIVE, start_date__lte=today)
    for subscription in due.order_by("pk").iterator():
        seen += 1
        try:
            invoices += subscription_bill(subscription=subscription, today=today)
        except Exception as exc:  # one bad subscription must not stop everyone else's billing
            logger.exception("billing %s failed", subscription.external_id)
            failed[subscription.external_id] = getattr(exc, "message", None) or repr(exc)
    logger.info(
        "billing run %s: %d invoices for %d subscriptions, %d failed",
        today,
        len(invoices),
        seen,
        len(failed),
    )
    return BillingRunResult(invoices=invoices, subscriptions_seen=seen, failed=failed)
