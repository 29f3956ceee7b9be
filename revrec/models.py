from django.db import models
from djmoney.models.fields import CurrencyField

from core.fields import amount_field
from core.formatting import format_money
from subscriptions.models import Subscription


class RevenueSchedule(models.Model):
    """Ratable recognition of a subscription's fixed fee over its term, by calendar month."""

    subscription = models.OneToOneField(
        Subscription, on_delete=models.PROTECT, related_name="revenue_schedule"
    )
    total = amount_field()
    currency = CurrencyField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Revenue schedule of {self.subscription.external_id}"


class RevenueScheduleLine(models.Model):
    schedule = models.ForeignKey(RevenueSchedule, on_delete=models.CASCADE, related_name="lines")
    month = models.DateField(help_text="First day of the calendar month.")
    start_date = models.DateField()
    end_date = models.DateField()
    amount = amount_field()
    recognized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["schedule", "month"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "month"], name="revenue_line_unique_month")
        ]

    def __str__(self) -> str:
        return f"{self.month:%b %Y}: {format_money(self.amount, self.schedule.currency)}"
