"""Usage alerts (bill-shock protection): thresholds on a period's usage, fired once per period.

An alert watches either the quantity of one metric (all the subscription's usage items on it,
summed) or the estimated bill of the current billing period. The estimated bill is the upcoming
invoice's subtotal, before tax: the invoice the billing date that closes the period would make if
the period closed now (usage so far, minimum true-ups, prepaid credit, late-usage adjustments,
fixed fees in arrears for the period and in advance for the next). Invoices are not metering's to
know (DESIGN.md's import order), so the estimate is a function this module is given: by default
the one named by settings.USAGE_ALERTS_BILL_ESTIMATE (invoicing.selectors.estimated_bill), which
config wires; a caller may pass another. Usage is measured over what the period bills, from its
`billed_from` (the end of a trial inside it) to its end, as invoicing does.

`alerts_evaluate` runs from Celery beat every few minutes. It first copies the plans' default
alerts (catalog.PlanAlertDefault) to the subscriptions that miss them, then, per subscription with
active alerts not yet fired this period, computes the usage (and the estimated bill) once and
fires every alert whose value is at or above its threshold. Firing inserts an AlertFiring row; the
unique constraint (alert, period start) is the last word, so two runs — one after the other or at
the same time — fire once. The email to the customer's billing contact goes out after the row is
committed.
"""

import datetime as dt
import logging
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.utils.module_loading import import_string

from catalog.models import BillableMetric, PlanAlertDefault
from core import clock
from core.errors import Conflict, ValidationError
from core.formatting import format_day, format_money, format_quantity
from core.money import QUANTITY_DECIMAL_PLACES, QUANTITY_MAX_DIGITS
from core.periods import Period
from customers.models import Customer
from metering.models import AlertFiring, UsageAlert
from metering.selectors import ItemUsage, usage_for_period
from subscriptions.models import BillingPeriod, Subscription, SubscriptionItem

logger = logging.getLogger(__name__)

MAX_THRESHOLD = Decimal(10) ** (QUANTITY_MAX_DIGITS - QUANTITY_DECIMAL_PLACES)

# (subscription=, as_of=) → the estimated bill of the period in progress on as_of, before tax
# (None without one). Writes nothing.
BillEstimate = Callable[..., Decimal | None]

BILL_DESCRIPTION = "the estimated bill (your next invoice as it stands, before tax)"


def bill_estimate() -> BillEstimate:
    """The estimate wired in the settings (config's choice: metering does not import invoicing)."""
    return import_string(settings.USAGE_ALERTS_BILL_ESTIMATE)


# --- reads --------------------------------------------------------------------------------------


def alert_format(alert: UsageAlert, value: Decimal) -> str:
    """A threshold or value as people read it: a quantity "1,500", an amount "$1,234.50"."""
    if alert.metric_id:
        return format_quantity(value)
    return format_money(value, str(alert.subscription.currency))


def alert_value(
    alert: UsageAlert, *, usage: list[ItemUsage] | None, bill: Decimal | None
) -> Decimal:
    """What the alert compares with its threshold: the metric's quantity in the period's usage,
    or the estimated bill (both computed once per subscription)."""
    if alert.metric_id:
        return sum((u.quantity for u in usage if u.item.metric_id == alert.metric_id), Decimal(0))
    return bill if bill is not None else Decimal(0)


def customer_alerts(*, customer: Customer) -> QuerySet[UsageAlert]:
    """The customer's alerts, on all their subscriptions (the portal's list): per subscription,
    the plan's first ("plan" sorts after "customer"), then by metric (the bill first)."""
    order = ["subscription__external_id", "-source", "metric__name", "threshold", "pk"]
    return (
        UsageAlert.objects.filter(subscription__customer=customer)
        .select_related("subscription", "metric")
        .order_by(*order)
    )


def customer_firings(*, customer: Customer) -> QuerySet[AlertFiring]:
    """The firings of the customer's alerts, newest first."""
    return (
        AlertFiring.objects.filter(alert__subscription__customer=customer)
        .select_related("alert__subscription", "alert__metric")
        .order_by("-fired_at", "-pk")
    )


def subscription_alert_metrics(*, subscription: Subscription) -> list[BillableMetric]:
    """The metrics the subscription is metered on: what a customer's alert can watch."""
    ids = SubscriptionItem.objects.filter(subscription=subscription, metric__isnull=False).values(
        "metric_id"
    )
    return list(BillableMetric.objects.filter(pk__in=ids).order_by("name", "code"))


# --- writes -------------------------------------------------------------------------------------


def _threshold_problem(threshold) -> str | None:
    if not isinstance(threshold, Decimal) or not threshold.is_finite() or threshold <= 0:
        return "Enter a threshold above zero."
    if threshold >= MAX_THRESHOLD:
        return "That threshold is too large: use at most 22 digits before the decimal point."
    if threshold != round(threshold, QUANTITY_DECIMAL_PLACES):
        return f"Use at most {QUANTITY_DECIMAL_PLACES} decimals in the threshold."
    return None


def usage_alert_create(
    *,
    subscription: Subscription,
    metric: BillableMetric | None,
    threshold: Decimal,
    name: str = "",
) -> UsageAlert:
    """A customer's own alert on one of their subscriptions (metric None: the estimated bill).

    Raises ValidationError (details["field"] names the field) and then writes nothing.
    """
    name = (name or "").strip()
    problem = _threshold_problem(threshold)
    if problem:
        raise ValidationError(problem, details={"field": "threshold"})
    if len(name) > UsageAlert._meta.get_field("name").max_length:
        raise ValidationError(
            "Keep the name to 200 characters or fewer.", details={"field": "name"}
        )
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if subscription.status != Subscription.Status.ACTIVE:
            raise ValidationError(
                f"Subscription {subscription.external_id} is not active: alerts watch active "
                "subscriptions only.",
                details={"field": "subscription"},
            )
        if metric is not None:
            metrics = subscription_alert_metrics(subscription=subscription)
            if metric not in metrics:
                choices = " or ".join(m.name for m in metrics)
                raise ValidationError(
                    f"Subscription {subscription.external_id} is not metered on {metric.name}: "
                    f"choose {choices + ', or ' if choices else ''}the estimated bill.",
                    details={"field": "metric"},
                )
        # Under the subscription's lock: a double submit does not make two alerts (two emails).
        twin = UsageAlert.objects.filter(
            subscription=subscription, metric=metric, threshold=threshold
        ).first()
        if twin is not None:
            raise ValidationError(
                f"Subscription {subscription.external_id} already has this alert "
                f"(“{twin}”): choose another threshold.",
                details={"field": "threshold"},
            )
        alert = UsageAlert(
            subscription=subscription,
            metric=metric,
            threshold=threshold,
            name=name,
            source=UsageAlert.Source.CUSTOMER,
        )
        try:
            alert.full_clean()
        except DjangoValidationError as exc:
            raise ValidationError(" ".join(exc.messages)) from exc
        alert.save()
    return alert


def usage_alert_delete(*, alert: UsageAlert) -> None:
    """Delete a customer's own alert (and its firings). Plan alerts are not the customer's."""
    with transaction.atomic():
        alert = UsageAlert.objects.select_for_update().filter(pk=alert.pk).order_by().first()
        if alert is None:
            return  # already deleted (a double submit): nothing left to do
        if alert.source == UsageAlert.Source.PLAN:
            raise Conflict(
                "This alert comes with your plan and cannot be deleted: ask us to change or pause "
                "it."
            )
        alert.delete()


def plan_alerts_copy() -> int:
    """Give every active subscription a copy of each of its plan's default alerts it lacks.

    Idempotent: the unique constraint (subscription, plan default) drops a copy made in between by
    a concurrent run (INSERT … ON CONFLICT DO NOTHING). Returns the number of copies attempted.
    """
    defaults = {d.pk: d for d in PlanAlertDefault.objects.all()}
    if not defaults:
        return 0
    wanted = set(
        Subscription.objects.filter(
            status=Subscription.Status.ACTIVE, plan__alert_defaults__isnull=False
        ).values_list("pk", "plan__alert_defaults")
    )
    have = set(
        UsageAlert.objects.filter(
            plan_default__isnull=False, subscription__status=Subscription.Status.ACTIVE
        ).values_list("subscription_id", "plan_default_id")
    )
    missing = sorted(wanted - have)
    UsageAlert.objects.bulk_create(
        [
            UsageAlert(
                subscription_id=subscription_id,
                metric_id=defaults[default_id].metric_id,
                threshold=defaults[default_id].threshold,
                name=defaults[default_id].name,
                source=UsageAlert.Source.PLAN,
                plan_default_id=default_id,
            )
            for subscription_id, default_id in missing
        ],
        ignore_conflicts=True,
    )
    return len(missing)


def _email_firing(firing_id: int) -> None:
    firing = AlertFiring.objects.select_related(
        "alert__subscription__customer", "alert__metric"
    ).get(pk=firing_id)
    alert = firing.alert
    subscription = alert.subscription
    what = f"usage of {alert.metric.name}" if alert.metric_id else BILL_DESCRIPTION
    last_day = firing.period_end - dt.timedelta(days=1)
    if not subscription.customer.billing_email:  # finance has not set it yet
        logger.warning("alert %s not emailed: no billing email", firing)
        return
    send_mail(
        subject=f"Usage alert on {subscription.external_id}: {alert}",
        message=(
            f"Hello {subscription.customer.name},\n\n"
            f'Your usage alert "{alert}" on subscription {subscription.external_id} was reached: '
            f"{what} is {alert_format(alert, firing.value)} in the billing period "
            f"{format_day(firing.period_start)} to {format_day(last_day)}, at or above the "
            "threshold of "
            f"{alert_format(alert, firing.threshold)}.\n\n"
            "This alert is sent once per billing period. You can see your alerts, and add your "
            "own, in your billing portal.\n"
        ),
        from_email=settings.BILLING_COMPANY["email"],
        recipient_list=[subscription.customer.billing_email],
    )


def _fire(
    alert: UsageAlert, period: BillingPeriod, value: Decimal, now: dt.datetime
) -> AlertFiring | None:
    """Record the firing unless the alert already fired in this period; email after commit."""
    try:
        with transaction.atomic():
            firing = AlertFiring.objects.create(
                alert=alert,
                period_start=period.start_date,
                period_end=period.end_date,
                value=value,
                threshold=alert.threshold,
                fired_at=now,
            )
    except IntegrityError:
        return None  # another run fired it first (the unique constraint decides)
    # robust: a mail server that is down is logged and does not undo or stop the run.
    transaction.on_commit(lambda: _email_firing(firing.pk), robust=True)
    return firing


def subscription_alerts_evaluate(
    *,
    period: BillingPeriod,
    alerts: list[UsageAlert],
    now: dt.datetime,
    estimate: BillEstimate | None = None,
) -> list[AlertFiring]:
    """Fire the alerts of the period's subscription that reach their threshold (usage and the
    estimated bill read once, and only when an alert pending needs them).

    `alerts` are the subscription's active alerts. Call inside a transaction.
    """
    fired = set(
        AlertFiring.objects.filter(alert__in=alerts, period_start=period.start_date).values_list(
            "alert_id", flat=True
        )
    )
    pending = [a for a in alerts if a.pk not in fired]
    if not pending:
        return []  # the common case every few minutes: no usage to read
    usage = bill = None
    if any(a.metric_id for a in pending):
        window = Period(period.billed_from, period.end_date)
        usage = usage_for_period(subscription=period.subscription, period=window, live=True)
    if any(a.metric_id is None for a in pending):
        estimate = estimate or bill_estimate()
        bill = estimate(subscription=period.subscription, as_of=now.date())
    firings = []
    for alert in pending:
        value = alert_value(alert, usage=usage, bill=bill)
        if value >= alert.threshold:
            firing = _fire(alert, period, value, now)
            if firing is not None:
                firings.append(firing)
    return firings


def alerts_evaluate(
    *, now: dt.datetime | None = None, estimate: BillEstimate | None = None
) -> list[AlertFiring]:
    """Copy missing plan alerts, then fire what reached its threshold in the current periods.
    `estimate` gives the estimated bill (default: settings.USAGE_ALERTS_BILL_ESTIMATE).

    Safe to run twice, or twice at once: each alert fires at most once per billing period. A
    subscription that fails is logged and tried again on the next run; the others go on.
    """
    now = now or clock.now()
    today = now.date()
    estimate = estimate or bill_estimate()
    plan_alerts_copy()
    active = UsageAlert.objects.filter(active=True)
    periods = (
        BillingPeriod.objects.filter(
            subscription__status=Subscription.Status.ACTIVE,
            start_date__lte=today,
            end_date__gt=today,
        )
        .filter(Exists(active.filter(subscription=OuterRef("subscription"))))
        .select_related("subscription")
        .prefetch_related(
            Prefetch(
                "subscription__usage_alerts",
                queryset=active.select_related("metric").order_by("pk"),
                to_attr="active_alerts",
            )
        )
        .order_by("subscription_id")
    )
    firings, failed = [], 0
    for period in periods:
        try:
            with transaction.atomic():
                firings += subscription_alerts_evaluate(
                    period=period,
                    alerts=period.subscription.active_alerts,
                    now=now,
                    estimate=estimate,
                )
        except Exception:  # one bad subscription must not stop everyone else's alerts
            failed += 1
            logger.exception("usage alerts of %s failed", period.subscription.external_id)
    logger.info("usage alerts at %s: %d fired, %d subscriptions failed", now, len(firings), failed)
    return firings
