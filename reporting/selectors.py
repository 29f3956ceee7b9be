"""The figures of the back office: pure reads, each as of a date, per currency.

Every function takes `as_of` (default: core.clock.today()) and returns plain dataclasses whose
money is a `dict[currency, Decimal]`: amounts in different currencies are never added up or
converted. Money read from the database is summed in Python (core.money.exact_sum): SQL SUM() is
floating point on SQLite. Recurring revenue is kept at full precision (a $100 quarterly fee is
$33.333… a month, so that ARR = 12 × MRR gives $400 back); amounts are rounded when shown
(core.formatting). docs/reporting.md defines each figure with a worked example.

Definitions in short:
- MRR of a subscription: its fixed (non-metered) fees for one billing period, rated on the
  contracted quantity, divided by the billing interval in months. Usage is not recurring revenue:
  it is reported apart (usage revenue). A subscription counts on a day when start ≤ day < end and
  its status is active or ended (a canceled one never counts). Items are read as they are now.
- Billings: totals of issued invoices (finalized or paid, not void) by issue date.
- Outstanding: issued invoices not yet paid, total minus the payments applied; overdue: past due.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from django.db.models import Q

from catalog import rating
from catalog.models import BillableMetric, Charge
from core import clock
from core.money import exact_sum, round_money
from core.periods import Period, add_months, month_start
from invoicing.models import Invoice, InvoiceLine
from metering.models import UsageRollup
from metering.rollups import rollup_quantity
from metering.selectors import event_amounts, metric_quantity
from quotes.models import Quote
from subscriptions.models import BillingPeriod, Subscription
from subscriptions.services import fixed_fees

ZERO = Decimal(0)
PerCurrency = dict[str, Decimal]
# Enough digits that sums of divided fees stay exact for any realistic book of business.
PRECISION = 60

ISSUED = [Invoice.Status.FINALIZED, Invoice.Status.PAID]
# Counted up to their end: the term's, or a cancellation's (then they churn).
COUNTED_Q = Q(status__in=[Subscription.Status.ACTIVE, Subscription.Status.ENDED]) | Q(
    status=Subscription.Status.CANCELED, canceled_on__isnull=False
)


def _today(as_of: dt.date | None) -> dt.date:
    return as_of or clock.today()


def _add(totals: PerCurrency, currency: str, amount: Decimal) -> None:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        totals[currency] = totals.get(currency, ZERO) + amount


def _per_currency(pairs: Iterable[tuple[str, Decimal]]) -> PerCurrency:
    grouped: dict[str, list[Decimal]] = defaultdict(list)
    for currency, amount in pairs:
        grouped[str(currency)].append(Decimal(amount))
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return {currency: exact_sum(amounts) for currency, amounts in sorted(grouped.items())}


def _next_month(day: dt.date) -> dt.date:
    return add_months(month_start(day), 1)


# --- recurring revenue ------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionMrr:
    subscription_id: int
    customer_id: int
    currency: str
    mrr: Decimal


def subscription_mrr(subscription: Subscription, items=None, on: dt.date | None = None) -> Decimal:
    """The subscription's recurring fixed fees for one billing period ÷ the interval in months
    (exact), at the terms in force on `on` (default today; the version in force and its ramp
    phase), clamped to the term.
    One-time fees are not recurring revenue."""
    items = subscription.items.all() if items is None else items
    day = on or clock.today()
    day = min(max(day, subscription.start_date), subscription.end_date - dt.timedelta(days=1))
    with localcontext() as ctx:
        ctx.prec = PRECISION
        per_period = exact_sum(
            rating.rate(*item.terms_on(day)).amount
            for item in items
            if not item.is_usage and not item.is_one_time and item.in_force(day)
        )
        return per_period / subscription.billing_interval_months


def mrr_snapshot(day: dt.date) -> dict[int, SubscriptionMrr]:
    """Every subscription counted on `day` (start ≤ day < end: active, ended or cancelled),
    with its MRR."""
    subscriptions = (
        Subscription.objects.filter(COUNTED_Q, start_date__lte=day)
        .prefetch_related("items")
        .order_by("pk")
    )
    return {
        s.pk: SubscriptionMrr(s.pk, s.customer_id, str(s.currency), subscription_mrr(s, on=day))
        for s in subscriptions
        if s.end_date > day
    }


def _totals(snapshot: Iterable[SubscriptionMrr]) -> PerCurrency:
    return _per_currency((s.currency, s.mrr) for s in snapshot)


@dataclass(frozen=True)
class RecurringRevenue:
    as_of: dt.date
    mrr: PerCurrency
    arr: PerCurrency  # 12 × mrr
    subscriptions: int


def recurring_revenue(as_of: dt.date | None = None) -> RecurringRevenue:
    day = _today(as_of)
    snapshot = mrr_snapshot(day)
    mrr = _totals(snapshot.values())
    return RecurringRevenue(
        as_of=day,
        mrr=mrr,
        arr={currency: 12 * amount for currency, amount in mrr.items()},
        subscriptions=len(snapshot),
    )


@dataclass(frozen=True)
class MrrMovements:
    """This month's MRR bridge: start + new + expansion − contraction − churn = end."""

    month_start: dt.date
    as_of: dt.date
    start: PerCurrency
    new: PerCurrency
    expansion: PerCurrency
    contraction: PerCurrency
    churn: PerCurrency
    end: PerCurrency
    new_count: int
    churn_count: int


def mrr_movements(as_of: dt.date | None = None) -> MrrMovements:
    """New: subscriptions counted now but not at the month's start (they started this month);
    churn: counted at the start but not now (they ended this month), at their start MRR;
    expansion / contraction: the MRR change of subscriptions counted at both dates."""
    day = _today(as_of)
    first = month_start(day)
    before, now = mrr_snapshot(first), mrr_snapshot(day)
    new = [s for pk, s in now.items() if pk not in before]
    churned = [s for pk, s in before.items() if pk not in now]
    expansion: PerCurrency = {}
    contraction: PerCurrency = {}
    for pk, current in now.items():
        if pk in before:
            change = current.mrr - before[pk].mrr
            if change > 0:
                _add(expansion, current.currency, change)
            elif change < 0:
                _add(contraction, current.currency, -change)
    return MrrMovements(
        month_start=first,
        as_of=day,
        start=_totals(before.values()),
        new=_totals(new),
        expansion=expansion,
        contraction=contraction,
        churn=_totals(churned),
        end=_totals(now.values()),
        new_count=len(new),
        churn_count=len(churned),
    )


@dataclass(frozen=True)
class NetRetention:
    as_of: dt.date
    base_date: dt.date
    base: PerCurrency  # MRR 12 months ago of the customers who had MRR then
    current: PerCurrency  # the same customers' MRR now (all their subscriptions)
    ratio: dict[str, Decimal | None]  # current ÷ base; None without a base
    customers: int


def net_retention(as_of: dt.date | None = None) -> NetRetention:
    day = _today(as_of)
    base_date = add_months(day, -12)
    then = [s for s in mrr_snapshot(base_date).values() if s.mrr > 0]
    customers = {s.customer_id for s in then}
    base = _totals(then)
    current = _totals(s for s in mrr_snapshot(day).values() if s.customer_id in customers)
    ratio: dict[str, Decimal | None] = {}
    for currency in sorted(set(base) | set(current)):
        denominator = base.get(currency, ZERO)
        with localcontext() as ctx:
            ctx.prec = PRECISION
            ratio[currency] = current.get(currency, ZERO) / denominator if denominator else None
    return NetRetention(
        as_of=day,
        base_date=base_date,
        base=base,
        current=current,
        ratio=ratio,
        customers=len(customers),
    )


# --- billings, usage, receivables ---------------------------------------------------------------


@dataclass(frozen=True)
class Billings:
    this_month: Period  # [first of the month, as_of + 1 day): month to date
    last_month: Period
    this_month_total: PerCurrency
    last_month_total: PerCurrency
    this_month_count: int
    last_month_count: int


def _issued_in(period: Period) -> list[tuple[str, Decimal]]:
    return list(
        Invoice.objects.filter(
            status__in=ISSUED, issue_date__gte=period.start, issue_date__lt=period.end
        ).values_list("currency", "total")
    )


def billings(as_of: dt.date | None = None) -> Billings:
    """Totals of the invoices issued (finalized or paid) this month to date and all last month."""
    day = _today(as_of)
    first = month_start(day)
    this_month = Period(first, day + dt.timedelta(days=1))
    last_month = Period(add_months(first, -1), first)
    this_rows, last_rows = _issued_in(this_month), _issued_in(last_month)
    return Billings(
        this_month=this_month,
        last_month=last_month,
        this_month_total=_per_currency(this_rows),
        last_month_total=_per_currency(last_rows),
        this_month_count=len(this_rows),
        last_month_count=len(last_rows),
    )


@dataclass(frozen=True)
class MetricRevenue:
    metric_code: str  # "" when the line's item is gone
    metric_name: str
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class DailyUsage:
    metric_code: str
    metric_name: str
    days: list[dt.date]
    quantities: list[Decimal]


@dataclass(frozen=True)
class UsageRevenue:
    month: Period
    by_metric: list[MetricRevenue]
    total: PerCurrency
    trend: list[DailyUsage] = field(default_factory=list)  # last 30 days, quantities per metric


USAGE_KINDS = [InvoiceLine.Kind.USAGE, InvoiceLine.Kind.ADJUSTMENT]
TREND_DAYS = 30


def usage_revenue(as_of: dt.date | None = None) -> UsageRevenue:
    """Usage and late-usage adjustment lines of the invoices issued this month, per metric; and
    the daily usage quantity per metric over the last 30 days (from metering's daily rollups:
    the number of events of a count metric, the summed property of a sum metric, the sum over
    subscriptions of each day's maximum for a max metric). The trend is quantities, not money: a
    tiered price is not linear, so a day's usage has no price of its own."""
    day = _today(as_of)
    month = Period(month_start(day), day + dt.timedelta(days=1))
    lines = InvoiceLine.objects.filter(
        kind__in=USAGE_KINDS,
        invoice__status__in=ISSUED,
        invoice__issue_date__gte=month.start,
        invoice__issue_date__lt=month.end,
    ).values_list("invoice__currency", "item__metric__code", "item__metric__name", "amount")
    grouped: dict[tuple[str, str, str], list[Decimal]] = defaultdict(list)
    for currency, code, name, amount in lines:
        grouped[(str(currency), code or "", name or "Other usage")].append(amount)
    by_metric = [
        MetricRevenue(code, name, currency, exact_sum(amounts))
        for (currency, code, name), amounts in sorted(grouped.items())
    ]
    total = _per_currency((m.currency, m.amount) for m in by_metric)
    return UsageRevenue(month=month, by_metric=by_metric, total=total, trend=usage_trend(day))


def usage_trend(as_of: dt.date, days: int = TREND_DAYS) -> list[DailyUsage]:
    first = as_of - dt.timedelta(days=days - 1)
    calendar = [first + dt.timedelta(days=n) for n in range(days)]
    rows = UsageRollup.objects.filter(day__gte=first, day__lte=as_of).values_list(
        "metric_id", "day", "events", "total", "maximum"
    )
    per_metric: dict[int, dict[dt.date, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    metrics = {m.pk: m for m in BillableMetric.objects.all()}
    for metric_id, day, events, total, maximum in rows:
        aggregation = metrics[metric_id].aggregation
        if aggregation == BillableMetric.Aggregation.COUNT:
            value = Decimal(events)
        elif aggregation == BillableMetric.Aggregation.SUM:
            value = Decimal(total)
        else:
            value = Decimal(maximum or 0)
        per_metric[metric_id][day].append(value)
    trend = []
    for metric_id in sorted(per_metric, key=lambda pk: metrics[pk].code):
        metric = metrics[metric_id]
        by_day = per_metric[metric_id]
        trend.append(
            DailyUsage(
                metric_code=metric.code,
                metric_name=metric.name,
                days=calendar,
                quantities=[exact_sum(by_day.get(d, [])) for d in calendar],
            )
        )
    return trend


@dataclass(frozen=True)
class Receivables:
    as_of: dt.date
    outstanding: PerCurrency
    overdue: PerCurrency
    outstanding_count: int
    overdue_count: int
    awaiting_review: int  # draft invoices


def receivables(as_of: dt.date | None = None) -> Receivables:
    """Open invoices (finalized, not paid): their open amounts (Invoice.open_amount); overdue:
    those whose due date is before `as_of`. Read as the ledger stands (payments included whatever
    their date). Awaiting review: the draft invoices."""
    day = _today(as_of)
    open_invoices = Invoice.objects.filter(status=Invoice.Status.FINALIZED)
    outstanding, overdue = [], []
    for invoice in open_invoices:
        currency, due, due_date = invoice.currency, invoice.open_amount, invoice.due_date
        if due <= 0:
            continue
        outstanding.append((currency, due))
        if due_date is not None and due_date < day:
            overdue.append((currency, due))
    return Receivables(
        as_of=day,
        outstanding=_per_currency(outstanding),
        overdue=_per_currency(overdue),
        outstanding_count=len(outstanding),
        overdue_count=len(overdue),
        awaiting_review=Invoice.objects.filter(status=Invoice.Status.DRAFT).count(),
    )


# --- forecast ---------------------------------------------------------------------------------

FORECAST_MONTHS = 3
USAGE_WINDOW_DAYS = 90
# Aggregations whose quantity grows with time (scaled to the month's days); the others (max,
# latest, unique count, time-weighted, and any recurring metric) are levels, taken as they were.
FLOWS = {BillableMetric.Aggregation.COUNT, BillableMetric.Aggregation.SUM}

FORECAST_METHOD = (
    "Per active subscription: the fixed fees of its billing periods that start in the month, "
    "plus its last 90 days' usage per metric extrapolated to its days in the month and rated "
    "at its own prices (before tax, credits and deals not yet signed)."
)


@dataclass(frozen=True)
class ForecastMonth:
    month: Period
    fixed: PerCurrency
    usage: PerCurrency
    total: PerCurrency


@dataclass(frozen=True)
class Forecast:
    as_of: dt.date
    months: list[ForecastMonth]
    method: str = FORECAST_METHOD


def _active_days(subscription: Subscription, month: Period) -> int:
    start = max(month.start, subscription.start_date, subscription.trial_end_date or month.start)
    end = min(month.end, subscription.end_date)
    return max((end - start).days, 0)


@dataclass(frozen=True)
class _WindowUsage:
    """One metered item's usage over the 90-day window: a quantity, or event amounts."""

    item: object  # SubscriptionItem
    quantity: Decimal = ZERO
    amounts: tuple[Decimal, ...] | None = None  # percentage charges (rated on amounts)


def _window_usage(subscription: Subscription, items, window: Period) -> list[_WindowUsage]:
    """Read once per subscription: the usage of each metered item over the window."""
    usage_items = [item for item in items if item.is_usage]
    priced_groups: dict[int, list[str]] = defaultdict(list)
    for item in usage_items:
        if item.group_value:
            priced_groups[item.metric_id].append(item.group_value)
    result = []
    for item in usage_items:
        scope = {
            "subscription": subscription,
            "metric": item.metric,
            "period": window,
            "group_value": item.group_value or None,
            "exclude_groups": () if item.group_value else priced_groups.get(item.metric_id, ()),
        }
        if rating.is_rated_on_amounts(item.pricing):
            result.append(_WindowUsage(item, amounts=tuple(event_amounts(**scope))))
        else:
            quantity, _ = rollup_quantity(**scope) or metric_quantity(**scope)
            result.append(_WindowUsage(item, quantity=quantity))
    return result


def _usage_forecast(
    subscription: Subscription, usage: list[_WindowUsage], window: Period, days: int
) -> Decimal:
    """The subscription's usage for `days` days of a month, from its window's usage, rated."""
    total = ZERO
    for used in usage:
        item = used.item
        with localcontext() as ctx:
            ctx.prec = PRECISION
            share = Decimal(days) / window.days
            if used.amounts is not None:
                # Per-event fees add up: the window's fees scaled to the month's days.
                amount = rating.rate_events(item.pricing, list(used.amounts)).amount * share
            else:
                quantity = used.quantity
                if item.metric.aggregation in FLOWS and not item.metric.recurring:
                    quantity = quantity * share
                amount = rating.rate(item.pricing, quantity).amount
        total += round_money(amount, subscription.currency)
    return total


def forecast(as_of: dt.date | None = None, months: int = FORECAST_MONTHS) -> Forecast:
    """Billings projected for the next `months` calendar months after as_of's month (see
    FORECAST_METHOD). Usage is rated per calendar month, as if each month were a billing period."""
    day = _today(as_of)
    window = Period(day - dt.timedelta(days=USAGE_WINDOW_DAYS), day)
    first = _next_month(day)
    calendar = [Period(add_months(first, n), add_months(first, n + 1)) for n in range(months)]
    subscriptions = list(
        Subscription.objects.filter(status=Subscription.Status.ACTIVE)
        .select_related("customer")
        .prefetch_related("items__metric")
        .order_by("pk")
    )
    horizon = Period(calendar[0].start, calendar[-1].end)
    periods = BillingPeriod.objects.filter(
        subscription__status=Subscription.Status.ACTIVE,
        end_date__gt=horizon.start,
        start_date__lt=horizon.end,
    ).order_by("subscription_id", "sequence")
    by_subscription: dict[int, list[BillingPeriod]] = defaultdict(list)
    for period in periods:
        by_subscription[period.subscription_id].append(period)
    fixed: list[PerCurrency] = [{} for _ in calendar]
    usage: list[PerCurrency] = [{} for _ in calendar]
    for subscription in subscriptions:
        currency = str(subscription.currency)
        items = list(subscription.items.all())
        window_usage = None
        for n, month in enumerate(calendar):
            for period in by_subscription[subscription.pk]:
                if month.start <= period.billed_from < month.end:
                    _add(fixed[n], currency, period.advance_amount)
                if month.start <= period.end_date < month.end:  # fixed fees billed in arrears
                    arrears = fixed_fees(
                        subscription,
                        items,
                        Period(period.start_date, period.priced_end),
                        period.billed_from,
                        timing=Charge.Timing.IN_ARREARS,
                        billed_to=period.end_date,
                    )
                    _add(fixed[n], currency, exact_sum(fee.amount for fee in arrears))
            days = _active_days(subscription, month)
            if days and any(item.is_usage for item in items):
                if window_usage is None:  # the usage items in force now carry the trend
                    current = [i for i in items if i.ends_on is None or i.ends_on > day]
                    window_usage = _window_usage(subscription, current, window)
                _add(usage[n], currency, _usage_forecast(subscription, window_usage, window, days))
    result = []
    for n, month in enumerate(calendar):
        currencies = sorted(set(fixed[n]) | set(usage[n]))
        total = {c: fixed[n].get(c, ZERO) + usage[n].get(c, ZERO) for c in currencies}
        result.append(ForecastMonth(month=month, fixed=fixed[n], usage=usage[n], total=total))
    return Forecast(as_of=day, months=result)


# --- sales ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuoteCount:
    status: str
    label: str
    count: int


@dataclass(frozen=True)
class ExpiringQuote:
    pk: int
    number: str
    customer: str
    status: str
    valid_until: dt.date


@dataclass(frozen=True)
class Renewal:
    pk: int
    external_id: str
    customer: str
    end_date: dt.date
    arr: Decimal
    currency: str


@dataclass(frozen=True)
class SalesFigures:
    as_of: dt.date
    quotes_by_status: list[QuoteCount]
    expiring: list[ExpiringQuote]  # open, valid until within the next 7 days
    expiring_until: dt.date
    signed_arr: PerCurrency  # 12 × MRR of subscriptions from quotes accepted this month
    signed_count: int
    renewals: list[Renewal]  # subscriptions ending within 90 days
    renewals_until: dt.date
    renewals_mine: bool  # True: only customers with a quote the user owns


OPEN_QUOTES = sorted(Quote.OPEN)
EXPIRY_DAYS = 7
RENEWAL_DAYS = 90


def sales_figures(as_of: dt.date | None = None, *, owner=None) -> SalesFigures:
    """`owner`: a user; renewals are then those of customers with a quote the user owns."""
    day = _today(as_of)
    counts = dict.fromkeys(Quote.Status.values, 0)  # every state, even an empty one
    for status in Quote.objects.values_list("status", flat=True):
        counts[status] += 1
    by_status = [QuoteCount(s, Quote.Status(s).label, n) for s, n in counts.items()]

    until = day + dt.timedelta(days=EXPIRY_DAYS)
    expiring = [
        ExpiringQuote(q.pk, q.number, q.customer.name, q.status, q.valid_until)
        for q in Quote.objects.filter(
            status__in=OPEN_QUOTES, valid_until__gte=day, valid_until__lte=until
        )
        .select_related("customer")
        .order_by("valid_until", "pk")
    ]

    first = month_start(day)
    accepted = (
        Quote.objects.filter(status=Quote.Status.ACCEPTED, accepted_at__date__gte=first)
        .filter(accepted_at__date__lte=day, subscription__isnull=False)  # new business
        .select_related("subscription")
        .prefetch_related("subscription__items")
    )
    signed = [
        (str(q.subscription.currency), 12 * subscription_mrr(q.subscription, on=day))
        for q in accepted
    ]

    renewals_until = day + dt.timedelta(days=RENEWAL_DAYS)
    candidates = Subscription.objects.filter(
        status=Subscription.Status.ACTIVE, start_date__lte=day
    ).select_related("customer")
    if owner is not None:
        candidates = candidates.filter(customer__quotes__owner=owner).distinct()
    renewals = sorted(
        (
            Renewal(
                s.pk,
                s.external_id,
                s.customer.name,
                s.end_date,
                12 * subscription_mrr(s, on=day),
                str(s.currency),
            )
            for s in candidates.prefetch_related("items")
            if day <= s.end_date <= renewals_until
        ),
        key=lambda r: (r.end_date, r.external_id),
    )
    return SalesFigures(
        as_of=day,
        quotes_by_status=by_status,
        expiring=expiring,
        expiring_until=until,
        signed_arr=_per_currency(signed),
        signed_count=len(signed),
        renewals=renewals,
        renewals_until=renewals_until,
        renewals_mine=owner is not None,
    )
