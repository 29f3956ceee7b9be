"""Usage reads: aggregation runs in the database, one query per metric group."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DecimalField, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from catalog import rating
from catalog.models import BillableMetric
from core import clock
from core.money import round_money
from core.periods import Period, day_start
from metering.models import Event
from subscriptions.models import BillingPeriod, Subscription, SubscriptionItem


@dataclass(frozen=True)
class ItemUsage:
    item: SubscriptionItem
    quantity: Decimal
    events_count: int
    rating: rating.Rating
    amount: Decimal  # rounded to the currency's minor unit


def metric_quantity(
    *, subscription: Subscription, metric: BillableMetric, period: Period
) -> tuple[Decimal, int]:
    """(aggregated quantity, number of events) of a metric over [period.start, period.end)."""
    events = Event.objects.filter(
        subscription=subscription,
        code=metric.code,
        timestamp__gte=day_start(period.start),
        timestamp__lt=day_start(period.end),
    )
    aggregates = {"events": Count("id")}
    if metric.aggregation == BillableMetric.Aggregation.SUM:
        aggregates["total"] = Sum(
            Cast(
                KT(f"properties__{metric.field_name}"),
                DecimalField(max_digits=38, decimal_places=12),
            )
        )
    result = events.aggregate(**aggregates)
    if metric.aggregation == BillableMetric.Aggregation.COUNT:
        quantity = Decimal(result["events"])
    else:
        quantity = Decimal(result["total"] or 0)
    return quantity, result["events"]


def usage_for_period(*, subscription: Subscription, period: Period) -> list[ItemUsage]:
    """Every usage item of the subscription, aggregated and rated over the period."""
    usage = []
    for item in subscription.items.filter(metric__isnull=False).select_related("metric"):
        quantity, count = metric_quantity(
            subscription=subscription, metric=item.metric, period=period
        )
        rated = rating.rate(item.pricing, quantity)
        usage.append(
            ItemUsage(
                item=item,
                quantity=quantity,
                events_count=count,
                rating=rated,
                amount=round_money(rated.amount, subscription.currency),
            )
        )
    return usage


def current_period(*, subscription: Subscription) -> Period | None:
    today = clock.today()
    bp = BillingPeriod.objects.filter(
        subscription=subscription, start_date__lte=today, end_date__gt=today
    ).first()
    return Period(bp.start_date, bp.end_date) if bp else None
