from django.db import models

from customers.models import Customer
from subscriptions.models import Subscription


class Event(models.Model):
    """A usage event. Append-only; one per (customer, transaction_id)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="+")
    transaction_id = models.CharField(max_length=255)
    code = models.CharField(max_length=100)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "transaction_id"], name="event_unique_customer_transaction"
            )
        ]
        indexes = [
            models.Index(fields=["subscription", "code", "timestamp"], name="event_sub_code_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.transaction_id}"
