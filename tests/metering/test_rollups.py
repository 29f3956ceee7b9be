"""The live read (rollups kept at ingestion) agrees with billing's read of the events."""

import datetime as dt
import random
import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, connections

from catalog.models import BillableMetric, Charge
from core.periods import Period
from metering.models import Event, UsageRollup
from metering.rollups import rollups_rebuild
from metering.selectors import usage_for_period
from metering.services import events_ingest
from subscriptions.services import subscription_create
from tests.factories import ChargeFactory, CustomerFactory, MetricFactory, PlanFactory, day

NOW = "2026-03-20 12:00Z"
BACKFILL = dt.timedelta(days=60)  # the events go back to Feb 1


def hybrid_usage_subscription():
    calls = MetricFactory(code="api_calls", filters={"region": ["eu", "uk"]})
    tokens = MetricFactory(
        code="tokens", name="Tokens", aggregation="sum", field_name="tokens", group_by="model"
    )
    peak = MetricFactory(code="peak_gb", name="Peak GB", aggregation="max", field_name="gb")
    seats = MetricFactory(
        code="seats",
        name="Seats",
        aggregation="sum",
        field_name="delta",
        recurring=True,
        accepts_negative=True,  # seat changes: +1 added, -1 removed
    )
    plan = PlanFactory()
    for name, metric, group in [
        ("EU calls", calls, ""),
        ("Large tokens", tokens, "large"),
        ("Other tokens", tokens, ""),
        ("Peak storage", peak, ""),
        ("Seats", seats, ""),
    ]:
        ChargeFactory(
            plan=plan,
            name=name,
            metric=metric,
            group_value=group,
            billing_timing=Charge.Timing.IN_ARREARS,
            unit_price=Decimal("0.01"),
            default_quantity=Decimal(0),
        )
    return subscription_create(
        customer=CustomerFactory(external_id="acme"),
        plan=plan,
        external_id="sub_acme",
        start_date=day("2026-02-01"),
        term_months=3,
    )


def random_events(n, seed, prefix="e"):
    rng = random.Random(seed)
    base = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    events = []
    for i in range(n):
        code = rng.choice(["api_calls", "tokens", "peak_gb", "seats"])
        props = {
            "api_calls": {"region": rng.choice(["eu", "uk", "us", 5])},
            "tokens": {"tokens": rng.randint(0, 5000), "model": rng.choice(["large", "small", 7])},
            "peak_gb": {"gb": str(rng.randint(0, 900) / 10)},
            "seats": {"delta": rng.choice([1, 1, 2, -1])},
        }[code]
        if code == "tokens" and rng.random() < 0.1:
            del props["model"]  # no group value: priced by the default charge
        stamp = base + dt.timedelta(seconds=rng.randint(0, 47 * 86400))
        events.append(
            {
                "transaction_id": f"{prefix}{i}",
                "external_subscription_id": "sub_acme",
                "code": code,
                "timestamp": stamp.isoformat(),
                "properties": props,
            }
        )
    return events


def both_reads(subscription, period):
    live = usage_for_period(subscription=subscription, period=period, live=True)
    billed = usage_for_period(subscription=subscription, period=period)
    return (
        [(u.item.name, u.quantity, u.events_count, u.amount) for u in live],
        [(u.item.name, u.quantity, u.events_count, u.amount) for u in billed],
    )


@time_machine.travel(NOW, tick=False)
def test_rollups_agree_with_the_events_for_every_rolled_up_aggregation(db):
    subscription = hybrid_usage_subscription()
    batch = random_events(3000, seed=7)
    events_ingest(raw_events=batch, max_lateness=BACKFILL)
    replays = batch[:500] + random_events(200, seed=8, prefix="f")
    events_ingest(raw_events=replays, max_lateness=BACKFILL)
    for period in [
        Period(day("2026-02-01"), day("2026-03-01")),
        Period(day("2026-03-01"), day("2026-04-01")),
    ]:
        live, billed = both_reads(subscription, period)
        assert live == billed
        assert any(quantity for _, quantity, _, _ in live)
    rows_before = sorted(
        UsageRollup.objects.values_list("metric__code", "day", "group_value", "events", "total")
    )
    rollups_rebuild(subscription=subscription)
    rows_after = sorted(
        UsageRollup.objects.values_list("metric__code", "day", "group_value", "events", "total")
    )
    assert rows_after == rows_before


@time_machine.travel(NOW, tick=False)
def test_a_metric_not_rolled_up_reads_the_events(db):
    subscription = hybrid_usage_subscription()
    BillableMetric.objects.filter(code="peak_gb").update(recurring=True)  # a recurring max
    events_ingest(raw_events=random_events(400, seed=3), max_lateness=BACKFILL)
    subscription.refresh_from_db()
    live, billed = both_reads(subscription, Period(day("2026-03-01"), day("2026-04-01")))
    assert live == billed


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_keep_rollups_exact(db):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are tested on PostgreSQL")
    with time_machine.travel(NOW, tick=False):
        subscription = hybrid_usage_subscription()
        batches = [random_events(1500, seed=11)[:1000], random_events(1500, seed=11)[500:]]
        barrier = threading.Barrier(2)
        errors = []

        def send(batch):
            try:
                barrier.wait()
                events_ingest(raw_events=batch, max_lateness=BACKFILL)
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=send, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert Event.objects.count() == 1500
        live, billed = both_reads(subscription, Period(day("2026-02-01"), day("2026-03-01")))
        assert live == billed
