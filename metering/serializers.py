"""The API's bodies as serializers, for the OpenAPI schema. Ingestion does not run them (the
service's validator is the one gate, and faster); they describe what it accepts and answers."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from metering import services


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": services.MAX_TRANSACTION_ID},
            {"type": "integer"},
        ]
    }
)
class TransactionIdField(serializers.JSONField):
    pass


@extend_schema_field(
    {"anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "string"}], "nullable": True}
)
class TimestampField(serializers.JSONField):
    pass


class EventSerializer(serializers.Serializer):
    transaction_id = TransactionIdField(
        help_text="Your unique id for this event, per customer: a replay is counted as a duplicate."
    )
    external_subscription_id = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=services.MAX_EXTERNAL_ID,
        help_text="The subscription's external id (or send external_customer_id instead).",
    )
    external_customer_id = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=services.MAX_EXTERNAL_ID,
        help_text="Enough alone when the customer has exactly one active subscription.",
    )
    code = serializers.CharField(
        max_length=services.MAX_CODE, help_text="The billable metric's code."
    )
    timestamp = TimestampField(
        required=False,
        help_text=(
            "Optional: Unix seconds, or ISO 8601 (UTC when no zone). Left out, the time of "
            "receipt. At most 5 minutes ahead, and not older than the lateness window "
            "(35 days by default)."
        ),
    )
    properties = serializers.DictField(
        required=False,
        allow_null=True,
        help_text=(
            "The metric's field and anything else: at most "
            f"{services.MAX_PROPERTIES_BYTES:,} bytes as JSON, "
            f"{services.MAX_PROPERTIES_DEPTH} levels deep, keys of at most "
            f"{services.MAX_PROPERTY_KEY} characters, finite numbers, no NUL."
        ),
    )
    precise_total_amount_cents = serializers.CharField(
        required=False, allow_null=True, help_text="Sent by the Lago client; ignored."
    )


class EventInSerializer(serializers.Serializer):
    event = EventSerializer()


class EventBatchInSerializer(serializers.Serializer):
    events = EventSerializer(many=True, help_text=f"1 to {services.MAX_BATCH:,} events.")


class IngestAnswerSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="Events in the request.")
    created = serializers.IntegerField(help_text="Events stored by this request.")
    duplicates = serializers.IntegerField(help_text="Events stored before (replays, retries).")


class EventOutSerializer(serializers.Serializer):
    transaction_id = serializers.CharField()
    external_subscription_id = serializers.CharField()
    code = serializers.CharField()
    timestamp = serializers.DateTimeField()
    properties = serializers.DictField()


class EventAnswerSerializer(IngestAnswerSerializer):
    event = EventOutSerializer(help_text="The event as stored (or as first stored, if a replay).")


class ExplanationStepSerializer(serializers.Serializer):
    description = serializers.CharField()
    units = serializers.CharField()
    unit_price = serializers.CharField()
    flat_fee = serializers.CharField()
    subtotal = serializers.CharField()


class ChargeRefSerializer(serializers.Serializer):
    lago_id = serializers.CharField()
    charge_model = serializers.CharField()
    invoice_display_name = serializers.CharField()


class MetricRefSerializer(serializers.Serializer):
    lago_id = serializers.CharField()
    name = serializers.CharField()
    code = serializers.CharField()
    aggregation_type = serializers.CharField()


class ChargeUsageSerializer(serializers.Serializer):
    units = serializers.CharField(help_text="The period's quantity, an exact decimal.")
    total_aggregated_units = serializers.CharField()
    events_count = serializers.IntegerField()
    amount_cents = serializers.IntegerField(help_text="In the currency's minor unit.")
    amount_currency = serializers.CharField()
    amount = serializers.CharField(help_text="Rounded to the minor unit, as a decimal.")
    exact_amount = serializers.CharField()
    explanation = ExplanationStepSerializer(many=True)
    charge = ChargeRefSerializer()
    billable_metric = MetricRefSerializer()
    filters = serializers.ListField(child=serializers.DictField())
    grouped_usage = serializers.ListField(child=serializers.DictField())


class CustomerUsageSerializer(serializers.Serializer):
    from_datetime = serializers.DateTimeField()
    to_datetime = serializers.DateTimeField()
    issuing_date = serializers.DateField()
    currency = serializers.CharField()
    amount_cents = serializers.IntegerField()
    taxes_amount_cents = serializers.IntegerField()
    total_amount_cents = serializers.IntegerField()
    amount = serializers.CharField()
    currency_minor_units = serializers.IntegerField()
    charges_usage = ChargeUsageSerializer(many=True)
