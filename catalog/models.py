"""The catalog: what finance sells, configured in the admin without code.

A plan holds charges. A charge prices either a fixed quantity (platform fee, seats) or the usage
of a billable metric, under one model (flat, standard, graduated, volume, package, percentage),
in one currency, from an effective date. Charges that share a `key` are versions of one price:
the one in force on a date is the latest whose effective date is on or before it. Subscriptions
snapshot the terms (`Charge.pricing()`), so editing or re-pricing a plan never changes what an
existing subscription pays.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.text import slugify
from djmoney.models.fields import CurrencyField
from moneyed import list_all_currencies
from simple_history.models import HistoricalRecords

from catalog.rating import PRICING_MODELS, PricingModel, model_names, pricing_model
from core.formatting import format_price, format_quantity
from core.money import (
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
)

code_validator = RegexValidator(
    r"^[a-z0-9_\-]+$", "Use lower-case letters, digits, '_' and '-' only (e.g. api_calls)."
)
NOT_NEGATIVE = [MinValueValidator(Decimal("0"))]
ISO_CODES = {c.code for c in list_all_currencies()}
VERSION_CLASH = (
    "This plan already has a price with this key, currency and effective date: give the new "
    "version a later effective date."
)


def price_field(**kwargs):
    return models.DecimalField(
        max_digits=PRICE_MAX_DIGITS,
        decimal_places=PRICE_DECIMAL_PLACES,
        validators=NOT_NEGATIVE,
        **kwargs,
    )


def quantity_field(**kwargs):
    return models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS,
        decimal_places=QUANTITY_DECIMAL_PLACES,
        validators=NOT_NEGATIVE,
        **kwargs,
    )


class BillableMetric(models.Model):
    """How usage events of one code are aggregated over a period (in the database)."""

    class Aggregation(models.TextChoices):
        COUNT = "count", "Count of events"
        SUM = "sum", "Sum of a numeric property"
        MAX = "max", "Maximum of a numeric property"
        UNIQUE_COUNT = "unique_count", "Count of distinct values of a property"
        LATEST = "latest", "Latest value of a numeric property"
        WEIGHTED_SUM = "weighted_sum", "Time-weighted sum (levels held over time)"

    NEEDS_PROPERTY = {"sum", "max", "unique_count", "latest", "weighted_sum"}

    code = models.CharField(max_length=100, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    aggregation = models.CharField(max_length=20, choices=Aggregation.choices)
    field_name = models.CharField(
        max_length=100,
        blank=True,
        help_text="The event property aggregated, e.g. tokens (every aggregation but count).",
    )
    filters = models.JSONField(
        default=dict,
        blank=True,
        help_text='Only events whose properties match, e.g. {"region": ["eu"]}: '
        "each property must have one of the listed values.",
    )
    group_by = models.CharField(
        max_length=100,
        blank=True,
        help_text="A property whose values can carry different prices, e.g. model. "
        "Each charge on this metric then names the value it prices.",
    )
    recurring = models.BooleanField(
        default=False,
        help_text="Values carry over into the next period (seats, storage): sums and counts run "
        "from the start of the subscription, levels start from the last known value.",
    )
    accepts_negative = models.BooleanField(
        "Accepts negative values (refund-style corrections)",
        default=False,
        help_text="Off: an event whose value is below zero is refused at ingestion. On: negative "
        "values are stored and offset usage; a period whose total is below zero is billed as 0. "
        "A time-weighted sum always accepts them (its events are changes of a level).",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def takes_negative_values(self) -> bool:
        """Whether ingestion stores a value below zero (a weighted sum's changes always may be)."""
        return self.accepts_negative or self.aggregation == self.Aggregation.WEIGHTED_SUM

    def clean(self):
        errors = {}
        if self.aggregation in self.NEEDS_PROPERTY and not self.field_name:
            label = self.Aggregation(self.aggregation).label.lower()
            errors["field_name"] = (
                f"A metric of type '{label}' reads a property: name it, e.g. tokens."
            )
        if self.aggregation == self.Aggregation.COUNT and self.field_name:
            errors["field_name"] = "A count does not read a property: leave it empty."
        if self.accepts_negative and self.aggregation in {
            self.Aggregation.COUNT,
            self.Aggregation.UNIQUE_COUNT,
        }:
            errors["accepts_negative"] = (
                "A count is never below zero: leave 'accepts negative values' off."
            )
        if self.aggregation == self.Aggregation.WEIGHTED_SUM and not self.recurring:
            errors["recurring"] = (
                "A time-weighted sum follows a level over time: make the metric recurring so the "
                "level carries into the next period."
            )
        if not isinstance(self.filters, dict) or not all(
            isinstance(k, str)
            and isinstance(v, list)
            and v
            and all(isinstance(x, str | int) for x in v)
            for k, v in (self.filters or {}).items()
        ):
            errors["filters"] = (
                'Write filters as {"property": ["value", …]}, e.g. {"region": ["eu"]}.'
            )
        if errors:
            raise ValidationError(errors)


class Plan(models.Model):
    class Interval(models.IntegerChoices):
        MONTH = 1, "Monthly"
        QUARTER = 3, "Quarterly"
        YEAR = 12, "Yearly"

    code = models.CharField(max_length=100, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    currency = CurrencyField(default="USD", help_text="The plan's main currency.")
    additional_currencies = models.CharField(
        max_length=200,
        blank=True,
        help_text="Other currencies the plan is sold in, comma-separated (e.g. EUR, GBP). "
        "Each needs its own charges.",
    )
    billing_interval_months = models.PositiveSmallIntegerField(
        choices=Interval.choices, default=Interval.MONTH
    )
    trial_days = models.PositiveSmallIntegerField(
        default=0, help_text="Days at the start of a subscription that are not billed."
    )
    active = models.BooleanField(default=True, help_text="Only active plans can be quoted.")
    renewal_uplift_percent = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Price increase at renewal, in percent (a customer's own uplift overrides it).",
    )
    renewal_uplift_on = models.CharField(
        max_length=10,
        choices=[("net", "Net price (the discount is kept)"), ("list", "List price")],
        default="net",
        help_text="Net: the renewal raises the negotiated price. List: it raises the list price "
        "and keeps the discount percentage off it.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def currencies(self) -> list[str]:
        extra = [c.strip().upper() for c in self.additional_currencies.split(",") if c.strip()]
        return [str(self.currency)] + [c for c in extra if c != self.currency]

    def clean(self):
        unknown = [c for c in self.currencies if c not in ISO_CODES]
        if unknown:
            raise ValidationError(
                {"additional_currencies": f"Unknown currency code(s): {', '.join(unknown)}."}
            )


class Charge(models.Model):
    """A price on a plan: a fixed fee (no metric: platform fee, seats) or usage of a metric."""

    # One member per registered pricing model (catalog.rating.PRICING_MODELS): Model.FLAT, …
    Model = models.TextChoices(
        "Model", [(m.name.upper(), (m.name, m.label)) for m in PRICING_MODELS.values()]
    )

    class Timing(models.TextChoices):
        IN_ADVANCE = "in_advance", "In advance (start of period)"
        IN_ARREARS = "in_arrears", "In arrears (end of period)"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="charges")
    key = models.SlugField(
        max_length=100,
        blank=True,
        help_text="Identifies this price across versions and currencies (filled from the name).",
    )
    name = models.CharField(max_length=200, help_text="Shown on quotes and invoices.")
    metric = models.ForeignKey(
        BillableMetric,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="charges",
        help_text="Empty for a fixed fee (platform fee, seats); set for usage.",
    )
    group_value = models.CharField(
        max_length=100,
        blank=True,
        help_text="For a metric grouped by a property: the value this charge prices (e.g. large). "
        "Empty: every value no other charge of the plan prices.",
    )
    currency = CurrencyField(blank=True, default="", help_text="Empty: the plan's currency.")
    effective_from = models.DateField(
        null=True,
        blank=True,
        help_text="From this date the price replaces earlier versions with the same key "
        "(for subscriptions that start from then). Empty: from the beginning.",
    )
    charge_model = models.CharField(max_length=20, choices=Model.choices, default=Model.STANDARD)
    billing_timing = models.CharField(max_length=20, choices=Timing.choices)
    prorated = models.BooleanField(
        default=False,
        help_text="Fixed fees only: a partly billed period (after a trial) costs its days' share.",
    )
    unit_price = price_field(default=Decimal("0"), help_text="Flat and standard models.")
    package_size = quantity_field(null=True, blank=True, help_text="Package: units per block.")
    package_price = price_field(null=True, blank=True, help_text="Package: price per block.")
    free_units = quantity_field(
        default=Decimal("0"), help_text="Units per period that are not billed (free allowance)."
    )
    percentage_rate = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Percentage: percent of the metric's amount property per event, e.g. 1.5.",
    )
    fixed_fee = price_field(default=Decimal("0"), help_text="Percentage: fixed fee per event.")
    free_events = models.PositiveIntegerField(default=0, help_text="Percentage: free events.")
    min_per_event = price_field(null=True, blank=True, help_text="Percentage: minimum per event.")
    max_per_event = price_field(null=True, blank=True, help_text="Percentage: maximum per event.")
    min_amount = price_field(
        null=True,
        blank=True,
        help_text="Minimum commitment per period: usage below it is topped up by a true-up line.",
    )
    max_amount = price_field(null=True, blank=True, help_text="Cap per period.")
    unit_name = models.CharField(max_length=50, default="unit", help_text="e.g. seat, call, token.")
    default_quantity = quantity_field(
        default=Decimal("1"),
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
            models.UniqueConstraint(
                fields=["plan", "key", "currency", "effective_from"],
                name="charge_unique_version",
                violation_error_message=VERSION_CLASH,
            ),
            models.UniqueConstraint(
                fields=["plan", "key", "currency"],
                condition=models.Q(effective_from__isnull=True),
                name="charge_unique_first_version",
                violation_error_message=VERSION_CLASH,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code}: {self.name}"

    def save(self, *args, **kwargs):
        self.fill_defaults()
        super().save(*args, **kwargs)

    def fill_defaults(self) -> None:
        """Key from the name, currency from the plan (before validation, so clashes are caught)."""
        if not self.key:
            self.key = slugify(self.name)[:100] or "charge"
        if not self.currency and self.plan_id:
            self.currency = self.plan.currency

    @property
    def is_usage(self) -> bool:
        return self.metric_id is not None

    @property
    def pricing_model(self) -> PricingModel:
        """The registered model of `charge_model` (one without properties while it names none)."""
        return pricing_model(self.charge_model, strict=False)

    def clean(self):
        self.fill_defaults()
        metric = self.metric if self.metric_id else None
        errors = (
            self._timing_and_currency_problems(metric)
            | self._model_problems(metric)
            | self._bound_problems()
            | self._group_problems(metric)
        )  # each names its own fields
        if self.prorated and metric:
            errors["prorated"] = "Only fixed fees are prorated; usage is billed as measured."
        if errors:
            raise ValidationError(errors)

    def _timing_and_currency_problems(self, metric) -> dict[str, str]:
        errors = {}
        if metric and self.billing_timing == self.Timing.IN_ADVANCE:
            errors["billing_timing"] = (
                "Usage is known only at the end of a period: bill in arrears."
            )
        if self.plan_id and self.currency and self.currency not in self.plan.currencies:
            errors["currency"] = (
                f"Plan '{self.plan.code}' is sold in {', '.join(self.plan.currencies)}: add "
                f"{self.currency} to its currencies first."
            )
        return errors

    def _model_problems(self, metric) -> dict[str, str]:
        """What the charge's model needs: package terms, a percentage rate on a sum metric."""
        model, errors = self.pricing_model, {}
        if model.package and not (self.package_size and self.package_size > 0):
            errors["package_size"] = "A package charge needs a package size above zero."
        if model.package and self.package_price is None:
            errors["package_price"] = "A package charge needs a price per package."
        if model.on_amounts:
            if self.percentage_rate is None:
                errors["percentage_rate"] = "A percentage charge needs a rate between 0 and 100."
            if not metric or metric.aggregation != BillableMetric.Aggregation.SUM:
                errors["metric"] = (
                    "A percentage charge applies to an amount: choose a metric that sums the "
                    "amount property (aggregation 'sum')."
                )
        if self.free_units and not model.free_units:
            errors["free_units"] = (
                f"Free units apply to {model_names(lambda m: m.free_units)} charges; for a "
                "percentage charge use free events."
            )
        return errors

    def _bound_problems(self) -> dict[str, str]:
        errors = {}
        if (
            self.min_per_event is not None
            and self.max_per_event is not None
            and self.min_per_event > self.max_per_event
        ):
            errors["max_per_event"] = "The maximum per event is below the minimum per event."
        if (
            self.min_amount is not None
            and self.max_amount is not None
            and self.min_amount > self.max_amount
        ):
            errors["max_amount"] = "The cap per period is below the minimum commitment."
        return errors

    def _group_problems(self, metric) -> dict[str, str]:
        """A group value needs a grouped metric; one charge per group value and currency."""
        errors = {}
        if self.group_value and not (metric and metric.group_by):
            errors["group_value"] = (
                "Only a charge on a metric grouped by a property has a group value."
            )
        if metric and metric.group_by and self.plan_id:
            twins = self.plan.charges.filter(
                metric=metric, group_value=self.group_value, currency=self.currency
            ).exclude(key=self.key)
            if twins.exists():
                value = self.group_value or "the other values (default)"
                errors["group_value"] = (
                    f"'{twins.first().name}' already prices {value} of {metric.code}: give this "
                    "charge the same key to make it a new version, or another group value."
                )
        return errors

    def pricing(self) -> dict:
        """Price terms as plain data: what a subscription snapshots and the rating engine reads."""
        terms = {"model": self.charge_model}
        model = pricing_model(self.charge_model, strict=False)
        if model.unit_price:
            terms["unit_price"] = str(self.unit_price)
        if model.tiered:
            terms["tiers"] = [t.as_dict() for t in self.tiers.all()]
        if model.package:
            terms |= {
                "package_size": str(self.package_size),
                "package_price": str(self.package_price),
            }
        if model.on_amounts:
            terms |= {
                "rate": str(self.percentage_rate),
                "fixed_fee": str(self.fixed_fee),
                "free_events": str(self.free_events),
            }
        optional = {
            "free_units": self.free_units or None,
            "min_per_event": self.min_per_event,
            "max_per_event": self.max_per_event,
            "min_amount": self.min_amount,
            "max_amount": self.max_amount,
        }
        terms |= {k: str(v) for k, v in optional.items() if v is not None}
        return terms


class ChargeTier(models.Model):
    """One tier of a graduated or volume charge: the units in (from_units, up_to]."""

    charge = models.ForeignKey(Charge, on_delete=models.CASCADE, related_name="tiers")
    from_units = quantity_field(
        default=Decimal("0"), help_text="Units above this count fall in the tier (0 for the first)."
    )
    up_to = quantity_field(
        null=True, blank=True, help_text="Up to and including this count. Empty: no upper bound."
    )
    unit_price = price_field()
    flat_fee = price_field(default=Decimal("0"), help_text="Added once the tier is reached.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["charge", "from_units"]

    def __str__(self) -> str:
        upper = format_quantity(self.up_to) if self.up_to is not None else "∞"
        price = format_price(self.unit_price, self.charge.currency)
        return f"{format_quantity(self.from_units)}–{upper} at {price}"

    def as_dict(self) -> dict:
        return {
            "from": str(self.from_units),
            "up_to": None if self.up_to is None else str(self.up_to),
            "unit_price": str(self.unit_price),
            "flat_fee": str(self.flat_fee),
        }


class PlanAlertDefault(models.Model):
    """A usage alert every subscription to the plan gets (bill-shock protection).

    Copied into each subscription's alerts (metering.UsageAlert) by the alert evaluation job, once
    per subscription: a later change of the threshold here applies to subscriptions that do not
    have the alert yet, not to the copies (finance edits those under Usage alerts).
    """

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="alert_defaults")
    metric = models.ForeignKey(
        BillableMetric,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The metric whose quantity is watched. Empty: the estimated bill of the period.",
    )
    threshold = quantity_field(
        help_text="Fires when the period's quantity (or estimated bill, an amount in the "
        "subscription's currency) reaches this value."
    )
    name = models.CharField(max_length=200, blank=True, help_text="Shown in the email.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["plan", "metric", "threshold", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(threshold__gte=0), name="plan_alert_default_threshold_gte_0"
            )
        ]

    def __str__(self) -> str:
        what = self.metric.name if self.metric_id else "Estimated bill"
        return self.name or f"{what} ≥ {self.threshold.normalize():f}"

    def clean(self):
        if (
            self.metric_id
            and self.plan_id
            and not self.plan.charges.filter(metric_id=self.metric_id).exists()
        ):
            raise ValidationError(
                {
                    "metric": f"Plan '{self.plan.code}' has no charge on {self.metric.name}: add "
                    "the charge first (and save), or choose one of its metrics."
                }
            )
