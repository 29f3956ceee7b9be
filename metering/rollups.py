"""Usage rollups: the count, sum and max of a metric's events per subscription, UTC day and group
value, kept current in the ingestion transaction. They let the live current-usage read answer
from a few rows per day instead of scanning millions of events; billing reads the events.

A rollup reflects the metric's filters and group-by as they were when each event arrived: after
changing a metric's definition, run `manage.py rebuild_usage_rollups`.
"""

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.db import connection
from django.db.models import Max, Q, Sum

from catalog.models import BillableMetric
from core.periods import Period
from metering.models import Event, UsageRollup
from subscriptions.models import Subscription

ROLLED_UP = {
    BillableMetric.Aggregation.COUNT,
    BillableMetric.Aggregation.SUM,
    BillableMetric.Aggregation.MAX,
}


def as_text(value) -> str:
    """A JSON scalar as the databases render it as text (5 → "5", true → "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matches(metric: BillableMetric, properties: dict) -> bool:
    for prop, allowed in (metric.filters or {}).items():
        value = properties.get(prop)
        if value is None or as_text(value) not in {as_text(v) for v in allowed}:
            return False
    return True


def rollups_add(rows: Iterable[dict]) -> None:
    """Add newly stored events (dicts with subscription_id, metric, timestamp, properties)."""
    deltas: dict[tuple, list] = {}
    for row in rows:
        metric = row["metric"]
        if metric.aggregation not in ROLLED_UP or not matches(metric, row["properties"]):
            continue
        group = row["properties"].get(metric.group_by) if metric.group_by else None
        key = (
            row["subscription_id"],
            metric.pk,
            row["timestamp"].astimezone(dt.UTC).date(),
            "" if group is None else as_text(group),
        )
        value = Decimal(str(row["properties"][metric.field_name])) if metric.field_name else None
        delta = deltas.setdefault(key, [0, Decimal(0), None])
        delta[0] += 1
        if value is not None:
            delta[1] += value
            delta[2] = value if delta[2] is None else max(delta[2], value)
    if not deltas:
        return
    table = UsageRollup._meta.db_table
    placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(deltas))
    params = []
    for key in sorted(deltas):  # a stable order: concurrent batches lock rows alike
        sub_id, metric_id, day, group = key
        events, total, maximum = deltas[key]
        params += [sub_id, metric_id, connection.ops.adapt_datefield_value(day), group]
        params += [events, str(total), None if maximum is None else str(maximum)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (subscription_id, metric_id, day, group_value, events, total, "
            f"maximum) VALUES {placeholders} "
            "ON CONFLICT (subscription_id, metric_id, day, group_value) DO UPDATE SET "
            f"events = {table}.events + excluded.events, "
            f"total = {table}.total + excluded.total, "
            f"maximum = CASE WHEN {table}.maximum IS NULL OR excluded.maximum > {table}.maximum "
            f"THEN excluded.maximum ELSE {table}.maximum END",
            params,
        )


def rollup_quantity(
    *,
    subscription: Subscription,
    metric: BillableMetric,
    period: Period,
    group_value=None,
    exclude_groups=(),
) -> tuple[Decimal, int] | None:
    """(quantity, events in the period) from the rollups, or None when the metric needs the
    events themselves (unique count, latest, time-weighted, a recurring max)."""
    if metric.aggregation not in ROLLED_UP or (
        metric.recurring and metric.aggregation == BillableMetric.Aggregation.MAX
    ):
        return None
    start = min(period.start, subscription.start_date) if metric.recurring else period.start
    rows = UsageRollup.objects.filter(
        subscription=subscription, metric=metric, day__gte=start, day__lt=period.end
    )
    if metric.group_by and group_value is not None:
        rows = rows.filter(group_value=as_text(group_value))
    elif metric.group_by and exclude_groups:
        rows = rows.exclude(group_value__in=[as_text(v) for v in exclude_groups])
    in_period = Q(day__gte=period.start)
    totals = rows.aggregate(
        all_events=Sum("events"),
        period_events=Sum("events", filter=in_period),
        sum_total=Sum("total"),
        max_value=Max("maximum"),
    )
    count = int(totals["period_events"] or 0)
    if metric.aggregation == BillableMetric.Aggregation.COUNT:
        return Decimal(totals["all_events"] or 0), count
    if metric.aggregation == BillableMetric.Aggregation.SUM:
        return Decimal(totals["sum_total"] or 0), count
    return Decimal(totals["max_value"] or 0), count


def rollups_rebuild(*, subscription: Subscription) -> int:
    """Recompute a subscription's rollups from its events (after a metric's definition changed)."""
    UsageRollup.objects.filter(subscription=subscription).delete()
    metrics = {m.code: m for m in BillableMetric.objects.filter(aggregation__in=ROLLED_UP)}
    events = Event.objects.filter(subscription=subscription, code__in=list(metrics)).values(
        "subscription_id", "code", "timestamp", "properties"
    )
    batch, seen = [], 0
    for event in events.iterator(chunk_size=10_000):
        batch.append({**event, "metric": metrics[event["code"]]})
        if len(batch) == 10_000:
            rollups_add(batch)
            seen, batch = seen + len(batch), []
    rollups_add(batch)
    return seen + len(batch)
