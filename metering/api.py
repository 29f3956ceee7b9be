"""Lago-compatible event ingestion. Thin: parse, call the service, render. (Current usage, which
shows the estimated bill, is invoicing.api's: metering does not know invoices.)"""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ValidationError
from core.schema import RETRY_AFTER, error_responses
from metering import services
from metering.serializers import (
    EventAnswerSerializer,
    EventBatchInSerializer,
    EventInSerializer,
    IngestAnswerSerializer,
)

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
        summary=f"Send up to {services.MAX_BATCH:,} usage events at once (all or nothing)",
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
