from django.db import models
from djmoney.models.fields import CurrencyField
from simple_history.models import HistoricalRecords

from core.fields import amount_field
from core.formatting import format_money
from customers.models import Customer
from invoicing.models import Invoice


class Payment(models.Model):
    """Money received from a customer. Applied to invoices through allocations."""

    class Method(models.TextChoices):
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        CARD = "card", "Card"
        CHECK = "check", "Check"
        OTHER = "other", "Other"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    amount = amount_field()
    currency = CurrencyField()
    received_on = models.DateField()
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.BANK_TRANSFER)
    reference = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-received_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_amount_gt_0")
        ]

    def __str__(self) -> str:
        return (
            f"{format_money(self.amount, self.currency)} from {self.customer} "
            f"on {self.received_on:%b %-d, %Y}"
        )


class PaymentAllocation(models.Model):
    """Part of a payment applied to one invoice. Append-only."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    amount = amount_field()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="allocation_amount_gt_0")
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.payment.currency)} → {self.invoice}"
