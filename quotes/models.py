"""A quote: the deal a sales rep builds, gets approved, sends and the customer signs.

Fields and constraints only; every move of a quote's status goes through quotes.services, which
records it in QuoteStatusChange (who, when, why). Prices are worked out by quotes.pricing (net
terms per line and phase) and quotes.totals (MRR, ARR, ACV, TCV…).
"""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from catalog.models import Charge, Plan
from core.fields import price_field, quantity_field
from core.formatting import format_quantity
from customers.models import Customer
from subscriptions.models import Subscription, SubscriptionItem

ZERO = Decimal(0)


class Quote(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        SENT = "sent", "Sent"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Expired"
        SUPERSEDED = "superseded", "Superseded"

    # Which states a quote may move to from each state (the moves are quotes.services').
    TRANSITIONS = {
        Status.DRAFT: {Status.IN_REVIEW, Status.APPROVED, Status.DECLINED, Status.EXPIRED},
        Status.IN_REVIEW: {
            Status.APPROVED,
            Status.DRAFT,
            Status.DECLINED,
            Status.EXPIRED,
            Status.SUPERSEDED,
        },
        Status.APPROVED: {
            Status.DRAFT,  # edited into a quote with a problem (services.quote_edited)
            Status.SENT,
            Status.ACCEPTED,
            Status.IN_REVIEW,
            Status.DECLINED,
            Status.EXPIRED,
            Status.SUPERSEDED,
        },
        Status.SENT: {
            Status.ACCEPTED,
            Status.IN_REVIEW,
            Status.DECLINED,
            Status.EXPIRED,
            Status.SUPERSEDED,
        },
        Status.ACCEPTED: set(),
        Status.DECLINED: set(),
        Status.EXPIRED: set(),
        Status.SUPERSEDED: set(),
    }
    # A rep edits a quote in these states (an approved one goes back through the rules on save).
    EDITABLE = {Status.DRAFT, Status.APPROVED}
    # Still open: the daily job expires these once their validity has passed.
    OPEN = {Status.DRAFT, Status.IN_REVIEW, Status.APPROVED, Status.SENT}

    class Kind(models.TextChoices):
        NEW = "new", "New business"
        AMENDMENT = "amendment", "Amendment"
        RENEWAL = "renewal", "Renewal"

    class Interval(models.IntegerChoices):
        MONTH = 1, "Monthly"
        QUARTER = 3, "Quarterly"
        HALF_YEAR = 6, "Every 6 months"
        YEAR = 12, "Annually"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.NEW)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="quotes")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="quotes")
    title = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The sales rep who owns the deal (you, by default).",
    )
    start_date = models.DateField(help_text="When the subscription starts if accepted.")
    term_months = models.PositiveSmallIntegerField(default=12)
    billing_interval_months = models.PositiveSmallIntegerField(
        choices=Interval.choices,
        null=True,
        blank=True,
        help_text="How often the customer is invoiced; empty: the plan's interval. Catalog prices "
        "are per plan interval: billed quarterly, a monthly fee is invoiced 3 times at once.",
    )
    payment_terms_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(365)],
        help_text="Days to pay an invoice (net 30 = 30); empty: the customer's terms.",
    )
    valid_until = models.DateField()
    notes = models.TextField(
        blank=True, help_text="Terms and notes printed on the quote the customer receives."
    )
    subscription_external_id = models.CharField(
        max_length=100,
        blank=True,
        help_text="Id of the subscription to create (what usage events will carry). "
        "Left empty, one is generated at acceptance.",
    )
    subscription = models.OneToOneField(
        Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="quote"
    )
    contract = models.ForeignKey(
        Subscription,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="change_quotes",
        help_text="Amendment or renewal: the subscription it changes.",
    )
    effective_date = models.DateField(
        null=True,
        blank=True,
        help_text="Amendment: the day the new terms take effect (the term's end does not move).",
    )
    base_revision = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The subscription's revision the amendment was drafted on: if the contract "
        "changed since, acceptance is refused.",
    )
    invoice_now = models.BooleanField(
        default=False,
        help_text="Amendment: invoice the proration at once instead of on the next invoice.",
    )
    auto_renew = models.BooleanField(
        default=False,
        help_text="At the term's end, renew automatically (with the uplift) if nobody acts.",
    )
    approval_reasons = models.JSONField(
        default=list, blank=True, help_text="Why the quote needs finance's approval."
    )
    version = models.PositiveSmallIntegerField(default=1)
    revision_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="revisions",
        help_text="The quote this one is a new version of.",
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_to = models.EmailField(blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by_name = models.CharField(max_length=200, blank=True)
    accepted_by_title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("approve_quote", "Can approve or reject quotes that need approval")]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status="accepted")
                | models.Q(subscription__isnull=False)
                | models.Q(contract__isnull=False),
                name="quote_accepted_has_subscription",
            )
        ]

    def __str__(self) -> str:
        return f"{self.number} – {self.customer}"

    @property
    def currency(self) -> str:
        return str(self.customer.currency)

    @property
    def interval(self) -> int:
        """Months per billing period: the quote's, else the plan's."""
        return self.billing_interval_months or self.plan.billing_interval_months

    @property
    def payment_terms(self) -> int:
        if self.payment_terms_days is not None:
            return self.payment_terms_days
        return self.customer.payment_terms_days

    @property
    def editable(self) -> bool:
        return self.status in self.EDITABLE

    def currency_problem(self) -> str | None:
        if self.currency not in self.plan.currencies:
            return (
                f"Plan '{self.plan.code}' is sold in {', '.join(self.plan.currencies)} but "
                f"{self.customer} is billed in {self.currency}: choose a plan in the customer's "
                "currency."
            )
        return None

    def clean(self):
        errors = {}
        if self.customer_id and self.plan_id and self.currency_problem():
            errors["plan"] = self.currency_problem()
        if self.plan_id and self.term_months:
            plan_interval = self.plan.billing_interval_months
            if self.billing_interval_months and self.billing_interval_months % plan_interval:
                errors["billing_interval_months"] = (
                    f"Plan '{self.plan.code}' is priced per {plan_interval} months: bill every "
                    f"{plan_interval} months or a multiple of it."
                )
            elif self.term_months % self.interval:
                errors["term_months"] = (
                    f"The term ({self.term_months} months) must be a whole number of billing "
                    f"periods ({self.interval} months each)."
                )
            elif self.pk:
                errors |= self._ramp_problems()
        if errors:
            raise ValidationError(errors)

    def _ramp_problems(self) -> dict[str, str]:
        """A new term or billing interval must still suit the lines' ramps (else the ramp
        would be refused only at submission)."""
        from quotes.validation import phase_problems

        phases: dict[int, list] = {}
        for phase in QuoteLinePhase.objects.filter(line__quote=self).select_related("line"):
            phases.setdefault(phase.line_id, []).append(phase)
        for line_phases in phases.values():
            line = line_phases[0].line
            problems = phase_problems(
                line, line_phases, term_months=self.term_months, interval=self.interval
            )
            if problems:
                return {
                    "term_months": f"The ramp of '{line}' no longer fits: {problems[0]} Change "
                    "its phases (Tiers & ramp) first, or keep the term and billing interval."
                }
        return {}

    @property
    def number(self) -> str:
        if not self.pk:
            return "Q-(new)"
        return f"Q-{self.pk:05d}" + (f" v{self.version}" if self.version > 1 else "")


class QuoteStatusChange(models.Model):
    """One move of a quote's status: who, when and why (the quote's audit trail)."""

    quote = models.ForeignKey(Quote, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=20, choices=Quote.Status.choices)
    to_status = models.CharField(max_length=20, choices=Quote.Status.choices)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField()
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["quote", "at", "id"]

    def __str__(self) -> str:
        return f"{self.quote.number}: {self.from_status} → {self.to_status}"


class QuoteLine(models.Model):
    class Kind(models.TextChoices):
        RECURRING = "recurring", "Recurring fee"
        USAGE = "usage", "Usage"
        ONE_TIME = "one_time", "One-time fee"
        CREDIT = "credit", "Prepaid credits"

    # Kinds that are typed by the rep (no catalog charge); the others come from the plan.
    FREE_FORM = {Kind.ONE_TIME, Kind.CREDIT}

    quote = models.ForeignKey(Quote, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(
        max_length=20,
        choices=Kind.choices,
        default=Kind.RECURRING,
        help_text="Recurring fee or usage: from the plan's charges (set from the charge). "
        "One-time fee (implementation, training) and prepaid credits: typed here, no charge.",
    )
    charge = models.ForeignKey(
        Charge, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    description = models.CharField(max_length=200, blank=True)
    quantity = quantity_field(
        default=Decimal("1"),
        validators=[MinValueValidator(ZERO)],
        help_text="Seats or units per period for fixed fees, units for a one-time fee.",
    )
    unit_price = price_field(
        validators=[MinValueValidator(ZERO)],
        null=True,
        blank=True,
        help_text="Overridden unit price; empty: the catalog price. One-time fee: its price. "
        "Prepaid credits: the credit granted.",
    )
    discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(ZERO), MaxValueValidator(Decimal(100))],
        help_text="Discount off every price of the line, in percent.",
    )
    discount_amount = price_field(
        null=True,
        blank=True,
        validators=[MinValueValidator(ZERO)],
        help_text="Discount off the unit price, per unit (lines priced by a unit price).",
    )
    estimated_quantity = quantity_field(
        null=True,
        blank=True,
        validators=[MinValueValidator(ZERO)],
        help_text="Usage: the units expected per month, for the quote's totals only (usage is "
        "billed as measured).",
    )
    minimum_amount = price_field(
        null=True,
        blank=True,
        validators=[MinValueValidator(ZERO)],
        help_text="Usage: the minimum commitment per month; a shortfall is billed as a true-up.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    replaces = models.ForeignKey(
        SubscriptionItem,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Amendment: the version in force that this line restates (empty: a new item).",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["quote", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(discount_percent__isnull=False, discount_amount__isnull=False),
                name="quote_line_one_discount",
                violation_error_message="Give a discount as a percentage or an amount, not both.",
            )
        ]

    def __str__(self) -> str:
        return self.description or (self.charge.name if self.charge_id else self.get_kind_display())

    @property
    def name(self) -> str:
        return str(self)

    def clean(self):
        from quotes.validation import line_problems  # the rules live with the pricing

        errors = line_problems(self)
        if errors:
            raise ValidationError(errors)


class QuoteLineTier(models.Model):
    """One negotiated tier of a usage line: the units in (previous up_to, up_to]."""

    line = models.ForeignKey(QuoteLine, on_delete=models.CASCADE, related_name="tiers")
    up_to = quantity_field(
        null=True, blank=True, help_text="Last unit of the tier; empty for the last tier."
    )
    unit_price = price_field(default=ZERO, validators=[MinValueValidator(ZERO)])
    flat_fee = price_field(default=ZERO, validators=[MinValueValidator(ZERO)])
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["line", "position", "id"]

    def __str__(self) -> str:
        return f"up to {format_quantity(self.up_to)}" if self.up_to is not None else "and above"


class QuoteLinePhase(models.Model):
    """One phase of a ramped line: months `start_month`–`end_month` of the term (1-based,
    inclusive) at their own quantity and, optionally, their own price or discount."""

    line = models.ForeignKey(QuoteLine, on_delete=models.CASCADE, related_name="phases")
    start_month = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    end_month = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    quantity = quantity_field(validators=[MinValueValidator(ZERO)])
    unit_price = price_field(
        null=True,
        blank=True,
        validators=[MinValueValidator(ZERO)],
        help_text="Empty: the line's price.",
    )
    discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(ZERO), MaxValueValidator(Decimal(100))],
        help_text="Empty: the line's discount.",
    )

    class Meta:
        ordering = ["line", "start_month", "id"]

    def __str__(self) -> str:
        return f"months {self.start_month}–{self.end_month}"


class ApprovalRule(models.Model):
    """A condition under which a quote needs finance's approval (edited by finance)."""

    class Kind(models.TextChoices):
        LINE_DISCOUNT_ABOVE = "line_discount_above", "A line's discount is above (percent)"
        TOTAL_DISCOUNT_ABOVE = (
            "total_discount_above",
            "The total discount against list is above (percent)",
        )
        TCV_ABOVE = "tcv_above", "The total contract value is above (amount)"
        ACV_ABOVE = "acv_above", "The annual contract value is above (amount)"
        MRR_BELOW = "mrr_below", "The monthly recurring revenue is below (amount)"
        PAYMENT_TERMS_ABOVE = "payment_terms_above", "Payment terms are longer than (days)"

    # Kinds whose threshold is money, compared only with quotes in the rule's currency.
    MONEY = {Kind.TCV_ABOVE, Kind.ACV_ABOVE, Kind.MRR_BELOW}

    name = models.CharField(max_length=200, help_text="Shown to the rep and approver.")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    threshold = price_field(validators=[MinValueValidator(ZERO)])
    currency = models.CharField(
        max_length=3,
        blank=True,
        help_text="Amount rules: the currency of the threshold (quotes in other currencies are "
        "not compared).",
    )
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["kind", "threshold", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        if self.kind in self.MONEY and not self.currency:
            errors["currency"] = "An amount rule needs the currency its threshold is in."
        if self.kind not in self.MONEY and self.currency:
            errors["currency"] = "Only amount rules (TCV, ACV, MRR) have a currency."
        percent = {self.Kind.LINE_DISCOUNT_ABOVE, self.Kind.TOTAL_DISCOUNT_ABOVE}
        if self.kind in percent and self.threshold is not None and self.threshold > 100:
            errors["threshold"] = "A discount is at most 100 percent."
        if errors:
            raise ValidationError(errors)
