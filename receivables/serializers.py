"""The payments API's bodies: what a request may hold (parsed here into a PaymentRequest, with a
message per field that says what to send), what it answers (rendered here), and both as
serializers for the OpenAPI schema.

Amounts travel as decimal strings ("250.00"), never JSON numbers with a fraction (a float loses
cents); answers give each amount rounded to the currency's minor unit with its `*_cents` integer
beside it, as the rest of the API does.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from rest_framework import serializers

from core.errors import ValidationError
from core.money import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    exact_sum,
    minor_units,
    round_money,
    to_minor,
)
from customers.models import Customer
from invoicing.models import Invoice
from receivables.models import Payment
from receivables.selectors import Balance

MAX_AMOUNT = Decimal(10) ** (AMOUNT_MAX_DIGITS - AMOUNT_DECIMAL_PLACES)
MAX_ALLOCATIONS = 500
MAX_REFERENCE = Payment._meta.get_field("reference").max_length
MAX_IDEMPOTENCY_KEY = Payment._meta.get_field("idempotency_key").max_length
FIELDS = {
    "external_customer_id",
    "amount",
    "currency",
    "received_on",
    "method",
    "reference",
    "allocations",
    "apply",
    "idempotency_key",
}


def invalid(field: str, message: str) -> ValidationError:
    """A refusal that names the request field it is about (details.field)."""
    return ValidationError(f"{field}: {message}", details={"field": field})


# --- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentRequest:
    """A payment request, parsed: types and formats checked, references resolved. What the
    figures may be (the customer's currency, above zero, within what is open) is the service's
    to say."""

    customer: Customer
    amount: Decimal
    currency: str
    received_on: dt.date
    method: str
    reference: str
    allocations: dict[int, Decimal] | None  # invoice id → amount; None: oldest due date first
    apply: bool
    idempotency_key: str | None


def _decimal(value, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise invalid(
            field,
            f'give the amount as a decimal string such as "250.00", not {value!r} (a JSON '
            "number with a fraction can lose cents).",
        )
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise invalid(
            field, f'give the amount as a decimal string such as "250.00", not {value!r}.'
        )
    if abs(amount) >= MAX_AMOUNT:
        raise invalid(field, f"{value} is too large: at most {MAX_AMOUNT - 1:,} in all.")
    return amount


def _text(body: dict, field: str, *, max_length: int, default: str = "") -> str:
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid(field, f"give text, not {value!r}.")
    if len(value) > max_length:
        raise invalid(field, f"at most {max_length} characters (this one has {len(value)}).")
    return value


def _idempotency_key(body: dict, header: str | None) -> str | None:
    in_body = body.get("idempotency_key")
    if in_body is not None and not isinstance(in_body, str):
        raise invalid("idempotency_key", f"give text, not {in_body!r}.")
    if header is not None and in_body is not None and header != in_body:
        raise invalid(
            "idempotency_key",
            f"the Idempotency-Key header ({header!r}) and the body's idempotency_key "
            f"({in_body!r}) differ: send one of them.",
        )
    key = header if header is not None else in_body
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise invalid(
            "idempotency_key",
            f"give 1 to {MAX_IDEMPOTENCY_KEY} characters, such as a UUID you keep with the "
            f"payment (this one has {len(key)}).",
        )
    return key


def _allocations(value, customer: Customer) -> dict[int, Decimal]:
    shape = 'give a list of {"invoice": "<invoice number>", "amount": "<decimal>"}'
    if not isinstance(value, list):
        raise invalid("allocations", f"{shape}, not {value!r}.")
    if not value:
        raise invalid(
            "allocations",
            "the list is empty: name at least one invoice, or leave allocations out (the oldest "
            'due date is paid first), or send "apply": false (all of it on account).',
        )
    if len(value) > MAX_ALLOCATIONS:
        raise invalid("allocations", f"at most {MAX_ALLOCATIONS} invoices per payment.")
    wanted: dict[str, Decimal] = {}
    for index, row in enumerate(value):
        at = f"allocations[{index}]"
        if not isinstance(row, dict) or set(row) != {"invoice", "amount"}:
            raise invalid(at, f"{shape}, not {row!r}.")
        number = row["invoice"]
        if not isinstance(number, str) or not number:
            raise invalid(f"{at}.invoice", f"give the invoice's number, not {number!r}.")
        if number in wanted:
            raise invalid(
                f"{at}.invoice",
                f"invoice {number} is named twice: give its amount once.",
            )
        wanted[number] = _decimal(row["amount"], f"{at}.amount")
    invoices = dict(
        Invoice.objects.filter(customer=customer, number__in=list(wanted)).values_list(
            "number", "pk"
        )
    )
    for index, number in enumerate(wanted):
        if number not in invoices:
            raise invalid(
                f"allocations[{index}].invoice",
                f"customer '{customer.external_id}' has no invoice {number}.",
            )
    return {invoices[number]: amount for number, amount in wanted.items()}


def payment_request(body, *, idempotency_header: str | None) -> PaymentRequest:
    """The request's body (and Idempotency-Key header) parsed, or a ValidationError naming the
    first field that is wrong and what to send instead."""
    if not isinstance(body, dict):
        raise ValidationError("Send a JSON object with the payment's fields.")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise invalid(
            unknown[0],
            f"this field is unknown (a typo?): the fields are {', '.join(sorted(FIELDS))}.",
        )
    external_id = body.get("external_customer_id")
    if not isinstance(external_id, str) or not external_id:
        raise invalid(
            "external_customer_id", "give the external id of the customer who paid (required)."
        )
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise invalid("external_customer_id", f"no customer has external id '{external_id}'.")
    if body.get("amount") is None:
        raise invalid("amount", 'give the amount received, such as "250.00" (required).')
    amount = _decimal(body["amount"], "amount")
    currency = body.get("currency")
    if currency is None:
        currency = str(customer.currency)
    elif not isinstance(currency, str) or not currency.strip():
        raise invalid(
            "currency", f"give an ISO 4217 code such as {customer.currency}, or leave it out."
        )
    raw_date = body.get("received_on")
    try:
        received_on = dt.date.fromisoformat(raw_date)
    except (TypeError, ValueError):
        raise invalid(
            "received_on", f"give the day the money arrived as YYYY-MM-DD, not {raw_date!r}."
        ) from None
    method = body.get("method")
    if method is None:
        method = Payment.Method.BANK_TRANSFER
    elif method not in Payment.Method.values:
        raise invalid("method", f"give one of {', '.join(Payment.Method.values)}, not {method!r}.")
    reference = _text(body, "reference", max_length=MAX_REFERENCE)
    apply = body.get("apply", True)
    if not isinstance(apply, bool):
        raise invalid("apply", f"give true or false, not {apply!r}.")
    allocations = None
    if body.get("allocations") is not None:
        if not apply:
            raise invalid(
                "apply",
                "false keeps the whole payment on account: leave out allocations, or leave out "
                "apply.",
            )
        allocations = _allocations(body["allocations"], customer)
    return PaymentRequest(
        customer=customer,
        amount=amount,
        currency=currency.strip().upper(),
        received_on=received_on,
        method=str(method),
        reference=reference,
        allocations=allocations,
        apply=apply,
        idempotency_key=_idempotency_key(body, idempotency_header),
    )


class AllocationInSerializer(serializers.Serializer):
    invoice = serializers.CharField(help_text="The invoice's number, e.g. INV-000042.")
    amount = serializers.CharField(help_text="A decimal string, at most what the invoice has open.")


class PaymentInSerializer(serializers.Serializer):
    external_customer_id = serializers.CharField(help_text="The customer who paid.")
    amount = serializers.CharField(
        help_text='What was received, a decimal string above zero ("250.00"), at most the '
        "currency's decimals."
    )
    currency = serializers.CharField(
        required=False,
        help_text="Optional: the customer's currency. Any other is refused (422) with a message "
        "naming the one to use.",
    )
    received_on = serializers.DateField(help_text="The day the money arrived, not in the future.")
    method = serializers.ChoiceField(
        choices=Payment.Method.values, required=False, help_text="Default: bank_transfer."
    )
    reference = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_REFERENCE,
        help_text="The bank's or the customer's reference, shown to finance.",
    )
    allocations = AllocationInSerializer(
        many=True,
        required=False,
        help_text="Optional: how much goes to which invoice; the rest goes on account (the "
        "customer's credit balance). Left out: the customer's open invoices are paid oldest "
        "due date first.",
    )
    apply = serializers.BooleanField(
        required=False,
        default=True,
        help_text="false: apply nothing now, keep all of it on account (the credit balance, "
        "which the customer's next invoices take at finalization).",
    )
    idempotency_key = serializers.CharField(
        required=False,
        max_length=MAX_IDEMPOTENCY_KEY,
        help_text="The same as the Idempotency-Key header (send one or the other).",
    )


# --- answers -----------------------------------------------------------------------------------


def _amount(amount: Decimal, currency: str) -> str:
    return str(round_money(amount, currency))


def payment_out(payment: Payment) -> dict:
    """A payment with what of it stands on each invoice and on account (net of un-applies and
    reversals). Reads payment.allocations (prefetch them with their invoice for a list)."""
    currency = str(payment.currency)
    on_invoices: dict[int, list] = {}
    on_account = Decimal(0)
    for row in payment.allocations.all():
        if row.invoice_id is None:
            on_account += row.amount
        else:
            on_invoices.setdefault(row.invoice_id, [row.invoice, Decimal(0)])[1] += row.amount
    allocations = [
        {
            "invoice": invoice.number,
            "amount": _amount(net, currency),
            "amount_cents": to_minor(net, currency),
        }
        for invoice, net in on_invoices.values()
        if net
    ]
    applied = exact_sum(net for _, net in on_invoices.values())
    return {
        "id": payment.pk,
        "external_customer_id": payment.customer.external_id,
        "amount": _amount(payment.amount, currency),
        "amount_cents": to_minor(payment.amount, currency),
        "currency": currency,
        "currency_minor_units": minor_units(currency),
        "received_on": payment.received_on.isoformat(),
        "method": payment.method,
        "reference": payment.reference,
        "idempotency_key": payment.idempotency_key,
        "allocations": allocations,
        "applied": _amount(applied, currency),
        "applied_cents": to_minor(applied, currency),
        "on_account": _amount(on_account, currency),
        "on_account_cents": to_minor(on_account, currency),
        "reversed_on": payment.reversed_on.isoformat() if payment.reversed_on else None,
        "reversal_reason": payment.reversal_reason,
        "created_at": payment.created_at.isoformat(),
    }


def balance_out(balance: Balance) -> dict:
    currency = balance.currency
    return {
        "currency": currency,
        "open": _amount(balance.due, currency),
        "open_cents": to_minor(balance.due, currency),
        "open_invoices": balance.open_invoices,
        "overdue": _amount(balance.overdue, currency),
        "overdue_cents": to_minor(balance.overdue, currency),
        "overdue_invoices": balance.overdue_invoices,
        "credit_balance": _amount(balance.credit, currency),
        "credit_balance_cents": to_minor(balance.credit, currency),
    }


class AllocationOutSerializer(serializers.Serializer):
    invoice = serializers.CharField(help_text="The invoice's number.")
    amount = serializers.CharField(help_text="What of the payment stands on it (net).")
    amount_cents = serializers.IntegerField()


class PaymentOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_customer_id = serializers.CharField()
    amount = serializers.CharField(help_text="Rounded to the currency's minor unit.")
    amount_cents = serializers.IntegerField()
    currency = serializers.CharField()
    currency_minor_units = serializers.IntegerField()
    received_on = serializers.DateField()
    method = serializers.ChoiceField(choices=Payment.Method.values)
    reference = serializers.CharField(allow_blank=True)
    idempotency_key = serializers.CharField(allow_null=True)
    allocations = AllocationOutSerializer(
        many=True, help_text="Per invoice, what of the payment is applied to it now."
    )
    applied = serializers.CharField(help_text="The sum of allocations.")
    applied_cents = serializers.IntegerField()
    on_account = serializers.CharField(
        help_text="What of the payment went to the customer's credit balance (amount − applied, "
        "0 once the payment is reversed)."
    )
    on_account_cents = serializers.IntegerField()
    reversed_on = serializers.DateField(
        allow_null=True, help_text="Set when the payment was reversed (a bounced transfer)."
    )
    reversal_reason = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class CreditBalanceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    amount = serializers.CharField()
    amount_cents = serializers.IntegerField()


class PaymentAnswerSerializer(serializers.Serializer):
    payment = PaymentOutSerializer()
    credit_balance = CreditBalanceSerializer(
        help_text="The customer's credit balance in the payment's currency now (after this "
        "payment): money on account that their next invoices take at finalization."
    )


class PageMetaSerializer(serializers.Serializer):
    current_page = serializers.IntegerField()
    next_page = serializers.IntegerField(allow_null=True)
    prev_page = serializers.IntegerField(allow_null=True)
    total_pages = serializers.IntegerField()
    total_count = serializers.IntegerField()


class PaymentListAnswerSerializer(serializers.Serializer):
    payments = PaymentOutSerializer(many=True, help_text="Newest received first.")
    meta = PageMetaSerializer()


class CurrencyBalanceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    open = serializers.CharField(help_text="Left to pay on the customer's finalized invoices.")
    open_cents = serializers.IntegerField()
    open_invoices = serializers.IntegerField()
    overdue = serializers.CharField(help_text="The part of `open` past its due date.")
    overdue_cents = serializers.IntegerField()
    overdue_invoices = serializers.IntegerField()
    credit_balance = serializers.CharField(
        help_text="Money on account, in the customer's favour (taken by their next invoices)."
    )
    credit_balance_cents = serializers.IntegerField()


class CustomerBalanceSerializer(serializers.Serializer):
    external_customer_id = serializers.CharField()
    currency = serializers.CharField(help_text="The customer's currency.")
    as_of = serializers.DateField(help_text="Today: overdue means due before this day.")
    balances = CurrencyBalanceSerializer(
        many=True,
        help_text="One per currency, the customer's first (always there, zeros when nothing "
        "is open).",
    )


class CustomerBalanceAnswerSerializer(serializers.Serializer):
    balance = CustomerBalanceSerializer()
