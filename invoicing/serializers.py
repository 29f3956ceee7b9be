"""The invoicing API's bodies (upcoming invoice, current usage's estimated bill) as serializers,
for the OpenAPI schema and for rendering. Amounts are decimal strings, rounded to the currency's
minor unit, with their `*_cents` integer (minor units) beside them, as in current usage."""

from rest_framework import serializers

from invoicing.models import InvoiceLine
from metering.serializers import CustomerUsageSerializer


class EstimatedBillSerializer(serializers.Serializer):
    billing_date = serializers.DateField(
        help_text="The billing date that closes the period in progress (its end)."
    )
    subtotal = serializers.CharField(
        help_text="The upcoming invoice's subtotal, before tax: what bill alerts compare."
    )
    subtotal_cents = serializers.IntegerField()
    tax_rate = serializers.CharField(help_text="Percent, e.g. 8.25.")
    tax = serializers.CharField(help_text="Tax on the rounded subtotal, rounded once.")
    tax_cents = serializers.IntegerField()
    total = serializers.CharField(help_text="subtotal + tax.")
    total_cents = serializers.IntegerField()


class CurrentUsageAnswerSerializer(serializers.Serializer):
    customer_usage = CustomerUsageSerializer()
    estimated_bill = EstimatedBillSerializer(
        help_text="The upcoming invoice's totals: usage so far and every other line the next "
        "invoice holds (fees, true-ups, prepaid credit, late-usage adjustments), with tax."
    )


class LineStepSerializer(serializers.Serializer):
    description = serializers.CharField()
    units = serializers.CharField(required=False)
    unit_price = serializers.CharField(required=False)
    flat_fee = serializers.CharField(required=False)
    subtotal = serializers.CharField(required=False)


class UpcomingLineSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=InvoiceLine.Kind.values,
        help_text="fee, usage, true_up (minimum commitment), credit (prepaid, negative) or "
        "adjustment (late usage of an earlier period).",
    )
    description = serializers.CharField()
    period_start = serializers.DateField(help_text="The service period the line bills …")
    period_end = serializers.DateField(help_text="… to this date, exclusive.")
    quantity = serializers.CharField(help_text="An exact decimal.")
    unit_price = serializers.CharField(allow_null=True)
    amount = serializers.CharField(help_text="Rounded once to the minor unit.")
    amount_cents = serializers.IntegerField()
    explanation = LineStepSerializer(many=True)


class UpcomingInvoiceSerializer(serializers.Serializer):
    external_customer_id = serializers.CharField()
    external_subscription_id = serializers.CharField()
    currency = serializers.CharField()
    currency_minor_units = serializers.IntegerField()
    billing_date = serializers.DateField(help_text="When the billing run will make this invoice.")
    period_start = serializers.DateField(help_text="The period in progress, from …")
    period_end = serializers.DateField(help_text="… to this date, exclusive.")
    lines = UpcomingLineSerializer(many=True)
    subtotal = serializers.CharField()
    subtotal_cents = serializers.IntegerField()
    tax_rate = serializers.CharField()
    tax_amount = serializers.CharField()
    tax_amount_cents = serializers.IntegerField()
    total = serializers.CharField()
    total_cents = serializers.IntegerField()


class UpcomingInvoiceAnswerSerializer(serializers.Serializer):
    upcoming_invoice = UpcomingInvoiceSerializer()
