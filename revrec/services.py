"""Ratable revenue: the subscription fee (fixed fees over the whole term) spread over the term's
days and summed per calendar month. The split is largest-remainder, so months sum to the fee."""

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction

from core import clock
from core.money import exact_sum, split
from core.periods import Period, calendar_months
from revrec.models import RevenueSchedule, RevenueScheduleLine
from subscriptions.models import Subscription


@transaction.atomic
def revenue_schedule_build(*, subscription: Subscription) -> RevenueSchedule:
    """Build the schedule once per subscription (idempotent: returns the existing one)."""
    existing = RevenueSchedule.objects.filter(subscription=subscription).first()
    if existing:
        return existing
    total = exact_sum(subscription.billing_periods.values_list("advance_amount", flat=True))
    # Revenue is earned over the billed service: a trial's free days earn nothing.
    start = subscription.trial_end_date or subscription.start_date
    months = calendar_months(Period(start, subscription.end_date))
    try:
        with transaction.atomic():
            schedule = RevenueSchedule.objects.create(
                subscription=subscription, total=total, currency=subscription.currency
            )
    except IntegrityError:
        return RevenueSchedule.objects.get(subscription=subscription)
    amounts = (
        split(total, [m.days for m in months], subscription.currency)
        if total
        else [Decimal(0)] * len(months)
    )
    RevenueScheduleLine.objects.bulk_create(
        RevenueScheduleLine(
            schedule=schedule,
            month=m.start.replace(day=1),
            start_date=m.start,
            end_date=m.end,
            amount=amount,
        )
        for m, amount in zip(months, amounts, strict=True)
    )
    return schedule


@transaction.atomic
def revenue_recognize(*, through: dt.date) -> int:
    """Recognize every schedule line whose last service day is on or before `through`."""
    return RevenueScheduleLine.objects.filter(
        recognized_at=None, end_date__lte=through + dt.timedelta(days=1)
    ).update(recognized_at=clock.now())


def revrec_sync(*, today: dt.date | None = None) -> int:
    """Schedules for new subscriptions, then recognition up to today. Idempotent."""
    for subscription in Subscription.objects.filter(revenue_schedule__isnull=True):
        revenue_schedule_build(subscription=subscription)
    return revenue_recognize(through=today or clock.today())
