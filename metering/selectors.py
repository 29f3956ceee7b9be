"""Usage reads: aggregation runs in the database, a bounded number of queries per metric."""

import datetime as dt
import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import NotSupportedError, connection
from django.db.models import Count, DecimalField, Func, Max, Q, QuerySet, Sum, TextField
from django.db.models.expressions import Window
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from catalog import rating
from catalog.models import BillableMetric
from core import clock
from core.money import round_money
from core.periods import Period, day_start
from metering.models import Event, UsageRollup
from metering.rollups import ROLLED_UP, as_text, rollup_quantity
from subscriptions.models import BillingPeriod, Subscription, SubscriptionItem

Agg = BillableMetric.Aggregation
ZERO = Decimal(0)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ItemUsage:
    item: SubscriptionItem
    quantity: Decimal
    events_count: int
    rating: rating.Rating
    amount: Decimal  # rounded to the currency's minor unit
    window: Period  # the days rated: the period, or the part of it this version was in force
    pricing: dict  # the terms rated (a cut version's minimum commitment prorated)


# --- SQL building blocks ----------------------------------------------------------------------


def _property_text(name: str) -> Cast:
    """properties[name] as text on both databases: 5 and "5" both read "5"; absent is NULL.

    KeyTextTransform is built directly (not KT("properties__…")) so that a property name holding
    "__" is one key, not a path. The key travels as a query parameter.
    """
    return Cast(KeyTextTransform(name, "properties"), TextField())


def _property_number(name: str) -> Cast:
    """properties[name] as numeric(38, 12) (a number or a numeric string, checked at ingestion)."""
    return Cast(
        KeyTextTransform(name, "properties"), DecimalField(max_digits=38, decimal_places=12)
    )


class _SecondsUntil(Func):
    """Seconds from the event's timestamp to `end` (a number; exact on PostgreSQL).

    PostgreSQL: EXTRACT(EPOCH FROM interval) is numeric (exact to the microsecond). SQLite stores
    UTC timestamps as 'YYYY-MM-DD HH:MM:SS[.ffffff]' text: whole seconds by strftime('%s') and the
    microseconds read from the text, in integer microseconds, then divided by 10^6 (a float).
    """

    output_field = DecimalField(max_digits=38, decimal_places=6)

    def __init__(self, end: dt.datetime, timestamp="timestamp"):
        super().__init__(timestamp)
        self.end = end

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"Time-weighted sums are not implemented on {connection.vendor}.")

    def as_postgresql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"EXTRACT(EPOCH FROM (%s::timestamptz - {column}))", [self.end, *params]

    def as_sqlite(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        end_us = (self.end - EPOCH) // dt.timedelta(microseconds=1)
        sql = (
            f"((%s - (CAST(strftime('%%s', {column}) AS INTEGER) * 1000000"
            f" + CAST(substr({column} || '000000', 21, 6) AS INTEGER))) / 1000000.0)"
        )
        return sql, [end_us, *params, *params]


class _Sum(Sum):
    """SUM; TOTAL on SQLite, whose SUM raises "integer overflow" past 2^63 (two events of 5 × 10^18
    tokens) where TOTAL adds as a float: no precision is lost that SQLite's 15-digit decimals keep.
    """

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sqlite(compiler, connection, function="TOTAL", **extra_context)


def _matching_events(
    *, subscription: Subscription, metric: BillableMetric, group_value, exclude_groups
) -> QuerySet:
    """The subscription's events of the metric that pass its filters and the group selection."""
    events = Event.objects.filter(subscription=subscription, code=metric.code)
    for number, (prop, allowed) in enumerate(sorted((metric.filters or {}).items())):
        alias = f"_filter_{number}"
        events = events.alias(**{alias: _property_text(prop)}).filter(
            **{f"{alias}__in": [as_text(v) for v in allowed]}
        )
    if metric.group_by and (group_value is not None or exclude_groups):
        events = events.alias(_group=_property_text(metric.group_by))
        if group_value is not None:
            events = events.filter(_group=as_text(group_value))
        if exclude_groups:
            # An event without the group property is priced by the default charge too.
            events = events.filter(
                Q(_group__isnull=True) | ~Q(_group__in=[as_text(v) for v in exclude_groups])
            )
    return events


def _dec(value) -> Decimal:
    return ZERO if value is None else Decimal(value)


# --- public reads ------------------------------------------------------------------------------


def metric_quantity(
    *,
    subscription: Subscription,
    metric: BillableMetric,
    period: Period,
    group_value: str | None = None,
    exclude_groups: Iterable[str] = (),
) -> tuple[Decimal, int]:
    """(aggregated quantity, number of events) of a metric over the period, in the database.

    Events: the subscription's events of `metric.code` whose properties pass `metric.filters`
    (each listed property's value, as text, is one of the listed values, as text: 5 matches "5");
    with `group_value`, only events whose `properties[metric.group_by]` (as text) equals it; with
    `exclude_groups`, not the events whose group value is listed (events without the property stay:
    the default charge prices them). Without `metric.group_by`, both are ignored.

    S, E = the period's start and end instants (UTC midnight); W = the earlier of S and the
    subscription's start instant. The number of events is always the matching events in [S, E).
    The quantity, by aggregation (v = properties[field_name] as a number):

    - count: events in [S, E); recurring: events in [W, E).
    - sum: Σ v over [S, E); recurring: over [W, E). 0 without events.
    - max: max v over [S, E), 0 without events. Recurring: the greater of that maximum and the
      value carried in, i.e. v of the latest event before S (by timestamp, then id), when
      there is one; with neither, 0. (Two queries.)
    - unique_count: distinct values of properties[field_name] as text over [S, E) (recurring:
      [W, E)); events without the property do not count.
    - latest: v of the latest event (timestamp, then id) in [S, E); recurring: the latest at or
      before E, even before S (events at exactly E are outside [S, E), so: the latest before E).
      0 without one.
    - weighted_sum (always treated as recurring): changes of level. L0 = Σ v before S;
      quantity = (L0 × (E − S) + Σ v_j × (E − t_j) for events in [S, E)) / (E − S), in seconds,
      which equals Σ level × seconds held / seconds in the period (an event at S counts from S).
      The sums come from SQL; the division is done in Python on Decimals (28 digits).

    On SQLite numbers are floating point (15 significant digits), as in every SQLite aggregate.
    """
    start, end = day_start(period.start), day_start(period.end)
    if isinstance(exclude_groups, str):
        exclude_groups = (exclude_groups,)
    events = _matching_events(
        subscription=subscription,
        metric=metric,
        group_value=group_value,
        exclude_groups=tuple(exclude_groups),
    )
    scope = _Scope(
        events=events,
        start=start,
        end=end,
        window_start=min(start, day_start(subscription.start_date)),
        field=metric.field_name,
        recurring=metric.recurring,
    )
    aggregate = _AGGREGATES.get(metric.aggregation)
    if aggregate is None:
        raise ValueError(f"Unknown aggregation {metric.aggregation!r} on metric '{metric.code}'.")
    return aggregate(scope)


@dataclass(frozen=True)
class _Scope:
    """What one aggregation reads: the matching events and the period's instants [start, end)."""

    events: QuerySet
    start: dt.datetime
    end: dt.datetime
    window_start: dt.datetime  # the earlier of start and the subscription's start
    field: str
    recurring: bool

    @property
    def in_period(self) -> Q:
        return Q(timestamp__gte=self.start)  # with timestamp < end applied to the query itself

    @property
    def since(self) -> dt.datetime:
        """Where count, sum and unique_count start: the window for a recurring metric."""
        return self.window_start if self.recurring else self.start


def _count(scope: _Scope) -> tuple[Decimal, int]:
    result = scope.events.filter(timestamp__gte=scope.since, timestamp__lt=scope.end).aggregate(
        total=Count("pk"), events=Count("pk", filter=scope.in_period)
    )
    return Decimal(result["total"]), result["events"]


def _sum(scope: _Scope) -> tuple[Decimal, int]:
    result = scope.events.filter(timestamp__gte=scope.since, timestamp__lt=scope.end).aggregate(
        total=_Sum(_property_number(scope.field)), events=Count("pk", filter=scope.in_period)
    )
    return _dec(result["total"]), result["events"]


def _unique_count(scope: _Scope) -> tuple[Decimal, int]:
    result = scope.events.filter(timestamp__gte=scope.since, timestamp__lt=scope.end).aggregate(
        total=Count(_property_text(scope.field), distinct=True),
        events=Count("pk", filter=scope.in_period),
    )
    return Decimal(result["total"]), result["events"]


def _max(scope: _Scope) -> tuple[Decimal, int]:
    result = scope.events.filter(timestamp__gte=scope.start, timestamp__lt=scope.end).aggregate(
        peak=Max(_property_number(scope.field)), events=Count("pk")
    )
    values = [] if result["peak"] is None else [Decimal(result["peak"])]
    if scope.recurring:
        carried = (
            scope.events.filter(timestamp__lt=scope.start)
            .order_by("-timestamp", "-pk")
            .values_list(_property_number(scope.field), flat=True)
            .first()
        )
        if carried is not None:
            values.append(Decimal(carried))
    return (max(values) if values else ZERO), result["events"]


def _latest(scope: _Scope) -> tuple[Decimal, int]:
    events = scope.events.filter(timestamp__lt=scope.end)
    if not scope.recurring:
        events = events.filter(timestamp__gte=scope.start)
    row = (
        events.order_by("-timestamp", "-pk")
        .annotate(_in_period=Window(Count("pk", filter=scope.in_period)))
        .values_list(_property_number(scope.field), "_in_period")
        .first()
    )
    if row is None:
        return ZERO, 0
    return _dec(row[0]), row[1]


def _weighted_sum(scope: _Scope) -> tuple[Decimal, int]:
    result = scope.events.filter(timestamp__lt=scope.end).aggregate(
        carried=_Sum(_property_number(scope.field), filter=Q(timestamp__lt=scope.start)),
        weighted=_Sum(
            _property_number(scope.field) * _SecondsUntil(scope.end),
            filter=scope.in_period,
            output_field=DecimalField(),
        ),
        events=Count("pk", filter=scope.in_period),
    )
    seconds = Decimal((scope.end - scope.start) // dt.timedelta(seconds=1))
    quantity = _dec(result["carried"])
    if seconds:
        quantity += _dec(result["weighted"]) / seconds
    return quantity, result["events"]


_AGGREGATES = {
    Agg.COUNT: _count,
    Agg.SUM: _sum,
    Agg.UNIQUE_COUNT: _unique_count,
    Agg.MAX: _max,
    Agg.LATEST: _latest,
    Agg.WEIGHTED_SUM: _weighted_sum,
}


def event_amounts(
    *,
    subscription: Subscription,
    metric: BillableMetric,
    period: Period,
    group_value: str | None = None,
    exclude_groups: Iterable[str] = (),
) -> list[Decimal]:
    """properties[field_name] as Decimals of the matching events in [S, E), by (timestamp, id).

    The same events as `metric_quantity` counts (filters, group_value, exclude_groups); one query.
    What the percentage charge model rates event by event.
    """
    if isinstance(exclude_groups, str):
        exclude_groups = (exclude_groups,)
    events = _matching_events(
        subscription=subscription,
        metric=metric,
        group_value=group_value,
        exclude_groups=tuple(exclude_groups),
    )
    values = (
        events.filter(timestamp__gte=day_start(period.start), timestamp__lt=day_start(period.end))
        .order_by("timestamp", "pk")
        .values_list(_property_number(metric.field_name), flat=True)
    )
    return [_dec(v) for v in values]


def usage_for_period(
    *, subscription: Subscription, period: Period, live: bool = False
) -> list[ItemUsage]:
    """Every usage item of the subscription, aggregated (in SQL) and rated over the period: one
    request of `usage_for_periods`, which reads many subscriptions' usage at once."""
    return usage_for_periods([(subscription, period)], live=live)[(subscription.pk, period)]


def usage_for_periods(
    requests: Iterable[tuple[Subscription, Period]],
    *,
    live: bool = False,
    items: dict[int, list[SubscriptionItem]] | None = None,
) -> dict[tuple[int, Period], list[ItemUsage]]:
    """For each (subscription, period): every usage item of the subscription in force in the
    period, aggregated and rated over its days, keyed by (subscription id, period).

    On a metric grouped by a property, an item with a group value prices that value's events and
    an item without one prices every value that no sibling item on the metric prices.

    `items` (subscription id → its items, metrics loaded) saves reading them again. The common
    aggregations (count, sum and max of a metric without filters, groups or carry-over) of every
    request are read in one query (`batch_quantities`); the others one query per item, as
    `metric_quantity` says. The live read (`live`) takes count/sum/max from the rollups instead.
    """
    requests = list(requests)
    if items is None:
        items = {}
        subscriptions = {subscription.pk for subscription, _ in requests}
        for item in SubscriptionItem.objects.filter(
            subscription__in=subscriptions, metric__isnull=False
        ).select_related("metric"):
            items.setdefault(item.subscription_id, []).append(item)
    scopes = []  # (key, item, window, pricing, scope)
    for subscription, period in requests:
        in_force = [
            item
            for item in items.get(subscription.pk, ())
            if item.metric_id is not None and item.window_in(period.start, period.end)
        ]
        priced_groups: dict[int, list[str]] = {}
        for item in in_force:
            if item.group_value:
                priced_groups.setdefault(item.metric_id, []).append(item.group_value)
        for item in in_force:
            window = Period(*item.window_in(period.start, period.end))
            scope = {
                "subscription": subscription,
                "metric": item.metric,
                "period": window,
                "group_value": item.group_value or None,
                "exclude_groups": () if item.group_value else priced_groups.get(item.metric_id, ()),
            }
            pricing = version_pricing(item.pricing, window, period)
            scopes.append(((subscription.pk, period), item, window, pricing, scope))
    batched = batch_quantities(
        [
            (n, scope)
            for n, (_, _, _, pricing, scope) in enumerate(scopes)
            if not live and _batchable(scope["metric"]) and not rating.is_rated_on_amounts(pricing)
        ]
    )
    usage: dict[tuple[int, Period], list[ItemUsage]] = {
        (subscription.pk, period): [] for subscription, period in requests
    }
    for n, (key, item, window, pricing, scope) in enumerate(scopes):
        if rating.is_rated_on_amounts(pricing):
            amounts = event_amounts(**scope)
            rated = rating.rate_events(pricing, amounts)
            quantity, count = sum(amounts, Decimal(0)), len(amounts)
        else:
            if n in batched:
                quantity, count = batched[n]
            else:
                # The live read takes count/sum/max from the rollups; billing reads the events.
                rolled = rollup_quantity(**scope) if live else None
                quantity, count = rolled or metric_quantity(**scope)
            rated = rating.rate(pricing, quantity)
        usage[key].append(
            ItemUsage(
                item=item,
                quantity=quantity,
                events_count=count,
                rating=rated,
                amount=round_money(rated.amount, scope["subscription"].currency),
                window=window,
                pricing=pricing,
            )
        )
    return usage


_BATCHED = {Agg.COUNT, Agg.SUM, Agg.MAX}
_SQLITE_DECIMAL = decimal.Context(prec=15)


def _batchable(metric: BillableMetric) -> bool:
    return (
        metric.aggregation in _BATCHED
        and not metric.recurring
        and not metric.filters
        and not metric.group_by
    )


def batch_quantities(scopes: list[tuple[int, dict]]) -> dict[int, tuple[Decimal, int]]:
    """(quantity, events) of many non-recurring count / sum / max scopes without filters or
    groups, keyed as given, in one query: the scopes are a VALUES list joined to the events on
    (subscription, code, [start, end)), grouped by scope. The same figures as `metric_quantity`
    (tested), read together."""
    if not scopes:
        return {}
    vendor = connection.vendor
    if vendor == "postgresql":
        row = "(%s::integer, %s::bigint, %s::text, %s::timestamptz, %s::timestamptz, %s::text)"
        number = "(e.properties ->> w.field)::numeric(38, 12)"
        total = f"SUM({number})"
    else:
        row = "(%s, %s, %s, %s, %s, %s)"
        number = "CAST(json_extract(e.properties, '$.\"' || w.field || '\"') AS REAL)"
        total = f"TOTAL({number})"  # see _Sum: SQLite's SUM overflows past 2^63
    params: list = []
    for key, scope in scopes:
        metric, window = scope["metric"], scope["period"]
        params += [
            key,
            scope["subscription"].pk,
            metric.code,
            connection.ops.adapt_datetimefield_value(day_start(window.start)),
            connection.ops.adapt_datetimefield_value(day_start(window.end)),
            metric.field_name or None,
        ]
    qn = connection.ops.quote_name
    sql = (
        f"WITH w (k, sub, code, lo, hi, field) AS (VALUES {', '.join([row] * len(scopes))}) "
        f"SELECT w.k, COUNT(e.{qn('id')}), {total}, MAX({number}) "
        f"FROM w JOIN {qn(Event._meta.db_table)} e ON e.subscription_id = w.sub "
        "AND e.code = w.code AND e.timestamp >= w.lo AND e.timestamp < w.hi GROUP BY w.k"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = {key: (events, total, peak) for key, events, total, peak in cursor.fetchall()}
    quantities = {}
    for key, scope in scopes:
        events, total, peak = found.get(key, (0, None, None))
        aggregation = scope["metric"].aggregation
        if aggregation == Agg.COUNT:
            quantity = Decimal(events)
        else:
            value = total if aggregation == Agg.SUM else peak
            if isinstance(value, float):  # SQLite: as Django converts its decimals (15 digits)
                value = _SQLITE_DECIMAL.create_decimal_from_float(value)
            quantity = _dec(value)
        quantities[key] = (quantity, int(events))
    return quantities


def version_pricing(pricing: dict, window: Period, period: Period) -> dict:
    """The terms a version of a usage item rates its days with. A version in force for part of
    the period (a change mid-period) rates the usage of its own days on its own: tiers count from
    its first unit, and its minimum commitment is prorated by its days (so two versions never
    owe two whole minimums)."""
    minimum = pricing.get("min_amount")
    if window == period or minimum in (None, "", "0"):
        return pricing
    share = Decimal(str(minimum)) * window.days / period.days
    return {**pricing, "min_amount": str(share.quantize(Decimal("1e-12")))}


def current_period(*, subscription: Subscription) -> Period | None:
    """What the period in progress bills: from its start (or a trial's end) to its end."""
    today = clock.today()
    bp = BillingPeriod.objects.filter(
        subscription=subscription, start_date__lte=today, end_date__gt=today
    ).first()
    return Period(bp.billed_from, bp.end_date) if bp else None


def previous_period(*, subscription: Subscription) -> Period | None:
    """What the period before the one in progress billed (None in the first period)."""
    today = clock.today()
    bp = (
        BillingPeriod.objects.filter(subscription=subscription, end_date__lte=today)
        .order_by("-end_date")
        .first()
    )
    return Period(bp.billed_from, bp.end_date) if bp else None


@dataclass(frozen=True)
class DailyUsage:
    metric: BillableMetric
    days: list[tuple[dt.date, Decimal]]  # every day of the period read, in order


def daily_usage(*, subscription: Subscription, period: Period) -> list[DailyUsage]:
    """Per metric the subscription is metered on (by name): each day's quantity over the period,
    up to today. A day's quantity is the metric aggregated as if the day were a billing period
    (`metric_quantity` over [day, day + 1), all group values): a count or sum counts the day's
    events — for a recurring metric, everything since the subscription started (the level) —, a
    max is the day's maximum, a time-weighted sum the day's average level.

    Count, sum and (non-recurring) max read the daily rollups: one query for all of them, summed
    in Python (exact). Other aggregations read the events, one query per day.
    """
    metric_ids = subscription.items.filter(metric__isnull=False).values("metric_id")
    metrics = list(BillableMetric.objects.filter(pk__in=metric_ids).order_by("name", "code"))
    end = min(period.end, clock.today() + dt.timedelta(days=1))
    days = [period.start + dt.timedelta(days=n) for n in range(max((end - period.start).days, 0))]

    def rolled(metric: BillableMetric) -> bool:
        return metric.aggregation in ROLLED_UP and not (
            metric.recurring and metric.aggregation == Agg.MAX
        )

    rolled_metrics = [m for m in metrics if rolled(m)]
    per_day: dict[tuple[int, dt.date], Decimal] = {}
    carried: dict[int, Decimal] = {}
    if rolled_metrics and days:
        rows = UsageRollup.objects.filter(
            subscription=subscription,
            metric__in=rolled_metrics,
            day__gte=min(period.start, subscription.start_date),
            day__lt=end,
        ).values_list("metric_id", "day", "events", "total", "maximum")
        kind = {m.pk: m for m in rolled_metrics}
        for metric_id, day, events, total, maximum in rows:
            metric = kind[metric_id]
            value = {Agg.COUNT: Decimal(events), Agg.SUM: _dec(total)}.get(
                metric.aggregation, _dec(maximum)
            )
            if day < period.start:  # before the period: only a recurring metric carries it in
                if metric.recurring:
                    carried[metric_id] = carried.get(metric_id, ZERO) + value
                continue
            key = (metric_id, day)
            if metric.aggregation == Agg.MAX:
                per_day[key] = max(per_day.get(key, value), value)
            else:
                per_day[key] = per_day.get(key, ZERO) + value
    result = []
    for metric in metrics:
        if rolled(metric):
            level = carried.get(metric.pk, ZERO)
            series = []
            for day in days:
                value = per_day.get((metric.pk, day), ZERO)
                if metric.recurring:
                    level += value
                    value = level
                series.append((day, value))
        else:
            series = [
                (
                    day,
                    metric_quantity(
                        subscription=subscription,
                        metric=metric,
                        period=Period(day, day + dt.timedelta(days=1)),
                    )[0],
                )
                for day in days
            ]
        result.append(DailyUsage(metric=metric, days=series))
    return result
