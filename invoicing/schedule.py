"""When a subscription is billed: its billing dates, what each bills, and which are due.

At each boundary b of a subscription's schedule (its start, every period end) one invoice is due:
fixed fees in advance for the period starting at b, and usage (and fixed fees in arrears) for the
period ending at b; a last sweep, once no more late usage can arrive, bills what did. The billing
run, the upcoming invoice and shadow billing all read the dates from here.
"""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from invoicing.models import Invoice
from subscriptions.models import BillingPeriod, PrepaidCredit, Subscription, SubscriptionChange


@dataclass(frozen=True)
class BillingDate:
    date: dt.date
    advance: BillingPeriod | None  # the period starting at `date`, billed in advance
    arrears: BillingPeriod | None  # the period ending at `date`, billed in arrears
    billed_periods: list[BillingPeriod]  # earlier periods late usage can still reach


def lateness() -> dt.timedelta:
    return dt.timedelta(days=settings.EVENT_LATENESS_DAYS)


def billing_dates(
    subscription: Subscription, periods: list[BillingPeriod] | None = None
) -> list[tuple[dt.date, BillingPeriod | None, BillingPeriod | None]]:
    """Each billing date with (period billed in advance, period billed in arrears).

    A period is billed from its `billed_from` (its start, or the end of a trial inside it).
    `periods`: the subscription's periods in order, when read already (the billing run reads a
    chunk's at once).
    """
    if periods is None:
        periods = list(BillingPeriod.objects.filter(subscription=subscription).order_by("sequence"))
    dates = []
    for i, period in enumerate(periods):
        dates.append((period.billed_from, period, periods[i - 1] if i else None))
    if periods:
        dates.append((periods[-1].end_date, None, periods[-1]))
        # Once no more late usage can arrive for the term, a last sweep bills what did.
        dates.append((periods[-1].end_date + lateness(), None, None))
    return dates


def billing_schedule(
    subscription: Subscription, periods: list[BillingPeriod] | None = None
) -> list[BillingDate]:
    """Every billing date of the subscription, in order, with what it bills."""
    dates = billing_dates(subscription, periods)
    periods = [p for _, p, _ in dates if p is not None]
    return [
        BillingDate(
            date=day,
            advance=advance,
            arrears=arrears,
            billed_periods=[p for p in periods if p.end_date < day <= p.end_date + lateness()],
        )
        for day, advance, arrears in dates
    ]


def unbilled(
    subscription: Subscription,
    schedule: list[BillingDate],
    *,
    today: dt.date,
    done: set[dt.date] | None = None,
) -> list[BillingDate]:
    """The dates of `schedule` on or before `today` that have no invoice yet: what a billing run
    (or a shadow run) on `today` bills. A date whose only invoice is void is unbilled. `done`:
    the dates invoiced, when read already."""
    if done is None:
        done = set(
            Invoice.objects.filter(subscription=subscription, change__isnull=True)
            .exclude(status=Invoice.Status.VOID)
            .values_list("billing_date", flat=True)
        )
    return [due for due in schedule if due.date <= today and due.date not in done]


def upcoming_billing_date(subscription: Subscription, *, as_of: dt.date) -> BillingDate | None:
    """The billing date that closes the period in progress on `as_of` (the date whose arrears is
    that period: its end), or None when no period is in progress (before the start, after the
    term, or inside a trial that covers a whole period)."""
    for billing_date in billing_schedule(subscription):
        arrears = billing_date.arrears
        if arrears is not None and arrears.start_date <= as_of < arrears.end_date:
            return billing_date
    return None


def open_credits(subscription: Subscription, *, lock: bool = False) -> list[PrepaidCredit]:
    """The prepaid credits with a balance, in the order they are drawn (oldest first). Locked
    (SELECT … FOR UPDATE) when they are about to be drawn; a read that writes nothing does not
    lock."""
    credits = PrepaidCredit.objects.filter(subscription=subscription, remaining__gt=0)
    if lock:
        credits = credits.select_for_update()
    return list(credits.order_by("granted_on", "id"))


# Billed: live subscriptions, and cancelled ones until their final invoices are out.
BILLED_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.CANCELED)
# How long after its end a cancelled subscription is still looked at (late usage, the sweep).
SETTLING = dt.timedelta(days=62)


def due_subscriptions(today: dt.date):
    """What a billing run on `today` looks at: every active subscription that has started, and
    every cancelled one whose last billing dates (usage up to its end, late usage) may be due."""
    cancelled_since = today - lateness() - SETTLING
    return Subscription.objects.filter(
        Q(status=Subscription.Status.ACTIVE)
        | Q(status=Subscription.Status.CANCELED, canceled_on__gte=cancelled_since),
        start_date__lte=today,
    ).order_by("pk")


def changes_to_invoice(
    subscription: Subscription, *, today: dt.date
) -> list[tuple[SubscriptionChange, BillingPeriod]]:
    """The changes to invoice at once that have no invoice yet, each with the period its
    proration falls in (a change on a period's first day prorates nothing: no invoice)."""
    invoiced = Invoice.objects.filter(subscription=subscription, change__isnull=False).exclude(
        status=Invoice.Status.VOID
    )
    changes = subscription.changes.filter(invoice_now=True, at__date__lte=today).exclude(
        pk__in=invoiced.values("change")
    )
    due = []
    for change in changes.order_by("at", "id"):
        period = BillingPeriod.objects.filter(
            subscription=subscription,
            billed_from__lt=change.effective_date,
            end_date__gt=change.effective_date,
        ).first()
        if period is not None:
            due.append((change, period))
    return due
