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


class StandaloneSellingPrice(models.Model):
    """One line of the SSP price book: what a charge (one price of a plan, across its versions:
    same plan, key and currency) sells for on its own, over a half-open span of dates
    [effective_from, effective_to). Revenue recognition allocates a bundle's price over its
    obligations in proportion to these (revrec.allocation.allocate).

    Either an `amount`, in the same terms as the charge's list unit price (per unit — seat, or 1
    for a platform fee — per billing period of the plan; a one-time fee: per unit), or
    `percent_of_list`, a percentage of the list price the contract was priced from. Lines of one
    charge never overlap; between lines (or with none) the SSP is the list price
    (catalog.selectors.ssp_for).
    """

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="ssp_lines")
    charge_key = models.SlugField(
        "Charge",
        max_length=100,
        help_text="The key of the plan's charge this prices (every version of it), e.g. seats.",
    )
    currency = CurrencyField(blank=True, default="", help_text="Empty: the plan's currency.")
    effective_from = models.DateField(help_text="The first day this SSP applies.")
    effective_to = models.DateField(
        null=True,
        blank=True,
        help_text="The day it stops applying (not included). Empty: until further notice.",
    )
    amount = price_field(
        null=True,
        blank=True,
        help_text="The SSP in the terms of the charge's list unit price: per unit per billing "
        "period of the plan (a one-time fee: per unit). Or give a percent of list instead.",
    )
    percent_of_list = models.DecimalField(
        "Percent of list",
        max_digits=9,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1000"))],
        help_text="The SSP as a percentage of the list price, e.g. 80 for 80%. Or give an amount.",
    )
    history = HistoricalRecords()

    # Whether clean() compares with the saved lines; the plan page's formset turns it off and
    # compares the lines as edited together instead (catalog.admin.SspFormSet).
    check_overlaps = True

    class Meta:
        ordering = ["plan", "charge_key", "currency", "effective_from"]
        verbose_name = "standalone selling price"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__isnull=True, percent_of_list__isnull=False)
                | models.Q(amount__isnull=False, percent_of_list__isnull=True),
                name="ssp_amount_xor_percent",
                violation_error_message="Give the SSP as an amount or as a percent of list, "
                "not both (and not neither).",
            ),
            models.CheckConstraint(
                condition=models.Q(effective_to__isnull=True)
                | models.Q(effective_to__gt=models.F("effective_from")),
                name="ssp_ends_after_start",
                violation_error_message="'Effective to' must be after 'effective from' (it is "
                "the first day the price no longer applies).",
            ),
            models.UniqueConstraint(
                fields=["plan", "charge_key", "currency", "effective_from"],
                name="ssp_unique_start",
                violation_error_message="This charge already has an SSP from this date: edit "
                "that line, or give this one another 'effective from'.",
            ),
        ]

    def __str__(self) -> str:
        value = (
            f"{self.percent_of_list.normalize():f}% of list"
            if self.percent_of_list is not None
            else format_price(self.amount, self.currency or "USD")
            if self.amount is not None
            else "—"
        )
        return f"{self.charge_key} from {self.effective_from}: {value}"

    def save(self, *args, **kwargs):
        self.fill_defaults()
        super().save(*args, **kwargs)

    def fill_defaults(self) -> None:
        """Currency from the plan (before validation, so overlaps are compared in it)."""
        plan = self.plan if self.plan_id or StandaloneSellingPrice.plan.is_cached(self) else None
        if not self.currency and plan is not None:
            self.currency = plan.currency

    def covers(self, day) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)

    def overlaps(self, other: "StandaloneSellingPrice") -> bool:
        """Whether the two half-open spans share a day (an empty end is open)."""
        return (other.effective_to is None or self.effective_from < other.effective_to) and (
            self.effective_to is None or other.effective_from < self.effective_to
        )

    def overlap_message(self, other: "StandaloneSellingPrice") -> dict[str, str]:
        """The error for `self` overlapping `other` (a saved or sibling line), on the field to
        change, saying which dates would fit."""
        until = f"to {other.effective_to}" if other.effective_to else "with no end"
        clash = (
            f"The '{self.charge_key}' charge of plan '{self.plan.code}' already has a standalone "
            f"selling price in {self.currency} from {other.effective_from} {until}"
        )
        if other.effective_from > self.effective_from:  # the other starts inside this one
            return {
                "effective_to": f"{clash}: end this line on or before {other.effective_from} "
                "('effective to' is the first day it no longer applies)."
            }
        if other.effective_to is None:
            return {
                "effective_from": f"{clash}: first give that line an 'effective to' of "
                f"{self.effective_from} (or earlier), then add this one."
            }
        return {
            "effective_from": f"{clash}: start this line on or after {other.effective_to}, or "
            "change that line first."
        }

    def clean(self):
        self.fill_defaults()
        errors: dict[str, str] = {}
        if (self.amount is None) == (self.percent_of_list is None):
            message = (
                "Give the SSP as an amount or as a percent of list, not both."
                if self.amount is not None
                else "Give the SSP: an amount, or a percent of the list price."
            )
            errors["amount"] = message
        if self.effective_to and self.effective_from and self.effective_to <= self.effective_from:
            errors["effective_to"] = (
                f"'Effective to' ({self.effective_to}) must be after 'effective from' "
                f"({self.effective_from}): it is the first day the price no longer applies."
            )
        if self.plan_id:
            if self.currency and self.currency not in self.plan.currencies:
                errors["currency"] = (
                    f"Plan '{self.plan.code}' is sold in {', '.join(self.plan.currencies)}: use "
                    "one of those."
                )
            keys = set(self.plan.charges.values_list("key", flat=True))
            if self.charge_key and self.charge_key not in keys:
                known = ", ".join(sorted(keys)) or "none yet"
                errors["charge_key"] = (
                    f"Plan '{self.plan.code}' has no charge with key '{self.charge_key}' "
                    f"(its keys: {known})."
                )
        if not errors and self.plan_id and self.effective_from and self.check_overlaps:
            for other in self.siblings():
                if self.overlaps(other):
                    errors |= self.overlap_message(other)
                    break
        if errors:
            raise ValidationError(errors)

    def siblings(self):
        """The other saved lines of the same charge and currency."""
        return StandaloneSellingPrice.objects.filter(
            plan_id=self.plan_id, charge_key=self.charge_key, currency=self.currency
        ).exclude(pk=self.pk)
