from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from catalog.models import BillableMetric, PlanAlertDefault
from core.money import QUANTITY_DECIMAL_PLACES, QUANTITY_MAX_DIGITS, plain
from customers.models import Customer
from subscriptions.models import Subscription


class Event(models.Model):
    """A usage event. Append-only; one per (customer, transaction_id)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="+")
    transaction_id = models.CharField(max_length=255)
    code = models.CharField(max_length=100)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "transaction_id"], name="event_unique_customer_transaction"
            )
        ]
        indexes = [
            models.Index(fields=["subscription", "code", "timestamp"], name="event_sub_code_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.transaction_id}"


class UsageRollup(models.Model):
    """Per subscription, metric, day and group value: the count, sum and max of the events that
    match the metric, maintained in the same transaction as ingestion (so a 2xx answer is already
    in it). The live current-usage read uses it; billing reads the events themselves."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="+")
    metric = models.ForeignKey(BillableMetric, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    group_value = models.CharField(max_length=255, blank=True, help_text="'' when none.")
    events = models.BigIntegerField(default=0)
    total = models.DecimalField(max_digits=38, decimal_places=12, default=0)
    maximum = models.DecimalField(max_digits=38, decimal_places=12, null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "metric", "day", "group_value"], name="usage_rollup_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.metric_id} {self.day} {self.group_value}: {self.events}"


class UsageAlert(models.Model):
    """A threshold on a subscription's usage in the current billing period (bill-shock protection).

    On a metric: the period's quantity of that metric (all its usage items together); without one:
    the estimated bill (rounded usage amounts plus the fixed fees billed in advance). It fires at
    most once per billing period (AlertFiring's unique constraint). Alerts of source "plan" are
    copies of the plan's defaults (catalog.PlanAlertDefault), at most one per subscription and
    default; customers add and delete their own in the portal.
    """

    class Source(models.TextChoices):
        PLAN = "plan", "Plan"
        CUSTOMER = "customer", "Customer"

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="usage_alerts"
    )
    metric = models.ForeignKey(
        BillableMetric,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The metric whose quantity is watched. Empty: the estimated bill of the period.",
    )
    threshold = models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS,
        decimal_places=QUANTITY_DECIMAL_PLACES,
        validators=[MinValueValidator(Decimal(0))],
        help_text="A quantity of the metric, or an amount in the subscription's currency.",
    )
    name = models.CharField(max_length=200, blank=True)
    source = models.CharField(
        max_length=20,
        choices=Source.choices,
        default=Source.CUSTOMER,
        help_text="Plan: set by finance (a plan default, or added here); the customer cannot "
        "delete it. Customer: added by the customer in the portal.",
    )
    plan_default = models.ForeignKey(
        PlanAlertDefault,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The plan default this alert was copied from.",
    )
    active = models.BooleanField(
        default=True, help_text="Untick to pause (a deleted plan alert is copied again)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["subscription", "metric", "threshold", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(threshold__gte=0), name="usage_alert_threshold_gte_0"
            ),
            # One copy of each plan default per subscription (NULLs — customers' alerts — are
            # distinct): two evaluation runs at once copy it once.
            models.UniqueConstraint(
                fields=["subscription", "plan_default"], name="usage_alert_unique_plan_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.watched} ≥ {plain(self.threshold)}"

    @property
    def watched(self) -> str:
        return self.metric.name if self.metric_id else "Estimated bill"


class AlertFiring(models.Model):
    """An alert reached its threshold in a billing period: one row per alert and period, ever.

    Append-only. The threshold is copied so the record stays true if the alert is edited later.
    """

    alert = models.ForeignKey(UsageAlert, on_delete=models.CASCADE, related_name="firings")
    period_start = models.DateField()
    period_end = models.DateField()
    value = models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS,
        decimal_places=QUANTITY_DECIMAL_PLACES,
        help_text="The quantity or estimated bill when the alert fired.",
    )
    threshold = models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES
    )
    fired_at = models.DateTimeField()

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "period_start"], name="alert_firing_once_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.alert} ({self.period_start})"
