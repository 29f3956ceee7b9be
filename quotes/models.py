from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from catalog.models import Charge, Plan
from core.money import (
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
)
from customers.models import Customer
from subscriptions.models import Subscription


class Quote(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SENT = "sent", "Sent"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Expired"

    # Which states a quote may move to from each state (transitions happen in quotes.services).
    TRANSITIONS = {
        Status.DRAFT: {Status.SENT, Status.ACCEPTED, Status.DECLINED, Status.EXPIRED},
        Status.SENT: {Status.ACCEPTED, Status.DECLINED, Status.EXPIRED},
        Status.ACCEPTED: set(),
        Status.DECLINED: set(),
        Status.EXPIRED: set(),
    }

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="quotes")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="quotes")
    title = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    start_date = models.DateField(help_text="When the subscription starts if accepted.")
    term_months = models.PositiveSmallIntegerField(default=12)
    valid_until = models.DateField()
    subscription_external_id = models.CharField(
        max_length=100,
        blank=True,
        help_text="Id of the subscription to create (what usage events will carry). "
        "Left empty, one is generated at acceptance.",
    )
    subscription = models.OneToOneField(
        Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="quote"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status="accepted") | models.Q(subscription__isnull=False),
                name="quote_accepted_has_subscription",
            )
        ]

    def __str__(self) -> str:
        return f"{self.number} – {self.customer}"

    @property
    def currency(self) -> str:
        return str(self.customer.currency)

    def currency_problem(self) -> str | None:
        if self.currency not in self.plan.currencies:
            return (
                f"Plan '{self.plan.code}' is sold in {', '.join(self.plan.currencies)} but "
                f"{self.customer} is billed in {self.currency}: choose a plan in the customer's "
                "currency."
            )
        return None

    def clean(self):
        if self.customer_id and self.plan_id and self.currency_problem():
            raise ValidationError({"plan": self.currency_problem()})

    @property
    def number(self) -> str:
        return f"Q-{self.pk:05d}" if self.pk else "Q-(new)"


class QuoteLine(models.Model):
    quote = models.ForeignKey(Quote, on_delete=models.CASCADE, related_name="lines")
    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, related_name="+")
    description = models.CharField(max_length=200, blank=True)
    quantity = models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS,
        decimal_places=QUANTITY_DECIMAL_PLACES,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Seats or units per period for fixed fees; ignored for metered usage.",
    )
    unit_price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS,
        decimal_places=PRICE_DECIMAL_PLACES,
        validators=[MinValueValidator(Decimal("0"))],
        null=True,
        blank=True,
        help_text="Negotiated unit price (flat and standard charges); empty: the catalog terms.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    history = HistoricalRecords()

    class Meta:
        ordering = ["quote", "position", "id"]

    def __str__(self) -> str:
        return self.description or self.charge.name

    def clean(self):
        """Refuse, on the line's own field, what acceptance would refuse later."""
        if not self.charge_id:
            return
        charge, errors = self.charge, {}
        # The admin gives the line its quote, saved or not (the add page validates before saving).
        quote = self.quote if self.quote_id or QuoteLine.quote.is_cached(self) else None
        if quote is not None and quote.customer_id and charge.currency != quote.currency:
            errors["charge"] = (
                f"Charge '{charge.name}' is priced in {charge.currency}, not {quote.currency} "
                "(the customer's currency): choose one of the plan's charges in "
                f"{quote.currency}."
            )
        if self.unit_price is not None and not charge.pricing_model.unit_price:
            errors["unit_price"] = (
                f"'{charge.name}' is priced by its {charge.get_charge_model_display()} terms, "
                "not by a unit price: leave its price empty."
            )
        if errors:
            raise ValidationError(errors)
