"""Usage aggregation (metering.selectors) and GET /api/v1/customers/<id>/current_usage."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from catalog.models import Charge
from core.periods import Period
from metering.models import Event
from metering.rollups import rollups_rebuild
from metering.selectors import metric_quantity
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    TokensMetricFactory,
    day,
    subscribe,
)

NOW = "2026-02-14 12:00Z"
PERIOD = Period(day("2026-01-15"), day("2026-02-15"))  # the period in progress at NOW


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def usage_plan(*, call_price="0.125", token_price="0.000002"):
    """A platform fee in advance, then api_calls (count) and tokens (sum) in arrears."""
    plan = PlanFactory()
    ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal("500"), position=0)
    ChargeFactory(
        plan=plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal(call_price),
        unit_name="call",
        default_quantity=Decimal("0"),
        position=1,
    )
    ChargeFactory(
        plan=plan,
        name="Tokens",
        metric=TokensMetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal(token_price),
        unit_name="token",
        default_quantity=Decimal("0"),
        position=2,
    )
    return plan


@pytest.fixture
def subscription(db):
    return subscribe(customer=CustomerFactory(external_id="acme"), plan=usage_plan())


def record(subscription, txn, at, code="api_calls", **properties) -> Event:
    """Store an event directly (any timestamp), then roll it up as ingestion would."""
    event = Event.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        transaction_id=txn,
        code=code,
        timestamp=at,
        properties=properties,
        received_at=at,
    )
    rollups_rebuild(subscription=subscription)
    return event


def get_usage(api, customer="acme", subscription="sub_acme"):
    return api.get(
        f"/api/v1/customers/{customer}/current_usage",
        {"external_subscription_id": subscription},
    )


# --- metric_quantity --------------------------------------------------------------------------


def test_count_includes_the_period_start_and_excludes_its_end(
    subscription, django_assert_num_queries
):
    # Given events on both sides of each boundary, and noise from another metric and subscription
    other = subscribe(customer=CustomerFactory(), plan=subscription.plan, external_id="sub_other")
    record(subscription, "before", utc(2026, 1, 14, 23, 59, 59, 999999))
    record(subscription, "at-start", utc(2026, 1, 15))
    record(subscription, "last-instant", utc(2026, 2, 14, 23, 59, 59, 999999))
    record(subscription, "at-end", utc(2026, 2, 15))
    record(subscription, "tokens", utc(2026, 2, 1), code="tokens", tokens=5)
    record(other, "other-sub", utc(2026, 2, 1))

    calls = MetricFactory()

    # When (one query: aggregation runs in the database)
    with django_assert_num_queries(1):
        quantity, count = metric_quantity(subscription=subscription, metric=calls, period=PERIOD)

    # Then
    assert (quantity, count) == (Decimal(2), 2)


def test_sum_includes_the_period_start_and_excludes_its_end(subscription):
    # Given token counts sent as an integer, a numeric string and a float
    tokens = TokensMetricFactory()
    record(subscription, "before", utc(2026, 1, 14, 23, 59, 59), code="tokens", tokens=7000)
    record(subscription, "at-start", utc(2026, 1, 15), code="tokens", tokens=100)
    record(subscription, "middle", utc(2026, 2, 1, 8), code="tokens", tokens="250.5")
    record(subscription, "last", utc(2026, 2, 14, 23, 59, 59), code="tokens", tokens=0.25)
    record(subscription, "at-end", utc(2026, 2, 15), code="tokens", tokens=1000)
    record(subscription, "a-call", utc(2026, 2, 1), tokens=99)

    # When
    quantity, count = metric_quantity(subscription=subscription, metric=tokens, period=PERIOD)

    # Then 100 + 250.5 + 0.25
    assert (quantity, count) == (Decimal("350.75"), 3)


def test_no_events_is_zero(subscription):
    assert metric_quantity(
        subscription=subscription, metric=TokensMetricFactory(), period=PERIOD
    ) == (Decimal(0), 0)
    assert metric_quantity(subscription=subscription, metric=MetricFactory(), period=PERIOD) == (
        Decimal(0),
        0,
    )


# --- current_usage ----------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_current_usage_answers_in_lagos_customer_usage_shape(api, subscription):
    # Given 7 calls (7 × 0.125 = 0.875 → 0.88) and 1,250,001 tokens (× 0.000002 = 2.500002 → 2.50)
    # in the period, and events outside it that must not count
    for n in range(7):
        record(subscription, f"c{n}", utc(2026, 1, 15 + n, 10))
    record(subscription, "k1", utc(2026, 2, 3), code="tokens", tokens=1_000_000)
    record(subscription, "k2", utc(2026, 2, 14, 11), code="tokens", tokens=250_001)
    record(subscription, "old", utc(2026, 1, 14, 23), code="tokens", tokens=5)
    calls, tokens = subscription.items.filter(metric__isnull=False).order_by("position")

    # When
    answer = get_usage(api)

    # Then
    assert answer.status_code == 200, answer.content
    usage = answer.json()["customer_usage"]
    charges = usage.pop("charges_usage")
    assert usage == {
        "from_datetime": "2026-01-15T00:00:00Z",
        "to_datetime": "2026-02-15T00:00:00Z",
        "issuing_date": "2026-02-15",
        "currency": "USD",
        "amount_cents": 338,  # 0.88 + 2.50
        "taxes_amount_cents": 0,
        "total_amount_cents": 338,
        "amount": "3.38",
        "currency_minor_units": 2,
    }
    assert [type(usage[k]) for k in ("amount_cents", "taxes_amount_cents")] == [int, int]

    assert len(charges) == 2
    for charge in charges:
        # the decimal strings are compared by value below; the rest must match exactly
        assert [type(charge[k]) for k in ("units", "total_aggregated_units", "exact_amount")] == [
            str,
            str,
            str,
        ]
        assert type(charge["events_count"]) is int and type(charge["amount_cents"]) is int
    assert [
        (Decimal(c.pop("units")), Decimal(c.pop("total_aggregated_units"))) for c in charges
    ] == [(Decimal(7), Decimal(7)), (Decimal(1_250_001), Decimal(1_250_001))]
    assert [Decimal(c.pop("exact_amount")) for c in charges] == [
        Decimal("0.875"),
        Decimal("2.500002"),
    ]
    assert [len(c.pop("explanation")) for c in charges] == [1, 1]
    assert charges == [
        {
            "events_count": 7,
            "amount_cents": 88,
            "amount_currency": "USD",
            "amount": "0.88",
            "charge": {
                "lago_id": str(calls.pk),
                "charge_model": "standard",
                "invoice_display_name": "API calls",
            },
            "billable_metric": {
                "lago_id": str(calls.metric_id),
                "name": "API calls",
                "code": "api_calls",
                "aggregation_type": "count_agg",
            },
            "filters": [],
            "grouped_usage": [],
        },
        {
            "events_count": 2,
            "amount_cents": 250,
            "amount_currency": "USD",
            "amount": "2.50",
            "charge": {
                "lago_id": str(tokens.pk),
                "charge_model": "standard",
                "invoice_display_name": "Tokens",
            },
            "billable_metric": {
                "lago_id": str(tokens.metric_id),
                "name": "Tokens",
                "code": "tokens",
                "aggregation_type": "sum_agg",
            },
            "filters": [],
            "grouped_usage": [],
        },
    ]


@time_machine.travel(NOW, tick=False)
def test_current_usage_without_events_is_zero(api, subscription):
    answer = get_usage(api)

    assert answer.status_code == 200
    usage = answer.json()["customer_usage"]
    assert (usage["amount_cents"], usage["total_amount_cents"], usage["amount"]) == (0, 0, "0.00")
    assert [
        (c["events_count"], c["amount_cents"], c["amount"]) for c in usage["charges_usage"]
    ] == [
        (0, 0, "0.00"),
        (0, 0, "0.00"),
    ]


@time_machine.travel(NOW, tick=False)
def test_current_usage_of_a_subscription_without_usage_charges_is_empty(api, db):
    # Given a plan of fixed fees only
    plan = PlanFactory()
    ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal("500"))
    subscribe(customer=CustomerFactory(external_id="acme"), plan=plan)

    # When
    answer = get_usage(api)

    # Then nothing is metered: zero, not an error
    assert answer.status_code == 200, answer.content
    usage = answer.json()["customer_usage"]
    assert (usage["amount_cents"], usage["total_amount_cents"], usage["charges_usage"]) == (
        0,
        0,
        [],
    )


@time_machine.travel(NOW, tick=False)
def test_an_acknowledged_event_is_in_the_very_next_current_usage(api, subscription):
    # Given 7 calls already counted (0.88)
    for n in range(7):
        record(subscription, f"c{n}", utc(2026, 2, 1, n))
    before = get_usage(api).json()["customer_usage"]["charges_usage"][0]
    assert (before["events_count"], before["amount_cents"]) == (7, 88)

    # When one more call is acknowledged by the API
    sent = api.post(
        "/api/v1/events",
        {
            "event": {
                "transaction_id": "c7",
                "external_subscription_id": "sub_acme",
                "code": "api_calls",
            }
        },
        format="json",
    )
    assert sent.status_code == 200

    # Then the next answer counts it: 8 × 0.125 = 1.00
    after = get_usage(api).json()["customer_usage"]
    assert (
        after["charges_usage"][0]["events_count"],
        after["charges_usage"][0]["amount_cents"],
    ) == (
        8,
        100,
    )
    assert after["amount_cents"] == 100


@pytest.mark.parametrize(
    ("customer", "subscription_id", "message"),
    [
        ("nobody", "sub_acme", "No customer has external id 'nobody'."),
        ("acme", "sub_nope", "Customer 'acme' has no subscription 'sub_nope'."),
        ("globex", "sub_acme", "Customer 'globex' has no subscription 'sub_acme'."),
    ],
)
@time_machine.travel(NOW, tick=False)
def test_current_usage_of_an_unknown_customer_or_subscription_is_404(
    api, subscription, customer, subscription_id, message
):
    # Given globex exists but sub_acme is not theirs
    CustomerFactory(external_id="globex")

    answer = get_usage(api, customer, subscription_id)

    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "not_found", "message": message, "details": None}}


@time_machine.travel("2026-01-10 12:00Z", tick=False)
def test_current_usage_before_the_subscription_starts_is_404(api, subscription):
    answer = get_usage(api)

    assert answer.status_code == 404
    assert answer.json()["error"] == {
        "code": "not_found",
        "message": "Subscription 'sub_acme' has no billing period in progress today.",
        "details": None,
    }


@time_machine.travel("2026-02-15 00:00Z", tick=False)
def test_current_usage_switches_period_at_midnight_utc_on_the_boundary(api, subscription):
    # Given a call in the first period, and one at the first instant of the second
    record(subscription, "old", utc(2026, 2, 14, 23, 59, 59))
    record(subscription, "new", utc(2026, 2, 15))

    usage = get_usage(api).json()["customer_usage"]

    assert (usage["from_datetime"], usage["to_datetime"]) == (
        "2026-02-15T00:00:00Z",
        "2026-03-15T00:00:00Z",
    )
    assert usage["charges_usage"][0]["events_count"] == 1
