import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import models
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

from catalog.models import BillableMetric, Charge, Plan
from core.fields import amount_field, price_field, quantity_field
from core.formatting import format_money, format_quantity
from core.periods import add_months
from customers.models import Customer


class Subscription(models.Model):
    """The contract in force. Created only through subscriptions.services.subscription_create."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"
        CANCELED = "canceled", "Canceled"

    class Renewal(models.TextChoices):
        RENEW = "renew", "Renew automatically (with the uplift)"
        END = "end", "End at the term's end"

    class UnusedCredit(models.TextChoices):
        FORFEIT = "forfeit", "Forfeited"
        REFUND = "refund", "Refunded (credited back)"

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
    payment_terms_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Days its invoices are due after issue (the accepted quote's terms); empty: "
        "the customer's payment terms.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    revision = models.PositiveIntegerField(
        default=0,
        help_text="Raised by every change of the contract: a change drafted on an older "
        "revision (a concurrent amendment) is refused.",
    )
    renewal = models.CharField(
        max_length=10,
        choices=Renewal.choices,
        default=Renewal.END,
        help_text="What happens at the term's end when nobody accepted the renewal quote.",
    )
    unused_credit_on_cancel = models.CharField(
        max_length=10,
        choices=UnusedCredit.choices,
        default=UnusedCredit.FORFEIT,
        help_text="What a cancellation does with prepaid credit not used yet.",
    )
    canceled_on = models.DateField(
        null=True,
        blank=True,
        help_text="Canceled: the service ends on this date (not included); the term ends here.",
    )
    canceled_at = models.DateTimeField(null=True, blank=True)
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancel_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-start_date", "external_id"]
        permissions = [("change_contract", "Can amend, renew or cancel a subscription")]

    def __str__(self) -> str:
        # The customer first: the admin capitalises a title's first letter (capfirst), which must
        # not turn the external id sub_bluefin into "Sub_bluefin".
        return f"{self.customer} — {self.external_id}"

    @property
    def term_end_date(self) -> dt.date:
        """The end of the term as signed (and renewed), a cancellation aside."""
        return add_months(self.start_date, self.term_months)

    @property
    def end_date(self) -> dt.date:
        """The day the service ends (not included): the term's end, or an earlier cancellation."""
        return self.canceled_on or self.term_end_date


class SubscriptionChange(models.Model):
    """One change of a contract in force: what, from when, by whom, why. Items a change adds
    point to it (`SubscriptionItem.change`), items it ends too (`ended_by`)."""

    class Kind(models.TextChoices):
        AMENDMENT = "amendment", "Amendment"
        QUANTITY = "quantity", "Quantity change"
        RENEWAL = "renewal", "Renewal"
        CANCELLATION = "cancellation", "Cancellation"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="changes")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    effective_date = models.DateField()
    description = models.TextField(help_text="What changed, in words.")
    invoice_now = models.BooleanField(
        default=False,
        help_text="Bill its proration on an invoice of its own at once, not on the next invoice.",
    )
    source = models.CharField(max_length=100, blank=True, help_text="The quote, API or admin.")
    reason = models.TextField(blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["subscription", "at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.effective_date}: {self.description}"


class SubscriptionItem(models.Model):
    """A priced line of the contract: the price terms are a snapshot, not a link to the catalog.

    `pricing` and `quantity` are the net terms the customer pays (discounts included); a ramp
    (`phases`) replaces them phase by phase, and `terms_on(day)` answers which are in force.
    `list_pricing` and the discount fields only explain the net price to people: nothing rates
    them. A one-time item (`billing_timing` one_time: implementation, training) has no metric
    and is billed once, in advance, on the first invoice.
    """

    class Timing(models.TextChoices):
        # The catalog's two timings (same values) plus a fee billed only once.
        IN_ADVANCE = Charge.Timing.IN_ADVANCE.value, Charge.Timing.IN_ADVANCE.label
        IN_ARREARS = Charge.Timing.IN_ARREARS.value, Charge.Timing.IN_ARREARS.label
        ONE_TIME = "one_time", "Once, on the first invoice"

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
    billing_timing = models.CharField(max_length=20, choices=Timing.choices)
    quantity = quantity_field(
        help_text="Fixed fees: the contracted quantity (seats). Usage: unused (metered).",
    )
    unit_name = models.CharField(max_length=50, default="unit")
    pricing = models.JSONField(
        help_text="Net price terms snapshotted at creation (rating engine input)."
    )
    list_pricing = models.JSONField(
        null=True,
        blank=True,
        help_text="The catalog (list) terms at creation, shown beside the net price; not rated.",
    )
    discount_percent = price_field(
        null=True,
        blank=True,
        help_text="Discount off the list unit price, in percent (display: `pricing` is net).",
    )
    discount_amount = price_field(
        null=True,
        blank=True,
        help_text="Discount off the list unit price, per unit (display: `pricing` is net).",
    )
    phases = models.JSONField(
        default=list,
        blank=True,
        help_text='A ramp: [{"start", "end", "quantity", "pricing"}], half-open [start, end), '
        "covering the term in order; empty: `pricing` and `quantity` for the whole term.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    starts_on = models.DateField(
        null=True, blank=True, help_text="In force from this date; empty: from the start."
    )
    ends_on = models.DateField(
        null=True,
        blank=True,
        help_text="In force until this date (not included); empty: to the end of the term.",
    )
    change = models.ForeignKey(
        SubscriptionChange,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="added_items",
        help_text="The change that put this version in force (empty: the original contract).",
    )
    ended_by = models.ForeignKey(
        SubscriptionChange,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ended_items",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["subscription", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(starts_on__isnull=True)
                | models.Q(ends_on__isnull=True)
                | models.Q(ends_on__gt=models.F("starts_on")),
                name="subscription_item_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_usage(self) -> bool:
        return self.metric_id is not None

    @property
    def is_one_time(self) -> bool:
        return self.billing_timing == self.Timing.ONE_TIME

    def in_force(self, day: dt.date) -> bool:
        """Whether this version of the item is in force on `day` (versions are half-open)."""
        return (self.starts_on is None or self.starts_on <= day) and (
            self.ends_on is None or day < self.ends_on
        )

    def window_in(self, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date] | None:
        """The part of [start, end) this version is in force, or None."""
        lo = max(start, self.starts_on) if self.starts_on else start
        hi = min(end, self.ends_on) if self.ends_on else end
        return (lo, hi) if lo < hi else None

    def terms_on(self, day: dt.date) -> tuple[dict, Decimal]:
        """(pricing, quantity) in force on `day`: the ramp phase containing it, else the item's
        own terms (no ramp, or a day outside the term)."""
        for phase in self.phases or []:
            if dt.date.fromisoformat(phase["start"]) <= day < dt.date.fromisoformat(phase["end"]):
                return phase["pricing"], Decimal(str(phase["quantity"]))
        return self.pricing, self.quantity


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
    priced_end_date = models.DateField(
        null=True,
        blank=True,
        help_text="A period cut short by a cancellation: the end its fees were priced on.",
    )

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

    @property
    def priced_end(self) -> dt.date:
        """The end its fees are priced on (proration denominators): its own end, unless a
        cancellation cut it short."""
        return self.priced_end_date or self.end_date


class PrepaidCredit(models.Model):
    """A prepaid balance that usage draws down before it is billed: money, or units of a metric.

    `remaining` decreases by invoicing under a row lock (each use is recorded by invoicing), and
    comes back only when the invoice that drew it is voided (prepaid_credit_give_back).
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
