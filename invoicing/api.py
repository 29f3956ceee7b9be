"""Current usage (Lago's customer_usage, with the estimated bill) and the upcoming invoice.
Thin: find the customer's subscription, call the selectors, render.

Current usage lives here, not in metering, because its estimated bill is the upcoming invoice
(invoicing.selectors.upcoming_invoice): metering does not know invoices (DESIGN.md)."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound, ValidationError
from core.money import minor_units, plain, round_money, to_minor
from core.schema import RETRY_AFTER, error_responses
from customers.models import Customer
from invoicing.selectors import UpcomingInvoice, upcoming_invoice
from invoicing.serializers import CurrentUsageAnswerSerializer, UpcomingInvoiceAnswerSerializer
from metering import selectors as usage_selectors
from subscriptions.models import Subscription

READ_ERRORS = error_responses(400, 401, 404, 422, 429)


def _subscription_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "external_subscription_id",
        str,
        required=True,
        description="The subscription's external id (a 422 when missing).",
        examples=[OpenApiExample("sub_acme_1", value="sub_acme_1")],
    )


CUSTOMER_PARAMETER = OpenApiParameter(
    "external_customer_id",
    str,
    OpenApiParameter.PATH,
    description="The customer's external id.",
    examples=[OpenApiExample("acme", value="acme")],
)


def _subscription(request, external_customer_id: str) -> Subscription:
    """The customer's subscription named by ?external_subscription_id (422 without it, 404 when
    the customer or the subscription is unknown)."""
    sub_id = request.query_params.get("external_subscription_id")
    if not sub_id:
        raise ValidationError(
            "The query parameter external_subscription_id is missing: send "
            "?external_subscription_id=<the subscription's external id>."
        )
    customer = Customer.objects.filter(external_id=external_customer_id).first()
    if customer is None:
        raise NotFound(f"No customer has external id '{external_customer_id}'.")
    subscription = (
        Subscription.objects.select_related("customer")
        .filter(customer=customer, external_id=sub_id)
        .first()
    )
    if subscription is None:
        raise NotFound(f"Customer '{external_customer_id}' has no subscription '{sub_id}'.")
    return subscription


def _no_period(subscription: Subscription) -> NotFound:
    return NotFound(
        f"Subscription '{subscription.external_id}' has no billing period in progress today."
    )


def _amount(amount: Decimal, currency: str) -> str:
    """A rounded amount at the currency's minor unit: "50.00", not "50.000000" (a prepaid
    balance keeps a quantity's decimals)."""
    return str(round_money(amount, currency))


def _money(amount: Decimal, currency: str) -> tuple[str, int]:
    return _amount(amount, currency), to_minor(amount, currency)


def estimated_bill_out(upcoming: UpcomingInvoice) -> dict:
    currency = upcoming.currency
    subtotal, subtotal_cents = _money(upcoming.subtotal, currency)
    tax, tax_cents = _money(upcoming.tax_amount, currency)
    total, total_cents = _money(upcoming.total, currency)
    return {
        "billing_date": upcoming.billing_date.isoformat(),
        "subtotal": subtotal,
        "subtotal_cents": subtotal_cents,
        "tax_rate": plain(upcoming.tax_rate),
        "tax": tax,
        "tax_cents": tax_cents,
        "total": total,
        "total_cents": total_cents,
    }


def upcoming_invoice_out(upcoming: UpcomingInvoice) -> dict:
    currency = upcoming.currency
    return {
        "external_customer_id": upcoming.customer.external_id,
        "external_subscription_id": upcoming.subscription.external_id,
        "currency": currency,
        "currency_minor_units": minor_units(currency),
        "billing_date": upcoming.billing_date.isoformat(),
        "period_start": upcoming.period_start.isoformat(),
        "period_end": upcoming.period_end.isoformat(),
        "lines": [
            {
                "kind": str(line.kind),
                "description": line.description,
                "period_start": line.period_start.isoformat(),
                "period_end": line.period_end.isoformat(),
                "quantity": plain(line.quantity),
                "unit_price": None if line.unit_price is None else plain(line.unit_price),
                "amount": _amount(line.amount, currency),
                "amount_cents": to_minor(line.amount, currency),
                "explanation": line.explanation,
            }
            for line in upcoming.lines
        ],
        "subtotal": _amount(upcoming.subtotal, currency),
        "subtotal_cents": to_minor(upcoming.subtotal, currency),
        "tax_rate": plain(upcoming.tax_rate),
        "tax_amount": _amount(upcoming.tax_amount, currency),
        "tax_amount_cents": to_minor(upcoming.tax_amount, currency),
        "total": _amount(upcoming.total, currency),
        "total_cents": to_minor(upcoming.total, currency),
    }


UPCOMING_EXAMPLE = {
    "upcoming_invoice": {
        "external_customer_id": "acme",
        "external_subscription_id": "sub_acme_1",
        "currency": "USD",
        "currency_minor_units": 2,
        "billing_date": "2026-02-01",
        "period_start": "2026-01-01",
        "period_end": "2026-02-01",
        "lines": [
            {
                "kind": "usage",
                "description": "API calls",
                "period_start": "2026-01-01",
                "period_end": "2026-02-01",
                "quantity": "400",
                "unit_price": None,
                "amount": "340.00",
                "amount_cents": 34000,
                "explanation": [
                    {
                        "description": "tier 1–100: 100 × 1",
                        "units": "100",
                        "unit_price": "1",
                        "flat_fee": "0",
                        "subtotal": "100",
                    },
                    {
                        "description": "tier 101–500: 300 × 0.8",
                        "units": "300",
                        "unit_price": "0.8",
                        "flat_fee": "0",
                        "subtotal": "240",
                    },
                ],
            },
            {
                "kind": "true_up",
                "description": "API calls: minimum commitment true-up",
                "period_start": "2026-01-01",
                "period_end": "2026-02-01",
                "quantity": "0",
                "unit_price": None,
                "amount": "260.00",
                "amount_cents": 26000,
                "explanation": [
                    {
                        "description": "minimum commitment 600: the period's charge 600.00, "
                        "rounded once, − 340.00 on the usage line",
                        "subtotal": "260.00",
                    }
                ],
            },
            {
                "kind": "credit",
                "description": "Prepaid credit applied (0 USD left)",
                "period_start": "2026-01-01",
                "period_end": "2026-02-01",
                "quantity": "0",
                "unit_price": None,
                "amount": "-50.00",
                "amount_cents": -5000,
                "explanation": [],
            },
            {
                "kind": "fee",
                "description": "Platform fee",
                "period_start": "2026-02-01",
                "period_end": "2026-03-01",
                "quantity": "1",
                "unit_price": "500",
                "amount": "500.00",
                "amount_cents": 50000,
                "explanation": [
                    {
                        "description": "1 × 500",
                        "units": "1",
                        "unit_price": "500",
                        "flat_fee": "0",
                        "subtotal": "500",
                    }
                ],
            },
        ],
        "subtotal": "1050.00",
        "subtotal_cents": 105000,
        "tax_rate": "8.25",
        "tax_amount": "86.63",
        "tax_amount_cents": 8663,
        "total": "1136.63",
        "total_cents": 113663,
    }
}


class UpcomingInvoiceView(APIView):
    @extend_schema(
        summary="The next invoice of a subscription, as if its period in progress closed now",
        description=(
            "Built by the billing run's own builder and saved nowhere: usage of the period in "
            "progress so far, its minimum-commitment true-ups, prepaid credit at today's balance, "
            "late-usage adjustments of earlier periods, fixed fees in arrears for the period and "
            "in advance for the next one, and tax on the rounded subtotal. A 404 when the "
            "subscription has no period in progress today."
        ),
        parameters=[CUSTOMER_PARAMETER, _subscription_parameter(), RETRY_AFTER],
        responses={200: UpcomingInvoiceAnswerSerializer, **READ_ERRORS},
        examples=[OpenApiExample("upcoming invoice", value=UPCOMING_EXAMPLE, response_only=True)],
    )
    def get(self, request, external_customer_id: str):
        subscription = _subscription(request, external_customer_id)
        upcoming = upcoming_invoice(subscription=subscription)
        if upcoming is None:
            raise _no_period(subscription)
        return Response({"upcoming_invoice": upcoming_invoice_out(upcoming)})


class CurrentUsageView(APIView):
    @extend_schema(
        summary="Usage and estimated bill of the current period (Lago customer_usage shape)",
        description=(
            "customer_usage is Lago's: the period's usage charges, rated. estimated_bill is the "
            "upcoming invoice's subtotal, tax and total (see GET …/upcoming_invoice)."
        ),
        parameters=[CUSTOMER_PARAMETER, _subscription_parameter(), RETRY_AFTER],
        responses={200: CurrentUsageAnswerSerializer, **READ_ERRORS},
    )
    def get(self, request, external_customer_id: str):
        subscription = _subscription(request, external_customer_id)
        period = usage_selectors.current_period(subscription=subscription)
        upcoming = upcoming_invoice(subscription=subscription, live=True) if period else None
        if period is None or upcoming is None:
            raise _no_period(subscription)
        usage = usage_selectors.usage_for_period(
            subscription=subscription, period=period, live=True
        )
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
                },
                "estimated_bill": estimated_bill_out(upcoming),
            }
        )
