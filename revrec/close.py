"""Month-end close: the checklist finance sees, closing a period, reopening the latest one.

Periods close in order (never one while an earlier one is open) and only the latest closed one
reopens, so the closed periods are always the earliest months of the books; a month first seen
after a later one closed is made closed (revrec.ledger.period_for), and a posting dated in it
lands in the first open period. A period closes only when every check of its checklist passes:

- billing run complete: no billing date in the period that a billing run would still bill
  (what shadow billing would make, as of the period's last day, for a date in the period);
- no draft invoice dated (billing date) in the period;
- recognition posted (see `recognition_pending`);
- unapplied cash reviewed: the credit balances at the period's end are listed and finance has
  confirmed it reviewed them (`period_cash_review`).

Closing and reopening lock the period's row, which post_entry locks too: a close waits for the
postings in flight, and a posting after it lands in the next open period. On PostgreSQL the
database itself refuses any journal row in a closed period (revrec/migrations/0004).
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from core import clock
from core.errors import ValidationError
from core.formatting import format_money
from core.periods import Period
from customers.models import Customer
from invoicing.models import CreditBalanceEntry, Invoice
from invoicing.schedule import (
    billing_schedule,
    changes_to_invoice,
    due_subscriptions,
    lateness,
    unbilled,
)
from invoicing.shadow import subscription_shadow_bill
from revrec.models import (
    AccountingPeriod,
    PerformanceObligation,
    RecognitionLine,
    RevenueContract,
)
from subscriptions.models import BillingPeriod, Subscription, SubscriptionChange

ZERO = Decimal(0)


@dataclass
class Check:
    key: str
    title: str
    ok: bool
    why: str
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, admin url)
    items: list[str] = field(default_factory=list)  # what fails, or what was reviewed


def _last_day(period: AccountingPeriod) -> dt.date:
    return period.end - dt.timedelta(days=1)


def _changelist(name: str, **query) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(query)}" if query else url


def pending_billing(period: AccountingPeriod) -> list[tuple[str, dt.date, str]]:
    """(subscription external id, billing date, what it would bill) for each invoice a billing
    run on the period's last day would still make for a billing date in the period."""
    last_day, pending = _last_day(period), []
    due = due_subscriptions(last_day)
    for subscription in due.filter(pk__in=_maybe_unbilled(period, due)).select_related("customer"):
        dates = unbilled(subscription, billing_schedule(subscription), today=last_day)
        changes = changes_to_invoice(subscription, today=last_day)
        if not any(period.start <= due.date < period.end for due in dates) and not any(
            period.start <= change.at.date() < period.end for change, _ in changes
        ):
            continue  # nothing unbilled in the period: no need to build anything
        for built in subscription_shadow_bill(subscription=subscription, today=last_day):
            invoice = built.invoice
            if period.start <= invoice.billing_date < period.end:
                pending.append(
                    (
                        subscription.external_id,
                        invoice.billing_date,
                        format_money(invoice.total, invoice.currency),
                    )
                )
    return pending


def _maybe_unbilled(period: AccountingPeriod, due) -> set[int]:
    """The subscriptions of `due` (a queryset) that may have an invoice to make for a billing
    date in the period, in a fixed number of queries: a billing date of their schedule in the
    period (invoicing.schedule.billing_dates: each period's billed_from; the last period's end
    and that end plus the lateness) with no invoice that is not void, or a change invoiced at
    once made around the period. The rest have nothing unbilled in it; pending_billing looks at
    these only, one by one, as before."""
    start, end, late = period.start, period.end, lateness()
    dates: dict[int, set[dt.date]] = defaultdict(set)
    periods = BillingPeriod.objects.filter(subscription__in=due.values("pk")).order_by()
    for subscription_id, day in periods.filter(
        billed_from__gte=start, billed_from__lt=end
    ).values_list("subscription_id", "billed_from"):
        dates[subscription_id].add(day)
    last_ends = (
        periods.values("subscription_id")
        .annotate(last_end=Max("end_date"))
        .filter(last_end__gte=start - late, last_end__lt=end)
        .values_list("subscription_id", "last_end")
    )
    for subscription_id, last_end in last_ends:
        for day in (last_end, last_end + late):
            if start <= day < end:
                dates[subscription_id].add(day)
    billed = Invoice.objects.filter(
        subscription__in=due.values("pk"),
        change__isnull=True,
        billing_date__gte=start,
        billing_date__lt=end,
    ).exclude(status=Invoice.Status.VOID)
    for subscription_id, day in billed.values_list("subscription_id", "billing_date"):
        dates[subscription_id].discard(day)
    maybe = {subscription_id for subscription_id, days in dates.items() if days}
    around = Period(start - dt.timedelta(days=1), end + dt.timedelta(days=1))
    changes = SubscriptionChange.objects.filter(
        subscription__in=due.values("pk"),
        invoice_now=True,
        at__gte=dt.datetime.combine(around.start, dt.time(), tzinfo=dt.UTC),
        at__lt=dt.datetime.combine(around.end, dt.time(), tzinfo=dt.UTC),
    )
    return maybe | set(changes.values_list("subscription_id", flat=True))


def _billing_check(period: AccountingPeriod) -> Check:
    pending = pending_billing(period)
    items = [f"{ext}: billing date {day:%b %-d} would bill {total}" for ext, day, total in pending]
    return Check(
        key="billing",
        title="Billing run complete",
        ok=not pending,
        why=(
            "Every billing date in the period is invoiced."
            if not pending
            else f"{len(pending)} invoice(s) for billing dates in the period are not made yet: "
            "run billing (or see shadow billing as of the period's last day)."
        ),
        links=[
            (
                "Shadow billing",
                f"{reverse('invoicing-shadow-billing')}?{urlencode({'as_of': _last_day(period)})}",
            )
        ],
        items=items,
    )


def _drafts_check(period: AccountingPeriod) -> Check:
    drafts = Invoice.objects.filter(
        status=Invoice.Status.DRAFT, billing_date__gte=period.start, billing_date__lt=period.end
    ).select_related("customer")
    items = [f"{d.customer} — draft of {d.billing_date:%b %-d, %Y}" for d in drafts]
    return Check(
        key="drafts",
        title="No draft invoices",
        ok=not items,
        why=(
            "No invoice dated in the period is still a draft."
            if not items
            else f"{len(items)} draft invoice(s) dated in the period: finalize or delete them."
        ),
        links=[
            (
                "Drafts of the period",
                _changelist(
                    "invoicing_invoice",
                    status__exact="draft",
                    billing_date__gte=period.start.isoformat(),
                    billing_date__lt=period.end.isoformat(),
                ),
            )
        ],
        items=items,
    )


def recognition_pending(period: AccountingPeriod) -> list[str]:
    """What is left to recognize for the period: subscriptions (and renewals) in service by its
    end without their revenue contract yet; the recognition run not run since the month ended
    while usage was in service in it (its usage and accruals are computed by the run); the
    contracts' recognition lines of the period or before it not posted yet (revrec.recognition.
    recognize posts them)."""
    items = []
    made = RevenueContract.objects.values("subscription_id")
    for external_id in (
        Subscription.objects.filter(start_date__lt=period.end)
        .exclude(pk__in=made.filter(renewal=None))
        .values_list("external_id", flat=True)
    ):
        items.append(f"{external_id}: no revenue contract yet")
    for external_id, start in (
        SubscriptionChange.objects.filter(
            kind=SubscriptionChange.Kind.RENEWAL, effective_date__lt=period.end
        )
        .exclude(pk__in=RevenueContract.objects.exclude(renewal=None).values("renewal_id"))
        .values_list("subscription__external_id", "effective_date")
    ):
        items.append(f"{external_id}: no revenue contract yet for its renewal of {start}")
    month_over = timezone.make_aware(dt.datetime.combine(period.end, dt.time()))
    usage = PerformanceObligation.objects.filter(
        kind=PerformanceObligation.Kind.USAGE,
        service_start__lt=period.end,
        service_end__gt=period.start,
    )
    if (period.recognized_at is None or period.recognized_at < month_over) and usage.exists():
        items.append(f"the recognition run has not run for {period} since the month ended")
    lines = (
        RecognitionLine.objects.filter(entry=None, month__lte=period.start)
        .exclude(amount=0)
        .select_related("obligation__contract__subscription")
    )
    items += [
        f"{line.obligation.contract.subscription.external_id}: {line.obligation.description} "
        f"{line.month:%b %Y} {format_money(line.amount, line.obligation.contract.currency)}"
        for line in lines
    ]
    return items


def _recognition_check(period: AccountingPeriod) -> Check:
    items = recognition_pending(period)
    return Check(
        key="recognition",
        title="Recognition posted",
        ok=not items,
        why=(
            "Revenue earned up to the period's end is recognized."
            if not items
            else f"{len(items)} recognition(s) earned by the period's end are not posted: "
            "run the recognition."
        ),
        links=[
            ("Recognize revenue", reverse("admin:revrec_revenuecontract_recognize")),
            ("Revenue contracts", _changelist("revrec_revenuecontract")),
        ],
        items=items,
    )


def unapplied_cash(period: AccountingPeriod) -> list[tuple[Customer, str, Decimal]]:
    """Each customer's credit balance (money on account) at the period's end, per currency,
    other than zero: (customer, currency, balance), by currency then customer name."""
    sums: dict[tuple[int, str], Decimal] = {}
    rows = CreditBalanceEntry.objects.filter(effective_on__lt=period.end).order_by()
    for customer_id, currency, amount in rows.values_list("customer_id", "currency", "amount"):
        key = (customer_id, str(currency))
        sums[key] = sums.get(key, ZERO) + amount
    customers = Customer.objects.in_bulk({customer_id for customer_id, _ in sums})
    found = [
        (customers[cid], currency, amount) for (cid, currency), amount in sums.items() if amount
    ]
    return sorted(found, key=lambda row: (row[1], row[0].name))


def _cash_check(period: AccountingPeriod) -> Check:
    balances = unapplied_cash(period)
    items = [
        f"{customer}: {format_money(amount, currency)}" for customer, currency, amount in balances
    ]
    reviewed = period.cash_reviewed_at is not None
    if reviewed:
        why = f"Reviewed by {period.cash_reviewed_by} on {period.cash_reviewed_at:%b %-d, %Y}."
    elif balances:
        why = (
            f"{len(balances)} credit balance(s) at the period's end: review them (apply, refund "
            "or leave on account), then confirm."
        )
    else:
        why = "No credit balance at the period's end: confirm the review."
    return Check(
        key="cash",
        title="Unapplied cash reviewed",
        ok=reviewed,
        why=why,
        links=[("Credit balances", reverse("receivables-credit-balances"))],
        items=items,
    )


def close_checklist(period: AccountingPeriod) -> list[Check]:
    """The checks a period must pass to close, in the order finance works through them."""
    return [
        _billing_check(period),
        _drafts_check(period),
        _recognition_check(period),
        _cash_check(period),
    ]


def _lock(period: AccountingPeriod) -> AccountingPeriod:
    return AccountingPeriod.objects.select_for_update().get(pk=period.pk)


def period_cash_review(*, period: AccountingPeriod, by) -> AccountingPeriod:
    """Finance confirms it reviewed the period's unapplied cash (the credit balances)."""
    with transaction.atomic():
        period = _lock(period)
        if period.status != AccountingPeriod.Status.OPEN:
            raise ValidationError(f"{period} is closed: its review cannot change.")
        period.cash_reviewed_at, period.cash_reviewed_by = clock.now(), by
        period._history_user = by
        period._change_reason = "Unapplied cash reviewed"
        period.save(update_fields=["cash_reviewed_at", "cash_reviewed_by"])
    return period


def period_close(*, period: AccountingPeriod, by) -> AccountingPeriod:
    """Close the period: refused, with the failing checks named, unless every check passes and
    every earlier period is closed. Nothing posts into it afterwards."""
    with transaction.atomic():
        period = _lock(period)
        if period.status == AccountingPeriod.Status.CLOSED:
            raise ValidationError(f"{period} is closed already.")
        earlier = (
            AccountingPeriod.objects.filter(start__lt=period.start, status="open")
            .order_by("start")
            .first()
        )
        if earlier is not None:
            raise ValidationError(
                f"{earlier} is still open: periods close in order, close {earlier} first."
            )
        failing = [check for check in close_checklist(period) if not check.ok]
        if failing:
            raise ValidationError(
                f"{period} cannot close. "
                + " ".join(f"{check.title}: {check.why}" for check in failing)
            )
        period.status = AccountingPeriod.Status.CLOSED
        period.closed_at, period.closed_by = clock.now(), by
        period._history_user = by
        period._change_reason = "Closed"
        period.save(update_fields=["status", "closed_at", "closed_by"])
    return period


def latest_closed() -> AccountingPeriod | None:
    return (
        AccountingPeriod.objects.filter(status=AccountingPeriod.Status.CLOSED)
        .order_by("-start")
        .first()
    )


def period_reopen(*, period: AccountingPeriod, by, reason: str) -> AccountingPeriod:
    """Reopen the latest closed period, with a reason (kept on the period and in its history)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why the period reopens: the reason is kept in its history.")
    with transaction.atomic():
        period = _lock(period)
        if period.status != AccountingPeriod.Status.CLOSED:
            raise ValidationError(f"{period} is open: only a closed period reopens.")
        latest = latest_closed()
        if latest.pk != period.pk:
            raise ValidationError(f"Only the latest closed period reopens: reopen {latest} first.")
        period.status = AccountingPeriod.Status.OPEN
        period.closed_at, period.closed_by = None, None
        period.reopen_reason = reason[:300]
        # The review was of the cash as it stood: finance confirms it again before closing.
        period.cash_reviewed_at, period.cash_reviewed_by = None, None
        period._history_user = by
        period._change_reason = f"Reopened: {reason}"[:100]
        period.save()
    return period
