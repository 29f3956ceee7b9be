"""Lago-compatible event ingestion and current usage. Thin: parse, call the service, render."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound, ValidationError
from core.money import minor_units, plain, to_minor
from core.schema import RETRY_AFTER, error_responses
from customers.models import Customer
from metering import selectors, services
from metering.serializers import (
    CurrentUsageAnswerSerializer,
    EventAnswerSerializer,
    EventBatchInSerializer,
    EventInSerializer,
    IngestAnswerSerializer,
)
from subscriptions.models import Subscription

# No timestamp: the time of receipt is used (a fixed one would grow older than the lateness
# window and be refused). A test posts each example.
EVENT_EXAMPLE = {
    "transaction_id": "evt_0001",
    "external_subscription_id": "sub_acme_1",
    "code": "api_calls",
    "properties": {},
}
TOKENS_EXAMPLE = {
    "transaction_id": "evt_0002",
    "external_subscription_id": "sub_acme_1",
    "code": "tokens",
    "properties": {"tokens": 1250},
}
INGEST_ERRORS = error_responses(400, 401, 413, 415, 422, 429)


def _event_out(row: dict) -> dict:
    return {
        "transaction_id": row["transaction_id"],
        "external_subscription_id": row["external_subscription_id"],
        "code": row["code"],
        "timestamp": row["timestamp"].isoformat(),
        "properties": row["properties"],
    }


class EventView(APIView):
    @extend_schema(
        summary="Send one usage event (Lago format)",
        request=EventInSerializer,
        responses={200: EventAnswerSerializer, **INGEST_ERRORS},
        parameters=[RETRY_AFTER],
        examples=[OpenApiExample("event", value={"event": EVENT_EXAMPLE}, request_only=True)],
    )
    def post(self, request):
        if not isinstance(request.data, dict) or not isinstance(request.data.get("event"), dict):
            raise ValidationError('Send {"event": {...}} with one event object.')
        result = services.events_ingest(raw_events=[request.data["event"]])
        return Response(
            {
                "event": _event_out(result.events[0]),
                "received": result.received,
                "created": result.created,
                "duplicates": result.duplicates,
            },
            status=status.HTTP_200_OK,
        )


class EventBatchView(APIView):
    @extend_schema(
        summary="Send up to 10,000 usage events at once (all or nothing)",
        request=EventBatchInSerializer,
        responses={200: IngestAnswerSerializer, **INGEST_ERRORS},
        parameters=[RETRY_AFTER],
        examples=[
            OpenApiExample(
                "batch", value={"events": [EVENT_EXAMPLE, TOKENS_EXAMPLE]}, request_only=True
            )
        ],
    )
    def post(self, request):
        if not isinstance(request.data, dict) or not isinstance(request.data.get("events"), list):
            raise ValidationError('Send {"events": [...]} with a list of event objects.')
        result = services.events_ingest(raw_events=request.data["events"])
        return Response(
            {
                "received": result.received,
                "created": result.created,
                "duplicates": result.duplicates,
            }
        )


class CurrentUsageView(APIView):
    @extend_schema(
        summary="Usage and estimated bill of the current period (Lago customer_usage shape)",
        parameters=[
            OpenApiParameter(
                "external_subscription_id",
                str,
                required=True,
                description="The subscription's external id (a 422 when missing).",
            ),
            RETRY_AFTER,
        ],
        responses={
            200: CurrentUsageAnswerSerializer,
            **error_responses(400, 401, 404, 422, 429),
        },
    )
    def get(self, request, external_customer_id: str):
        sub_id = request.query_params.get("external_subscription_id")
        if not sub_id:
            raise ValidationError(
                "The query parameter external_subscription_id is missing: send "
                "?external_subscription_id=<the subscription's external id>."
            )
        customer = Customer.objects.filter(external_id=external_customer_id).first()
        if customer is None:
            raise NotFound(f"No customer has external id '{external_customer_id}'.")
        subscription = Subscription.objects.filter(customer=customer, external_id=sub_id).first()
        if subscription is None:
            raise NotFound(f"Customer '{external_customer_id}' has no subscription '{sub_id}'.")
        period = selectors.current_period(subscription=subscription)
        if period is None:
            raise NotFound(f"Subscription '{sub_id}' has no billing period in progress today.")
        usage = selectors.usage_for_period(subscription=subscription, period=period, live=True)
        currency = subscription.currency
        total = sum((u.amount for u in usage), Decimal(0))
        return Response(
            {
                "customer_usage": {
                    "from_datetime": f"{period.start.isoformat()}T00:00:00Z",
                    "to_datetime": f"{period.end.isoformat()}T00:00:00Z",
                    "issuing_date": period.end.isoformat(),
                    "currency": currency,
                    "amount_cents": to_minor(total, currency),
                    "taxes_amount_cents": 0,
                    "total_amount_cents": to_minor(total, currency),
                    "amount": str(total),
                    "currency_minor_units": minor_units(currency),
                    "charges_usage": [
                        {
                            "units": plain(u.quantity),
                            "total_aggregated_units": plain(u.quantity),
                            "events_count": u.events_count,
                            "amount_cents": to_minor(u.amount, currency),
                            "amount_currency": currency,
                            "amount": str(u.amount),
                            "exact_amount": plain(u.rating.amount),
                            "explanation": u.rating.explanation(),
                            "charge": {
                                "lago_id": str(u.item.pk),
                                "charge_model": u.item.pricing["model"],
                                "invoice_display_name": u.item.name,
                            },
                            "billable_metric": {
                                "lago_id": str(u.item.metric.pk),
                                "name": u.item.metric.name,
                                "code": u.item.metric.code,
                                "aggregation_type": f"{u.item.metric.aggregation}_agg",
                            },
                            "filters": [],
                            "grouped_usage": [],
                        }
                        for u in usage
                    ],
                }
            }
        )
