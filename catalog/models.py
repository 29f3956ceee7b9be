from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

from core.money import (
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
)

code_validator = RegexValidator(
    r"^[a-z0-9_\-]+$", "Use lower-case letters, digits, '_' and '-' only (e.g. api_calls)."
)


class BillableMetric(models.Model):
    """How usage events of one code are aggregated over a period."""

    class Aggregation(models.TextChoices):
        COUNT = "count", "Count of events"
        SUM = "sum", "Sum of a numeric property"

    code = models.CharField(max_length=100, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    aggregation = models.CharField(max_length=20, choices=Aggregation.choices)
    field_name = models.CharField(
        max_length=100,
        blank=True,
        help_text="The event property that is aggregated (needed for sum), e.g. tokens.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def clean(self):
        if self.aggregation == self.Aggregation.SUM and not self.field_name:
            raise ValidationError(
                {"field_name": "A sum aggregates a property: name it, e.g. 'tokens'."}
            )
        if self.aggregation == self.Aggregation.COUNT and self.field_name:
            raise ValidationError(
                {"field_name": "A count does not read a property: leave it empty."}
            )


class Plan(models.Model):
    class Interval(models.IntegerChoices):
        MONTH = 1, "Monthly"
        QUARTER = 3, "Quarterly"
        YEAR = 12, "Yearly"

    code = models.CharField(max_length=100, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    currency = CurrencyField(default="USD")
    billing_interval_months = models.PositiveSmallIntegerField(
        choices=Interval.choices, default=Interval.MONTH
    )
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Charge(models.Model):
    """A price on a plan: a fixed fee (no metric: platform fee, seats) or usage of a metric."""

    class Model(models.TextChoices):
        STANDARD = "standard", "Standard (unit price × quantity)"

    class Timing(models.TextChoices):
        IN_ADVANCE = "in_advance", "In advance (start of period)"
        IN_ARREARS = "in_arrears", "In arrears (end of period)"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="charges")
    name = models.CharField(max_length=200, help_text="Shown on quotes and invoices.")
    metric = models.ForeignKey(
        BillableMetric,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="charges",
        help_text="Empty for a fixed fee (platform fee, seats); set for usage.",
    )
    charge_model = models.CharField(max_length=20, choices=Model.choices, default=Model.STANDARD)
    billing_timing = models.CharField(max_length=20, choices=Timing.choices)
    unit_price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS,
        decimal_places=PRICE_DECIMAL_PLACES,
        validators=[MinValueValidator(Decimal("0"))],
    )
    unit_name = models.CharField(max_length=50, default="unit", help_text="e.g. seat, call, token.")
    default_quantity = models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS,
        decimal_places=QUANTITY_DECIMAL_PLACES,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Fixed fees only: 1 for a platform fee, the usual seat count for seats.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    history = HistoricalRecords()

    class Meta:
        ordering = ["plan", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(unit_price__gte=0), name="charge_price_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code}: {self.name}"

    @property
    def is_usage(self) -> bool:
        return self.metric_id is not None

    def clean(self):
        if self.metric_id and self.billing_timing == self.Timing.IN_ADVANCE:
            raise ValidationError(
                {"billing_timing": "Usage is known only at the end of a period: bill in arrears."}
            )

    def pricing(self) -> dict:
        """Price terms as plain data: what a subscription snapshots and the rating engine reads."""
        return {"model": self.charge_model, "unit_price": str(self.unit_price)}
