"""Money is exact on both databases: summed in Python, and on SQLite (15 significant digits in a
double) a value it could not hold is refused at save instead of silently changed."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from catalog.models import Charge
from core.errors import ValidationError
from core.money import exact_sum, significant_digits
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import billing_run
from metering.models import Event
from subscriptions.models import PrepaidCredit
from subscriptions.services import prepaid_credit_grant, subscription_create
from tests.factories import ChargeFactory, CustomerFactory, PlanFactory, TokensMetricFactory, day

D = Decimal
sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="the 15-digit limit is SQLite's"
)


def usage_subscription(price="1.11"):
    plan = PlanFactory()
    ChargeFactory(
        plan=plan,
        name="Tokens",
        metric=TokensMetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D(price),
        default_quantity=D(0),
    )
    return subscription_create(
        customer=CustomerFactory(),
        plan=plan,
        external_id="sub_big",
        start_date=day("2026-01-01"),
        term_months=1,
    )


def tokens(sub, count) -> None:
    at = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    Event.objects.create(
        customer=sub.customer,
        subscription=sub,
        transaction_id="t1",
        code="tokens",
        timestamp=at,
        properties={"tokens": count},
        received_at=at,
    )


def test_significant_digits_and_exact_sum():
    assert significant_digits(D("1234567890123456.78")) == 18
    assert significant_digits(D("1200.5000")) == 5
    assert significant_digits(D("0.000002")) == 1
    assert significant_digits(D("0")) == 0
    assert exact_sum([D("0.1")] * 3) == D("0.3")  # 0.1 + 0.1 + 0.1 as floats is 0.30000000000000004
    assert exact_sum([]) == D(0)


def test_fifteen_significant_digits_round_trip_exactly(db):
    sub = usage_subscription()
    credit = prepaid_credit_grant(subscription=sub, amount=D("1234567890123.45"))  # 15 digits
    credit.refresh_from_db()
    assert credit.remaining == D("1234567890123.45")


@sqlite_only
def test_sqlite_refuses_a_16_digit_amount_and_writes_nothing(db):
    sub = usage_subscription()
    with pytest.raises(ValidationError) as error:
        prepaid_credit_grant(subscription=sub, amount=D("12345678901234.56"))
    assert error.value.message == (
        "12,345,678,901,234.56 (PrepaidCredit.granted) has 16 significant digits: SQLite stores "
        "15 exactly and would change it. Use PostgreSQL (DATABASE_URL), which holds it exactly."
    )
    assert PrepaidCredit.objects.count() == 0


@sqlite_only
def test_sqlite_refuses_an_invoice_it_cannot_hold_and_the_run_goes_on(db):
    # 11,111,111,111,111 tokens × 1.11 = 12,333,333,333,333.21: 16 significant digits
    sub = usage_subscription()
    tokens(sub, 11111111111111)
    with time_machine.travel("2026-02-01 01:00Z", tick=False):
        result = billing_run()
    assert result.invoices == []
    assert (
        "12,333,333,333,333.21 (Invoice.subtotal) has 16 significant digits"
        in result.failed["sub_big"]
    )
    assert "Use PostgreSQL" in result.failed["sub_big"]
    assert (Invoice.objects.count(), InvoiceLine.objects.count()) == (0, 0)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's numeric is exact")
def test_postgresql_bills_the_same_16_digit_amount_exactly(db):
    sub = usage_subscription()
    tokens(sub, 11111111111111)
    with time_machine.travel("2026-02-01 01:00Z", tick=False):
        (invoice,) = billing_run().invoices
    assert invoice.lines.get().amount == D("12333333333333.21")
    assert invoice.total == D("12333333333333.21")
