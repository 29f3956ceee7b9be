import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

TIMEZONE_CHOICES = [(tz, tz) for tz in sorted(zoneinfo.available_timezones())]


class Customer(models.Model):
    """A billing account."""

    external_id = models.CharField(
        max_length=100, unique=True, help_text="The customer's id in your own systems."
    )
    name = models.CharField(max_length=200)
    currency = CurrencyField(default="USD")
    billing_email = models.EmailField()
    address = models.TextField(blank=True)
    payment_terms_days = models.PositiveIntegerField(default=30)
    tax_rate = models.DecimalField(
        max_digits=6,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Percent, applied to the rounded subtotal of each invoice.",
    )
    timezone = models.CharField(max_length=64, choices=TIMEZONE_CHOICES, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        permissions = [
            (
                "change_customer_financials",
                "Can change a customer's financial terms (currency, tax, payment terms, billing "
                "email, timezone)",
            )
        ]

    def __str__(self) -> str:
        return self.name


class PortalMembership(models.Model):
    """A Django user who may see one customer's account in the portal."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_membership"
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="memberships")
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.user} → {self.customer}"
