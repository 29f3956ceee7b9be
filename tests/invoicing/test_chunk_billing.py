"""The billing run by chunks: set-based reads (a chunk costs the same queries for 5 or 20
subscriptions), usage in one aggregate equal to the per-metric reads, numbers in a stable order,
and one code for the run, shadow billing and the upcoming invoice."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.models import BillableMetric, Charge, ChargeTier
from core.periods import Period
from invoicing.models import Invoice
from invoicing.run import bill_chunk, billing_plan
from invoicing.selectors import upcoming_invoice
from invoicing.services import billing_run
from invoicing.shadow import shadow_billing
from metering.models import Event
from metering.selectors import batch_quantities, metric_quantity
from subscriptions.services import prepaid_credit_grant
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    TokensMetricFactory,
    day,
    hybrid_plan,
    subscribe,
)

D = Decimal


def usage(subscription, calls: int, tokens: int = 0, on: str = "2026-01-10") -> None:
    at = dt.datetime.combine(day(on), dt.time(12), tzinfo=dt.UTC)
    rows = [("api_calls", {}) for _ in range(calls)]
    rows += [("tokens", {"tokens": tokens})] if tokens else []
    Event.objects.bulk_create(
        Event(
            customer=subscription.customer,
            subscription=subscription,
            transaction_id=f"{subscription.external_id}-{on}-{n}",
            code=code,
            timestamp=at + dt.timedelta(seconds=n),
            received_at=at,
            properties=properties,
        )
        for n, (code, properties) in enumerate(rows)
    )


def graduated_plan():
    """Platform fee and seats in advance, graduated calls and graduated tokens in arrears."""
    plan = hybrid_plan(call_price="0.002")
    tokens = ChargeFactory(
        plan=plan,
        name="Tokens",
        metric=TokensMetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        charge_model="graduated",
        default_quantity=D("0"),
        position=3,
    )
    for start, up_to, price in [(0, 1000, "0.01"), (1000, None, "0.005")]:
        ChargeTier.objects.create(charge=tokens, from_units=start, up_to=up_to, unit_price=D(price))
    return plan


def customers_subscribed(count: int, plan, start="2026-01-01"):
    return [
        subscribe(
            customer=CustomerFactory(external_id=f"co-{n}", name=f"Co {n}"),
            plan=plan,
            external_id=f"sub_{n:03d}",
            start=start,
            term_months=12,
        )
        for n in range(count)
    ]


def lines(invoice_lines) -> list[tuple]:
    return [
        (line.kind, line.description, line.quantity, line.amount, line.explanation)
        for line in invoice_lines
    ]


def test_a_chunk_reads_by_sets_the_same_queries_for_5_or_20_subscriptions(db):
    # Given 25 hybrid subscriptions with usage in January, their first invoice out
    plan = graduated_plan()
    subscriptions = customers_subscribed(25, plan)
    for n, subscription in enumerate(subscriptions):
        usage(subscription, calls=n + 1, tokens=100 * n + 7)
    billing_run(today=day("2026-01-01"))

    # When the Feb 1 billing bills a chunk of 5, then a chunk of 20
    ids = [s.pk for s in subscriptions]
    counts = []
    for chunk in (ids[:5], ids[5:]):
        with CaptureQueriesContext(connection) as queries:
            result = bill_chunk(chunk, day("2026-02-01"))
        assert len(result.invoices) == len(chunk) and not result.failed
        counts.append(len(queries.captured_queries))

    # Then a chunk costs the same number of queries whatever its size (no query per subscription)
    assert counts[0] == counts[1], counts
    # …and every usage line holds the events of its subscription
    for n, subscription in enumerate(subscriptions):
        invoice = Invoice.objects.get(subscription=subscription, billing_date=day("2026-02-01"))
        quantities = {line.description: line.quantity for line in invoice.lines.all()}
        assert quantities["API calls"] == n + 1
        assert quantities["Tokens"] == 100 * n + 7


def test_invoice_numbers_are_one_gapless_block_in_subscription_then_date_order(db, settings):
    # Given three subscriptions whose run bills two dates each (it missed Jan 1)
    settings.BILLING_CHUNK_SIZE = 2  # two chunks
    subscriptions = customers_subscribed(3, hybrid_plan())
    for subscription in subscriptions:
        usage(subscription, calls=10)

    # When the run on Feb 1 bills them
    made = billing_run(today=day("2026-02-01")).invoices

    # Then the numbers follow subscription, then date, with no gap across the chunks
    ordered = sorted(made, key=lambda i: (i.subscription_id, i.billing_date))
    assert [i.number for i in ordered] == [f"INV-{n:06d}" for n in range(1, 7)]
    assert len(billing_plan(day("2026-02-01"))) == 2
    # …and re-running the plan bills nothing twice
    assert billing_run(today=day("2026-02-01")).invoices == []
    assert Invoice.objects.count() == 6


def test_the_run_shadow_billing_and_the_upcoming_invoice_are_the_same_invoices(db):
    # Given a chunk of different contracts: graduated usage, a prepaid money credit, a second
    # currency's worth of tax, usage that arrived late for December
    plan = graduated_plan()
    subscriptions = customers_subscribed(4, plan, start="2025-12-01")
    billing_run(today=day("2025-12-01"))
    for n, subscription in enumerate(subscriptions):
        usage(subscription, calls=100 * n, tokens=400 * n + 3, on="2025-12-20")
    billing_run(today=day("2026-01-01"))
    usage(subscriptions[0], calls=5, on="2025-12-30")  # late for December
    prepaid_credit_grant(subscription=subscriptions[1], amount=D("3.00"))
    subscriptions[2].customer.tax_rate = D("8.25")
    subscriptions[2].customer.save()
    for n, subscription in enumerate(subscriptions):
        usage(subscription, calls=37 * n + 1, tokens=900 * n + 11, on="2026-01-15")

    # When the customer looks at the upcoming invoice on Jan 31, finance runs the shadow as of
    # Feb 1, then the real run bills Feb 1
    with time_machine.travel("2026-01-31 12:00Z", tick=False):
        upcoming = {s.pk: upcoming_invoice(subscription=s) for s in subscriptions}
    shadow = {
        b.invoice.subscription_id: b for b in shadow_billing(as_of=day("2026-02-01")).invoices
    }
    made = {i.subscription_id: i for i in billing_run(today=day("2026-02-01")).invoices}

    # Then the three are the same invoice, line for line
    assert set(made) == set(shadow) == set(upcoming)
    for pk, invoice in made.items():
        saved = lines(invoice.lines.order_by("position"))
        assert lines(shadow[pk].lines) == saved
        assert lines(upcoming[pk].lines) == saved
        assert upcoming[pk].total == shadow[pk].invoice.total == invoice.total
    assert any(line[0] == "adjustment" for line in lines(made[subscriptions[0].pk].lines.all()))
    assert any(line[0] == "credit" for line in lines(made[subscriptions[1].pk].lines.all()))


def test_one_subscription_that_cannot_be_built_does_not_stop_its_chunk(db):
    # Given a chunk where one subscription's snapshot holds terms the rating engine refuses
    subscriptions = customers_subscribed(3, hybrid_plan())
    broken = subscriptions[1].items.get(name="Seats")
    broken.pricing = {"model": "no-such-model"}
    broken.save()

    # When the chunk is billed
    result = bill_chunk([s.pk for s in subscriptions], day("2026-01-01"))

    # Then the others are billed and the broken one is reported, with nothing of it written
    assert sorted(i.subscription.external_id for i in result.invoices) == ["sub_000", "sub_002"]
    assert list(result.failed) == ["sub_001"]
    assert not Invoice.objects.filter(subscription=subscriptions[1]).exists()


AGGREGATIONS = [BillableMetric.Aggregation.COUNT, BillableMetric.Aggregation.SUM, "max"]


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(
        st.tuples(
            st.integers(0, 2),  # subscription
            st.integers(0, 2),  # metric
            st.integers(0, 40 * 24 * 60),  # minutes after Jan 1
            st.decimals(min_value=-1000, max_value=10**6, places=3, allow_nan=False),
        ),
        max_size=40,
    ),
    windows=st.lists(st.tuples(st.integers(0, 39), st.integers(1, 40)), min_size=1, max_size=4),
)
def test_the_batched_usage_read_equals_the_per_metric_read(events, windows):
    with transaction.atomic():  # each example on its own
        metrics = [
            MetricFactory(code="calls", aggregation=BillableMetric.Aggregation.COUNT),
            MetricFactory(code="bytes", aggregation=BillableMetric.Aggregation.SUM, field_name="v"),
            MetricFactory(code="peak", aggregation=BillableMetric.Aggregation.MAX, field_name="v"),
        ]
        subscriptions = customers_subscribed(3, hybrid_plan())
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        Event.objects.bulk_create(
            Event(
                customer=subscriptions[s].customer,
                subscription=subscriptions[s],
                transaction_id=f"t{n}",
                code=metrics[m].code,
                timestamp=start + dt.timedelta(minutes=minutes),
                received_at=start,
                properties={"v": str(value)} if n % 2 else {"v": float(value)},
            )
            for n, (s, m, minutes, value) in enumerate(events)
        )
        scopes, expected = [], {}
        for subscription in subscriptions:
            for metric in metrics:
                for first, length in windows:
                    period = Period(
                        day("2026-01-01") + dt.timedelta(days=first),
                        day("2026-01-01") + dt.timedelta(days=min(first + length, 41)),
                    )
                    scope = {"subscription": subscription, "metric": metric, "period": period}
                    expected[len(scopes)] = metric_quantity(**scope)
                    scopes.append((len(scopes), scope))
        assert batch_quantities(scopes) == expected
        transaction.set_rollback(True)
