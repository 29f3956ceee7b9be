"""The contract API: a subscription's item versions, a seat change without a quote, and a
cancellation. Thin: parse, call subscriptions.changes, render. It lives in invoicing because a
cancellation is settled at once (the credit note for the unused prepaid time), which is
invoicing's business (subscriptions does not import invoicing)."""

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import AnonymousUser
from django.db.models import F
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import clock
from core.errors import NotFound, ValidationError
from core.money import (
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
    plain,
    round_money,
    round_quantity,
)
from core.schema import RETRY_AFTER, error_responses
from invoicing.models import CreditNote
from invoicing.services import subscription_bill_now
from subscriptions.changes import subscription_cancel, subscription_set_quantity
from subscriptions.models import Subscription, SubscriptionChange, SubscriptionItem

MAX_QUANTITY = Decimal(10) ** (QUANTITY_MAX_DIGITS - QUANTITY_DECIMAL_PLACES)
READ_ERRORS = error_responses(400, 401, 404, 429)
WRITE_ERRORS = error_responses(400, 401, 404, 409, 415, 422, 429)

SUBSCRIPTION_PARAMETER = OpenApiParameter(
    "external_id",
    str,
    OpenApiParameter.PATH,
    description="The subscription's external id.",
    examples=[OpenApiExample("sub_acme_1", value="sub_acme_1")],
)
ITEM_PARAMETER = OpenApiParameter(
    "item_id",
    int,
    OpenApiParameter.PATH,
    description="The id of the item version in force (from GET …/items).",
)


class ItemVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    charge_code = serializers.CharField(
        allow_null=True, help_text="The catalog charge's key; null for a one-time fee."
    )
    kind = serializers.ChoiceField(choices=["fixed", "usage", "one_time"])
    quantity = serializers.CharField(help_text="Decimal string; usage items: 0 (metered).")
    starts_on = serializers.DateField(allow_null=True, help_text="null: from the term's start.")
    ends_on = serializers.DateField(
        allow_null=True, help_text="Not included; null: to the term's end."
    )
    in_force_today = serializers.BooleanField()
    change_id = serializers.IntegerField(
        allow_null=True, help_text="The change that added this version; null: the contract."
    )


class ItemsAnswerSerializer(serializers.Serializer):
    external_subscription_id = serializers.CharField()
    status = serializers.CharField()
    revision = serializers.IntegerField()
    items = ItemVersionSerializer(many=True)


class ChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    effective_date = serializers.DateField()
    description = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    invoice_now = serializers.BooleanField()
    source = serializers.CharField(allow_blank=True)
    at = serializers.DateTimeField()


class QuantityInSerializer(serializers.Serializer):
    quantity = serializers.CharField(help_text="The new quantity (seats), at least 0.")
    effective_date = serializers.DateField(
        help_text="From this day (inside the term, not before the period in progress)."
    )
    invoice_now = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Invoice the proration at once on an invoice of its own (default: on the "
        "next invoice).",
    )
    reason = serializers.CharField(required=False, allow_blank=True)
    revision = serializers.IntegerField(
        required=False,
        help_text="The subscription's revision the change was drafted on (from GET …/items): "
        "a 409 if another change came first.",
    )


class QuantityAnswerSerializer(serializers.Serializer):
    change = ChangeSerializer()
    item = ItemVersionSerializer(help_text="The new version, in force from the date.")
    revision = serializers.IntegerField()


class CancelInSerializer(serializers.Serializer):
    effective_date = serializers.DateField(
        required=False,
        help_text="The service ends this day (not included); omitted: at the end of the "
        "billing period in progress.",
    )
    reason = serializers.CharField(help_text="Why (required, kept in the history).")


class CreditNoteOutSerializer(serializers.Serializer):
    number = serializers.CharField()
    invoice = serializers.CharField()
    reason = serializers.CharField()
    total = serializers.CharField()


class CancelAnswerSerializer(serializers.Serializer):
    external_subscription_id = serializers.CharField()
    status = serializers.CharField()
    canceled_on = serializers.DateField()
    change = ChangeSerializer()
    credit_notes = CreditNoteOutSerializer(
        many=True, help_text="Issued at once for the unused prepaid time (none at a period end)."
    )


def _subscription(external_id: str) -> Subscription:
    subscription = Subscription.objects.filter(external_id=external_id).first()
    if subscription is None:
        raise NotFound(f"No subscription has external id '{external_id}'.")
    return subscription


def item_out(item: SubscriptionItem, today: dt.date) -> dict:
    if item.is_one_time:
        kind = "one_time"
    elif item.is_usage:
        kind = "usage"
    else:
        kind = "fixed"
    return {
        "id": item.pk,
        "name": item.name,
        "charge_code": item.charge.key if item.charge else None,
        "kind": kind,
        "quantity": plain(item.quantity),
        "starts_on": item.starts_on.isoformat() if item.starts_on else None,
        "ends_on": item.ends_on.isoformat() if item.ends_on else None,
        "in_force_today": item.in_force(today) and not item.is_one_time,
        "change_id": item.change_id,
    }


def change_out(change: SubscriptionChange) -> dict:
    return {
        "id": change.pk,
        "kind": change.kind,
        "effective_date": change.effective_date.isoformat(),
        "description": change.description,
        "reason": change.reason,
        "invoice_now": change.invoice_now,
        "source": change.source,
        "at": change.at.isoformat(),
    }


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError("Send a JSON object.")
    return request.data


def _date(body: dict, field: str, *, required: bool) -> dt.date | None:
    value = body.get(field)
    if value is None and not required:
        return None
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{field}: give a date as YYYY-MM-DD, not {value!r}.", details={"field": field}
        ) from None


def _text(body: dict, field: str) -> str:
    value = body.get(field, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{field}: give text.", details={"field": field})
    return value


def _named(field: str, exc: ValidationError) -> ValidationError:
    """A service's refusal, said with the request field it is about."""
    return ValidationError(f"{field}: {exc.message}", details={"field": field})


def _as_api_client(request) -> None:
    """simple_history records the request's user on every history row: an API client is not a
    User, so the rows this request writes have none (the change's `source` names the key)."""
    request._request.user = AnonymousUser()


def _source(request) -> str:
    return f"API ({request.auth.name})" if request.auth is not None else "API"


class SubscriptionItemsView(APIView):
    @extend_schema(
        summary="A subscription's item versions (what is in force from when)",
        parameters=[SUBSCRIPTION_PARAMETER, RETRY_AFTER],
        responses={200: ItemsAnswerSerializer, **READ_ERRORS},
    )
    def get(self, request, external_id: str):
        subscription = _subscription(external_id)
        today = clock.today()
        items = subscription.items.select_related("charge").order_by(
            "position", F("starts_on").asc(nulls_first=True), "id"
        )
        return Response(
            {
                "external_subscription_id": subscription.external_id,
                "status": subscription.status,
                "revision": subscription.revision,
                "items": [item_out(item, today) for item in items],
            }
        )


class SubscriptionItemQuantityView(APIView):
    @extend_schema(
        summary="Change an item's quantity (seats) from a date, without a quote",
        parameters=[SUBSCRIPTION_PARAMETER, ITEM_PARAMETER, RETRY_AFTER],
        request=QuantityInSerializer,
        responses={201: QuantityAnswerSerializer, **WRITE_ERRORS},
        examples=[
            OpenApiExample(
                "20 seats from Jan 16",
                value={"quantity": "20", "effective_date": "2026-01-16", "reason": "New team"},
                request_only=True,
            )
        ],
    )
    def post(self, request, external_id: str, item_id: int):
        subscription = _subscription(external_id)
        item = subscription.items.select_related("charge").filter(pk=item_id).first()
        if item is None:
            raise NotFound(f"Subscription '{external_id}' has no item {item_id}.")
        body = _body(request)
        raw = body.get("quantity")
        try:
            quantity = Decimal(str(raw)) if isinstance(raw, (int, float, str)) else None
        except InvalidOperation:
            quantity = None
        if (
            quantity is None
            or isinstance(raw, bool)
            or not quantity.is_finite()
            or abs(quantity) >= MAX_QUANTITY
            or round_quantity(quantity) != quantity
        ):
            raise ValidationError(
                f"quantity: give a number of at least 0 (at most {QUANTITY_DECIMAL_PLACES} "
                f"decimals), not {raw!r}.",
                details={"field": "quantity"},
            )
        effective_date = _date(body, "effective_date", required=True)
        invoice_now = body.get("invoice_now", False)
        if not isinstance(invoice_now, bool):
            raise ValidationError(
                "invoice_now: give true or false.", details={"field": "invoice_now"}
            )
        reason = _text(body, "reason")
        revision = body.get("revision")
        if revision is not None and (isinstance(revision, bool) or not isinstance(revision, int)):
            raise ValidationError("revision: give an integer.", details={"field": "revision"})
        _as_api_client(request)
        try:
            change = subscription_set_quantity(
                subscription=subscription,
                item=item,
                quantity=quantity,
                effective_date=effective_date,
                source=_source(request),
                reason=reason,
                invoice_now=invoice_now,
                expected_revision=revision,
            )
        except ValidationError as exc:
            if item.is_usage or item.is_one_time or item.phases:
                field = "item_id"
            elif quantity < 0 or quantity == item.quantity:
                field = "quantity"
            else:
                field = "effective_date"
            raise _named(field, exc) from exc
        if invoice_now:
            subscription_bill_now(subscription=subscription, today=clock.today())
        new = change.added_items.select_related("charge").get()
        subscription.refresh_from_db(fields=["revision"])
        return Response(
            {
                "change": change_out(change),
                "item": item_out(new, clock.today()),
                "revision": subscription.revision,
            },
            status=status.HTTP_201_CREATED,
        )


class SubscriptionCancelView(APIView):
    @extend_schema(
        summary="Cancel a subscription (credits the unused prepaid time at once)",
        parameters=[SUBSCRIPTION_PARAMETER, RETRY_AFTER],
        request=CancelInSerializer,
        responses={200: CancelAnswerSerializer, **WRITE_ERRORS},
        examples=[
            OpenApiExample(
                "from Jan 16",
                value={"effective_date": "2026-01-16", "reason": "Moving to a competitor"},
                request_only=True,
            )
        ],
    )
    def post(self, request, external_id: str):
        subscription = _subscription(external_id)
        body = _body(request)
        effective_date = _date(body, "effective_date", required=False)
        reason = _text(body, "reason")
        if not reason.strip():
            raise ValidationError(
                "reason: say why the subscription is cancelled (it is kept).",
                details={"field": "reason"},
            )
        today = clock.today()
        _as_api_client(request)
        try:
            change = subscription_cancel(
                subscription=subscription,
                reason=reason,
                effective_date=effective_date,
                source=_source(request),
                today=today,
            )
        except ValidationError as exc:
            raise _named("effective_date", exc) from exc
        subscription_bill_now(subscription=subscription, today=today)
        subscription.refresh_from_db()
        notes = CreditNote.objects.filter(change=change).select_related("invoice")
        return Response(
            {
                "external_subscription_id": subscription.external_id,
                "status": subscription.status,
                "canceled_on": subscription.canceled_on.isoformat(),
                "change": change_out(change),
                "credit_notes": [
                    {
                        "number": note.number,
                        "invoice": note.invoice.number,
                        "reason": note.reason,
                        "total": str(round_money(note.total, str(note.currency))),
                    }
                    for note in notes.order_by("number")
                ],
            }
        )
