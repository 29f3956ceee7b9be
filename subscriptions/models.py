from django.db import models
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

from catalog.models import BillableMetric, Charge, Plan
from core.fields import amount_field, quantity_field
from core.formatting import format_money, format_quantity
from core.periods import add_months
from customers.models import Customer


class Subscription(models.Model):
    """The contract in force. Created only through subscriptions.services.subscription_create."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"
        CANCELED = "canceled", "Canceled"

    external_id = models.CharField(
        max_length=100, unique=True, help_text="Id your systems send usage events with."
    )
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    currency = CurrencyField()
    start_date = models.DateField()
    trial_end_date = models.DateField(
        null=True, blank=True, help_text="Nothing is billed before this date (the plan's trial)."
    )
    term_months = models.PositiveSmallIntegerField()
    billing_interval_months = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-start_date", "external_id"]

    def __str__(self) -> str:
        # The customer first: the admin capitalises a title's first letter (capfirst), which must
        # not turn the external id sub_bluefin into "Sub_bluefin".
        return f"{self.customer} — {self.external_id}"

    @property
    def end_date(self):
        return add_months(self.start_date, self.term_months)


class SubscriptionItem(models.Model):
    """A priced line of the contract: the price terms are a snapshot, not a link to the catalog."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="items")
    charge = models.ForeignKey(
        Charge, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=200)
    metric = models.ForeignKey(
        BillableMetric, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    group_value = models.CharField(
        max_length=100, blank=True, help_text="For a grouped metric: the value this item prices."
    )
    prorated = models.BooleanField(default=False)
    billing_timing = models.CharField(max_length=20, choices=Charge.Timing.choices)
    quantity = quantity_field(
        help_text="Fixed fees: the contracted quantity (seats). Usage: unused (metered).",
    )
    unit_name = models.CharField(max_length=50, default="unit")
    pricing = models.JSONField(
        help_text="Price terms snapshotted at creation (rating engine input)."
    )
    position = models.PositiveSmallIntegerField(default=0)
    history = HistoricalRecords()

    class Meta:
        ordering = ["subscription", "position", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_usage(self) -> bool:
        return self.metric_id is not None


class BillingPeriod(models.Model):
    """One period of the billing schedule, [start_date, end_date), and what is billed in advance."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="billing_periods"
    )
    sequence = models.PositiveSmallIntegerField()
    start_date = models.DateField()
    end_date = models.DateField()
    billed_from = models.DateField(
        help_text="Start of what is billed: the period start, or the end of a trial within it."
    )
    advance_amount = amount_field()

    class Meta:
        ordering = ["subscription", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "sequence"], name="billing_period_unique_sequence"
            ),
            models.CheckConstraint(
                condition=models.Q(end_date__gt=models.F("start_date")),
                name="billing_period_end_after_start",
            ),
            models.CheckConstraint(
                condition=models.Q(billed_from__gte=models.F("start_date"))
                & models.Q(billed_from__lt=models.F("end_date")),
                name="billing_period_billed_within",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription.external_id} #{self.sequence + 1}: {self.start_date}"


class PrepaidCredit(models.Model):
    """A prepaid balance that usage draws down before it is billed: money, or units of a metric.

    `remaining` only decreases, by invoicing under a row lock; each use is recorded by invoicing.
    """

    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="prepaid_credits"
    )
    metric = models.ForeignKey(
        BillableMetric,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Units of this metric; empty for a money balance in the subscription's currency.",
    )
    granted = quantity_field()
    remaining = quantity_field()
    granted_on = models.DateField()
    note = models.CharField(max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["subscription", "granted_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(remaining__gte=0) & models.Q(remaining__lte=models.F("granted")),
                name="prepaid_credit_remaining_within_granted",
            )
        ]

    def __str__(self) -> str:
        if self.metric_id:
            unit = self.metric.code
            return f"{format_quantity(self.remaining)} of {format_quantity(self.granted)} {unit}"
        currency = self.subscription.currency
        return f"{format_money(self.remaining, currency)} of {format_money(self.granted, currency)}"
