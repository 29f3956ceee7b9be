"""Negative usage: refused at ingestion unless the metric accepts it; a net-negative period is
billed as 0 (current usage and billing), never a failure.

The subscription starts on 2026-01-15: the period in progress on Feb 14 is Jan 15 – Feb 15.
Tokens cost 0.000002 each, API calls 0.125, the platform fee (in advance) 500.00.
"""

from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError

from catalog.models import BillableMetric, Charge
from invoicing.models import Invoice
from invoicing.services import billing_run
from metering.models import Event
from metering.rollups import rollups_rebuild
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
REFUSED = (
    "Metric 'tokens' does not accept negative values: properties.tokens is -1000000000. Send 0 "
    "or more, or ask finance to mark it as accepting negative values (refund-style corrections)."
)
BELOW_ZERO = "net usage −1,000 is below zero: billed as 0"


def plan_with_tokens(*, accepts_negative: bool):
    plan = PlanFactory()
    ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal("500"), position=0)
    for position, (metric, price) in enumerate(
        [
            (MetricFactory(), "0.125"),
            (TokensMetricFactory(accepts_negative=accepts_negative), "0.000002"),
        ],
        start=1,
    ):
        ChargeFactory(
            plan=plan,
            name=metric.name,
            metric=metric,
            billing_timing=Charge.Timing.IN_ARREARS,
            unit_price=Decimal(price),
            default_quantity=Decimal("0"),
            position=position,
        )
    return plan


@pytest.fixture
def refusing(db):
    return subscribe(
        customer=CustomerFactory(external_id="acme"), plan=plan_with_tokens(accepts_negative=False)
    )


@pytest.fixture
def accepting(db):
    return subscribe(
        customer=CustomerFactory(external_id="acme"), plan=plan_with_tokens(accepts_negative=True)
    )


def tokens_event(txn: str, tokens) -> dict:
    return {
        "transaction_id": txn,
        "external_subscription_id": "sub_acme",
        "code": "tokens",
        "properties": {"tokens": tokens},
    }


def post(api, *events) -> tuple[int, dict]:
    with time_machine.travel(NOW, tick=False):
        answer = api.post("/api/v1/events/batch", {"events": list(events)}, format="json")
    return answer.status_code, answer.json()


def current_usage(api) -> tuple[int, dict]:
    with time_machine.travel(NOW, tick=False):
        answer = api.get(
            "/api/v1/customers/acme/current_usage", {"external_subscription_id": "sub_acme"}
        )
    return answer.status_code, answer.json()


def store_directly(subscription, txn: str, tokens, on: str = "2026-02-01") -> None:
    """An event as it could be stored before metrics refused negative values."""
    at = f"{on}T12:00:00Z"
    Event.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        transaction_id=txn,
        code="tokens",
        timestamp=at,
        received_at=at,
        properties={"tokens": tokens},
    )
    rollups_rebuild(subscription=subscription)


# --- ingestion --------------------------------------------------------------------------------


def test_a_negative_value_is_refused_with_422_and_nothing_is_stored(api, refusing):
    # When the event is sent to a metric that does not accept negative values
    status, body = post(api, tokens_event("neg-1", -1_000_000_000))

    # Then it is refused, saying what to do, and nothing is stored
    assert status == 422
    assert body["error"]["details"] == [{"index": 0, "errors": [REFUSED]}]
    assert Event.objects.count() == 0


@pytest.mark.parametrize("tokens", [-1, "-0.5", "-1e3", -0.25])
def test_every_spelling_of_a_negative_number_is_refused(api, refusing, tokens):
    status, body = post(api, tokens_event("neg", tokens))

    assert status == 422
    assert "does not accept negative values" in body["error"]["details"][0]["errors"][0]
    assert Event.objects.count() == 0


def test_one_negative_event_rejects_the_whole_batch(api, refusing):
    status, body = post(api, tokens_event("ok", 500), tokens_event("neg", -2))

    assert status == 422
    assert [d["index"] for d in body["error"]["details"]] == [1]
    assert Event.objects.count() == 0


@pytest.mark.parametrize("tokens", [0, "0", "-0", 0.0])
def test_zero_in_any_spelling_is_not_negative(api, refusing, tokens):
    status, _ = post(api, tokens_event("zero", tokens))

    assert status == 200
    assert Event.objects.count() == 1


def test_a_metric_that_accepts_negative_values_stores_them(api, accepting):
    status, body = post(api, tokens_event("use", 1000), tokens_event("refund", -2000))

    assert status == 200
    assert body == {"received": 2, "created": 2, "duplicates": 0}
    assert sorted(Event.objects.values_list("properties__tokens", flat=True)) == [-2000, 1000]


def test_a_weighted_sum_accepts_negative_changes_without_the_flag(db):
    seats = MetricFactory(
        code="seats",
        aggregation=BillableMetric.Aggregation.WEIGHTED_SUM,
        field_name="seats",
        recurring=True,
    )

    assert seats.accepts_negative is False
    assert seats.takes_negative_values is True


@pytest.mark.parametrize(
    "aggregation", [BillableMetric.Aggregation.COUNT, BillableMetric.Aggregation.UNIQUE_COUNT]
)
def test_a_count_cannot_be_marked_as_accepting_negative_values(db, aggregation):
    metric = BillableMetric(
        code="c",
        name="C",
        aggregation=aggregation,
        field_name="" if aggregation == "count" else "user",
        accepts_negative=True,
    )

    with pytest.raises(ValidationError) as caught:
        metric.full_clean()
    assert caught.value.message_dict == {
        "accepts_negative": ["A count is never below zero: leave 'accepts negative values' off."]
    }


# --- current usage ----------------------------------------------------------------------------


def test_a_net_negative_period_shows_zero_and_explains_why(api, accepting):
    # Given 1,000 tokens used and a correction of −2,000: net −1,000
    assert post(api, tokens_event("use", 1000), tokens_event("refund", -2000))[0] == 200

    # When the customer reads the period's usage
    status, body = current_usage(api)

    # Then it answers, the tokens charge costs exactly 0 and says why
    assert status == 200
    usage = body["customer_usage"]
    assert (usage["amount"], usage["amount_cents"]) == ("0.00", 0)
    tokens = usage["charges_usage"][1]
    assert tokens["billable_metric"]["code"] == "tokens"
    assert (tokens["units"], tokens["events_count"]) == ("-1000", 2)
    assert (tokens["amount"], tokens["exact_amount"], tokens["amount_cents"]) == ("0.00", "0", 0)
    assert [step["description"] for step in tokens["explanation"]] == [
        BELOW_ZERO,
        "0 × 0.000002",
    ]


def test_a_correction_that_leaves_usage_positive_bills_the_net(api, accepting):
    # 5,000,000 − 1,500,000 = 3,500,000 tokens × 0.000002 = 7.00
    post(api, tokens_event("use", 5_000_000), tokens_event("refund", -1_500_000))

    status, body = current_usage(api)

    assert status == 200
    tokens = body["customer_usage"]["charges_usage"][1]
    assert (tokens["units"], tokens["amount"]) == ("3500000", "7.00")
    assert body["customer_usage"]["amount"] == "7.00"


def test_a_negative_event_stored_before_the_rule_does_not_break_current_usage(api, refusing):
    store_directly(refusing, "old-neg", -1_000_000_000)

    status, body = current_usage(api)

    assert status == 200
    tokens = body["customer_usage"]["charges_usage"][1]
    assert (tokens["units"], tokens["amount"]) == ("-1000000000", "0.00")
    assert tokens["explanation"][0]["description"] == (
        "net usage −1,000,000,000 is below zero: billed as 0"
    )


# --- billing ----------------------------------------------------------------------------------


def bill_period_end():
    with time_machine.travel("2026-02-15 01:00Z", tick=False):
        return billing_run()


def lines_of(invoice) -> list[tuple]:
    return [
        (line.kind, line.description, line.quantity, line.amount) for line in invoice.lines.all()
    ]


def test_billing_a_net_negative_period_bills_the_fees_and_a_zero_usage_line(api, accepting):
    # Given a net −1,000 tokens in the period Jan 15 – Feb 15
    post(api, tokens_event("use", 1000), tokens_event("refund", -2000))

    # When billing runs at the end of the period
    result = bill_period_end()

    # Then nothing fails and the customer gets the invoice: the platform fee for the next period,
    # usage at 0.00 (the tokens line keeps the net quantity and says why it is 0)
    assert result.failed == {}
    invoice = Invoice.objects.get(subscription=accepting, billing_date=day("2026-02-15"))
    assert lines_of(invoice) == [
        ("usage", "API calls", Decimal("0"), Decimal("0.00")),
        ("usage", "Tokens", Decimal("-1000"), Decimal("0.00")),
        ("fee", "Platform fee", Decimal("1"), Decimal("500.00")),
    ]
    assert invoice.lines.get(description="Tokens").explanation[0]["description"] == BELOW_ZERO
    assert (invoice.subtotal, invoice.total) == (Decimal("500.00"), Decimal("500.00"))
    assert invoice.status == Invoice.Status.FINALIZED


def test_a_negative_event_stored_before_the_rule_does_not_fail_billing(refusing):
    # Given 1,000,000,000 tokens refunded by an event stored before metrics refused negatives,
    # and 250,000 tokens used after it (net −999,750,000)
    store_directly(refusing, "old-neg", -1_000_000_000)
    store_directly(refusing, "use", 250_000, on="2026-02-10")

    # When billing runs at the end of the period
    result = bill_period_end()

    # Then the subscription is billed (500.00 platform fee), its usage at 0.00
    assert result.failed == {}
    invoice = Invoice.objects.get(subscription=refusing, billing_date=day("2026-02-15"))
    assert lines_of(invoice) == [
        ("usage", "API calls", Decimal("0"), Decimal("0.00")),
        ("usage", "Tokens", Decimal("-999750000"), Decimal("0.00")),
        ("fee", "Platform fee", Decimal("1"), Decimal("500.00")),
    ]
    assert invoice.total == Decimal("500.00")


def test_a_negative_amount_under_a_percentage_charge_does_not_fail_billing(db):
    # Given 2 % of payment amounts, and a −300.00 amount stored before the rule beside 1,000.00
    plan = PlanFactory()
    ChargeFactory(
        plan=plan,
        name="Payments",
        metric=MetricFactory(
            code="payments", aggregation=BillableMetric.Aggregation.SUM, field_name="tokens"
        ),
        billing_timing=Charge.Timing.IN_ARREARS,
        charge_model=Charge.Model.PERCENTAGE,
        percentage_rate=Decimal("2"),
        default_quantity=Decimal("0"),
    )
    subscription = subscribe(customer=CustomerFactory(external_id="acme"), plan=plan)
    for txn, amount, on in [("refund", "-300.00", "2026-02-01"), ("sale", "1000", "2026-02-02")]:
        Event.objects.create(
            customer=subscription.customer,
            subscription=subscription,
            transaction_id=txn,
            code="payments",
            timestamp=f"{on}T12:00:00Z",
            received_at=f"{on}T12:00:00Z",
            properties={"tokens": amount},
        )

    # When billing runs at the end of the period
    result = bill_period_end()

    # Then 2 % of 1,000.00 = 20.00; the amount below zero is rated as 0
    assert result.failed == {}
    invoice = Invoice.objects.get(subscription=subscription, billing_date=day("2026-02-15"))
    assert lines_of(invoice) == [("usage", "Payments", Decimal("700.00"), Decimal("20.00"))]
    assert invoice.lines.get().explanation[0]["description"] == (
        "2 events: 2 % of 1,000 (1 below zero rated as 0)"
    )
