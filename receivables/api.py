"""The payments API: record a payment (idempotent), read payments, a customer's balance.
Thin: parse (receivables.serializers), call receivables.services or a selector, render.

A payment is recorded once per idempotency key (the `Idempotency-Key` header, or the body's
`idempotency_key`): the first request answers 201, a repeat answers 200 with the same payment
and writes nothing; the same key with other figures is a 409. The key is unique in the database
(Payment.idempotency_key), which settles two requests that arrive at the same moment.
"""

from decimal import Decimal

from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import clock
from core.errors import NotFound, ValidationError
from core.money import to_minor
from core.schema import RETRY_AFTER, ErrorSerializer, error_responses
from customers.models import Customer
from invoicing.balance import credit_balance
from receivables.models import Payment, PaymentAllocation
from receivables.selectors import Balance, customer_balances
from receivables.serializers import (
    CustomerBalanceAnswerSerializer,
    PaymentAnswerSerializer,
    PaymentInSerializer,
    PaymentListAnswerSerializer,
    balance_out,
    invalid,
    payment_out,
    payment_request,
)
from receivables.services import payment_record, payment_validate

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100

NOT_FOUND = {
    404: OpenApiResponse(ErrorSerializer, description="No such payment or customer (not_found).")
}
CONFLICT = {
    409: OpenApiResponse(
        ErrorSerializer,
        description="This idempotency key was used for another payment (other customer, "
        "amount, currency or date) (conflict): nothing was recorded; use a new key.",
    )
}
READ_ERRORS = {**error_responses(400, 401, 429), **NOT_FOUND}
WRITE_ERRORS = {**error_responses(400, 401, 415, 422, 429), **CONFLICT}

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Your unique key for this payment (a UUID), at most 100 characters: a repeated "
    "request with it records nothing and answers 200 with the payment first recorded. Send it "
    "on every payment, so that a retry after a timeout is safe.",
)
REPLAYED = OpenApiParameter(
    "Idempotent-Replayed",
    str,
    OpenApiParameter.HEADER,
    response=[200],
    description="true: the payment was recorded by an earlier request with this key.",
)
PAYMENT_ID = OpenApiParameter(
    "payment_id", int, OpenApiParameter.PATH, description="The payment's id."
)
CUSTOMER_PARAMETER = OpenApiParameter(
    "external_customer_id",
    str,
    OpenApiParameter.PATH,
    description="The customer's external id.",
    examples=[OpenApiExample("acme", value="acme")],
)

# Acme has INV-000001 (100.00, due Feb 14) and INV-000002 (100.00, due Mar 16) open and pays
# 250.00: both are paid, oldest due date first, and 50.00 goes on account. A test posts it.
PAYMENT_EXAMPLE = {
    "external_customer_id": "acme",
    "amount": "250.00",
    "received_on": "2026-03-02",
    "method": "bank_transfer",
    "reference": "WIRE 0302-7781",
}
PAYMENT_ANSWER_EXAMPLE = {
    "payment": {
        "id": 1,
        "external_customer_id": "acme",
        "amount": "250.00",
        "amount_cents": 25000,
        "currency": "USD",
        "currency_minor_units": 2,
        "received_on": "2026-03-02",
        "method": "bank_transfer",
        "reference": "WIRE 0302-7781",
        "idempotency_key": "3f0c8a4e-5d1b-4b7e-9a51-2c7d0e6f9b10",
        "allocations": [
            {"invoice": "INV-000001", "amount": "100.00", "amount_cents": 10000},
            {"invoice": "INV-000002", "amount": "100.00", "amount_cents": 10000},
        ],
        "applied": "200.00",
        "applied_cents": 20000,
        "on_account": "50.00",
        "on_account_cents": 5000,
        "reversed_on": None,
        "reversal_reason": "",
        "created_at": "2026-03-02T10:00:00+00:00",
    },
    "credit_balance": {"currency": "USD", "amount": "50.00", "amount_cents": 5000},
}


def _as_api_client(request) -> None:
    """simple_history records the request's user on every history row: an API client is not a
    User, so the rows this request writes have none."""
    request._request.user = AnonymousUser()


def _payments():
    return Payment.objects.select_related("customer").prefetch_related(
        Prefetch("allocations", queryset=PaymentAllocation.objects.select_related("invoice"))
    )


def _answer(payment: Payment) -> dict:
    payment = _payments().get(pk=payment.pk)
    currency = str(payment.currency)
    balance = credit_balance(payment.customer, currency)
    return {
        "payment": payment_out(payment),
        "credit_balance": {
            "currency": currency,
            "amount": str(balance),
            "amount_cents": to_minor(balance, currency),
        },
    }


def _customer(external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(f"No customer has external id '{external_id}'.")
    return customer


def _page_number(request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (maximum is not None and value > maximum):
        limit = f"1 to {maximum}" if maximum else "1 or more"
        raise invalid(name, f"give a whole number, {limit}, not {raw!r}.")
    return value


class PaymentsView(APIView):
    @extend_schema(
        summary="Record a payment (idempotent), applied to the customer's open invoices",
        description=(
            "All of the payment is allocated: to `allocations` when given, else to the "
            "customer's open invoices oldest due date first (unless `apply` is false); what is "
            "left goes on account, to the customer's credit balance, which their next invoices "
            "take at finalization. 201 when recorded; 200 with the same payment when the "
            "idempotency key was used before with the same figures (nothing is recorded "
            "twice). On any error nothing is recorded."
        ),
        parameters=[IDEMPOTENCY_KEY, REPLAYED, RETRY_AFTER],
        request=PaymentInSerializer,
        responses={
            201: PaymentAnswerSerializer,
            200: OpenApiResponse(
                PaymentAnswerSerializer,
                description="Recorded before, by a request with the same idempotency key.",
            ),
            **WRITE_ERRORS,
        },
        examples=[
            OpenApiExample("250.00 by wire", value=PAYMENT_EXAMPLE, request_only=True),
            OpenApiExample(
                "applied to two invoices, 50.00 on account",
                value=PAYMENT_ANSWER_EXAMPLE,
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request):
        wanted = payment_request(
            request.data, idempotency_header=request.headers.get("Idempotency-Key")
        )
        customer = wanted.customer
        try:
            payment_validate(customer=customer, amount=wanted.amount, currency=wanted.currency)
        except ValidationError as exc:
            field = "currency" if wanted.currency != str(customer.currency) else "amount"
            raise invalid(field, exc.message) from exc
        _as_api_client(request)
        try:
            with transaction.atomic():
                payment = payment_record(
                    customer=customer,
                    amount=wanted.amount,
                    currency=wanted.currency,
                    received_on=wanted.received_on,
                    method=wanted.method,
                    reference=wanted.reference,
                    allocations=wanted.allocations,
                    auto_apply=wanted.apply,
                    idempotency_key=wanted.idempotency_key,
                )
                answer = _answer(payment)
        except ValidationError as exc:
            # The customer, currency and amount passed above: what is left is the date or the
            # allocations (more than an invoice has open, more than the payment, not open).
            field = "received_on" if wanted.received_on > clock.today() else "allocations"
            raise invalid(field, exc.message) from exc
        if getattr(payment, "replayed", False):
            return Response(
                answer, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"}
            )
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Payments, newest received first (paginated)",
        operation_id="v1_payments_list",
        parameters=[
            OpenApiParameter(
                "external_customer_id",
                str,
                description="Only this customer's payments (a 404 when no customer has it).",
            ),
            OpenApiParameter("page", int, description="From 1 (default 1)."),
            OpenApiParameter(
                "per_page",
                int,
                description=f"1 to {MAX_PER_PAGE} (default {DEFAULT_PER_PAGE}).",
            ),
            RETRY_AFTER,
        ],
        responses={200: PaymentListAnswerSerializer, **READ_ERRORS, **error_responses(422)},
    )
    def get(self, request):
        payments = _payments().order_by("-received_on", "-id")
        external_id = request.query_params.get("external_customer_id")
        if external_id is not None:
            payments = payments.filter(customer=_customer(external_id))
        page = _page_number(request, "page", 1)
        per_page = _page_number(request, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
        total = payments.count()
        pages = max(1, -(-total // per_page))
        rows = payments[(page - 1) * per_page : page * per_page] if page <= pages else []
        return Response(
            {
                "payments": [payment_out(payment) for payment in rows],
                "meta": {
                    "current_page": page,
                    "next_page": page + 1 if page < pages else None,
                    "prev_page": min(page - 1, pages) if page > 1 else None,
                    "total_pages": pages,
                    "total_count": total,
                },
            }
        )


class PaymentView(APIView):
    @extend_schema(
        summary="A payment, with where it stands now (invoices, on account, reversal)",
        parameters=[PAYMENT_ID, RETRY_AFTER],
        responses={200: PaymentAnswerSerializer, **READ_ERRORS},
    )
    def get(self, request, payment_id: int):
        payment = Payment.objects.filter(pk=payment_id).first()
        if payment is None:
            raise NotFound(f"No payment has id {payment_id}.")
        return Response(_answer(payment))


class CustomerBalanceView(APIView):
    @extend_schema(
        summary="What a customer owes: open, overdue, and their credit balance",
        parameters=[CUSTOMER_PARAMETER, RETRY_AFTER],
        responses={200: CustomerBalanceAnswerSerializer, **READ_ERRORS},
    )
    def get(self, request, external_customer_id: str):
        customer = _customer(external_customer_id)
        today = clock.today()
        balances = customer_balances(customer=customer, as_of=today)
        currency = str(customer.currency)
        if not balances or balances[0].currency != currency:
            zero = Balance(currency, Decimal(0), Decimal(0), 0, 0)  # nothing open, no credit
            balances = [zero, *balances]
        return Response(
            {
                "balance": {
                    "external_customer_id": customer.external_id,
                    "currency": currency,
                    "as_of": today.isoformat(),
                    "balances": [balance_out(b) for b in balances],
                }
            }
        )
