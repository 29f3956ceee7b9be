import functools
import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

# Names in the zone database that are not a place: they follow the server's own configuration.
MACHINE_ZONES = {"localtime", "posixrules"}


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA zone names this machine knows (its tzdata), without machine-local aliases.

    Read at run time, never stored in a migration: the list differs from one tzdata to another.
    """
    return frozenset(zoneinfo.available_timezones()) - MACHINE_ZONES


def timezone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(time_zones())]


def validate_timezone(name: str) -> None:
    if name in MACHINE_ZONES:
        raise ValidationError(
            f"'{name}' follows the server's own setting, not a place: name the customer's zone, "
            "e.g. Europe/Paris or America/New_York.",
            code="invalid_timezone",
        )
    if name not in time_zones():
        raise ValidationError(
            f"'{name}' is not a time zone: use an IANA zone name such as Europe/Paris or "
            "America/New_York.",
            code="invalid_timezone",
        )


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
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA zone name, e.g. Europe/Paris: dates on the portal are shown in it.",
    )
    renewal_uplift_percent = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Price increase at renewal, in percent; empty: the plan's.",
    )
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
