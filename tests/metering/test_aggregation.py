"""Aggregation in SQL (metering.selectors.metric_quantity, event_amounts) and the ingestion checks
each aggregation needs. Run on SQLite and on PostgreSQL (DATABASE_URL): the same exact values.

Every expected value is computed by hand in the comments. The subscription starts on 2026-04-01;
April and June have 30 days (2,592,000 seconds), May has 31.
"""

import datetime as dt
from decimal import Decimal
from itertools import count

import pytest
import time_machine

from catalog.models import BillableMetric
from core.errors import ValidationError
from core.periods import Period
from metering.models import Event
from metering.selectors import event_amounts, metric_quantity
from metering.services import events_ingest
from tests.factories import CustomerFactory, MetricFactory, day, hybrid_plan, subscribe

Agg = BillableMetric.Aggregation
APRIL = Period(day("2026-04-01"), day("2026-05-01"))
MAY = Period(day("2026-05-01"), day("2026-06-01"))
JUNE = Period(day("2026-06-01"), day("2026-07-01"))
_txn = count()


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.fixture
def plan(db):
    return hybrid_plan()


@pytest.fixture
def sub(plan):
    return subscribe(
        customer=CustomerFactory(external_id="acme"),
        plan=plan,
        external_id="sub_acme",
        start="2026-04-01",
        term_months=3,
    )


@pytest.fixture
def other_sub(plan):
    return subscribe(
        customer=CustomerFactory(external_id="globex"),
        plan=plan,
        external_id="sub_globex",
        start="2026-04-01",
        term_months=3,
    )


def metric(aggregation, *, code=None, field="value", **fields) -> BillableMetric:
    return MetricFactory(
        code=code or f"m_{aggregation}",
        name=f"Metric {aggregation}",
        aggregation=aggregation,
        field_name="" if aggregation == Agg.COUNT else field,
        **fields,
    )


def record(subscription, code, *events) -> None:
    """events: (timestamp, properties) pairs, stored in this order (ids ascending)."""
    Event.objects.bulk_create(
        Event(
            customer=subscription.customer,
            subscription=subscription,
            transaction_id=f"t{next(_txn)}",
            code=code,
            timestamp=at,
            properties=properties,
            received_at=at,
        )
        for at, properties in events
    )


def quantity(subscription, m, period, **kwargs) -> tuple[Decimal, int]:
    return metric_quantity(subscription=subscription, metric=m, period=period, **kwargs)


# --- count ------------------------------------------------------------------------------------


def test_count_includes_the_period_start_and_excludes_its_end(
    sub, other_sub, django_assert_num_queries
):
    calls = metric(Agg.COUNT)
    record(
        sub,
        "m_count",
        (utc(2026, 3, 31, 23, 59, 59, 999999), {}),  # before the start: out
        (utc(2026, 4, 1), {}),  # exactly at the start: in
        (utc(2026, 4, 15, 12), {}),
        (utc(2026, 4, 30, 23, 59, 59, 999999), {}),  # last instant: in
        (utc(2026, 5, 1), {}),  # exactly at the end: out
    )
    record(sub, "other_code", (utc(2026, 4, 2), {}))
    record(other_sub, "m_count", (utc(2026, 4, 2), {}))

    with django_assert_num_queries(1):
        assert quantity(sub, calls, APRIL) == (Decimal(3), 3)


def test_recurring_count_runs_from_the_subscription_start(sub):
    calls = metric(Agg.COUNT, recurring=True)
    record(
        sub,
        "m_count",
        (utc(2026, 3, 31, 12), {}),  # before the subscription started: never counted
        (utc(2026, 4, 3), {}),
        (utc(2026, 4, 30), {}),
        (utc(2026, 5, 20), {}),
        (utc(2026, 6, 1), {}),  # after May
    )

    # April: 2; May: 2 carried + 1 = 3, of which 1 event in May
    assert quantity(sub, calls, APRIL) == (Decimal(2), 2)
    assert quantity(sub, calls, MAY) == (Decimal(3), 1)


# --- sum --------------------------------------------------------------------------------------


def test_sum_of_numbers_and_numeric_strings_within_the_period(sub, django_assert_num_queries):
    tokens = metric(Agg.SUM)
    record(
        sub,
        "m_sum",
        (utc(2026, 3, 31, 23, 59, 59), {"value": 7000}),  # out
        (utc(2026, 4, 1), {"value": 100}),  # at the start: in
        (utc(2026, 4, 10, 8), {"value": "250.5"}),
        (utc(2026, 4, 20), {"value": 0.25}),
        (utc(2026, 4, 21), {"value": "-10"}),  # a correction
        (utc(2026, 5, 1), {"value": 1000}),  # at the end: out
    )

    # 100 + 250.5 + 0.25 − 10
    with django_assert_num_queries(1):
        assert quantity(sub, tokens, APRIL) == (Decimal("340.75"), 4)


def test_a_sum_beyond_64_bit_integers_is_not_an_error(sub):
    # SQLite's SUM raises "integer overflow" past 2^63 ≈ 9.2 × 10^18
    record(
        sub,
        "m_sum",
        (utc(2026, 4, 2), {"value": 5 * 10**18}),
        (utc(2026, 4, 3), {"value": 5 * 10**18}),
    )

    assert quantity(sub, metric(Agg.SUM), APRIL) == (Decimal(10**19), 2)


def test_recurring_sum_carries_earlier_periods(sub):
    storage = metric(Agg.SUM, recurring=True)
    record(
        sub,
        "m_sum",
        (utc(2026, 4, 5), {"value": 10}),
        (utc(2026, 4, 30, 23), {"value": "2.5"}),
        (utc(2026, 5, 15), {"value": 5}),
        (utc(2026, 6, 1), {"value": 1000}),  # at May's end: out
    )

    assert quantity(sub, storage, APRIL) == (Decimal("12.5"), 2)
    assert quantity(sub, storage, MAY) == (Decimal("17.5"), 1)  # 12.5 carried + 5
    assert quantity(sub, storage, JUNE) == (Decimal("1017.5"), 1)


# --- filters ----------------------------------------------------------------------------------


def test_filters_keep_events_whose_every_property_has_an_allowed_value(sub):
    # Allowed values are given as strings and as numbers; events send either: compared as text
    tokens = metric(Agg.SUM, filters={"region": ["eu", "us"], "tier": [1, "2"]})
    record(
        sub,
        "m_sum",
        (utc(2026, 4, 2), {"value": 1, "region": "eu", "tier": 1}),  # in
        (utc(2026, 4, 3), {"value": 2, "region": "us", "tier": "1"}),  # in: "1" is 1
        (utc(2026, 4, 4), {"value": 4, "region": "eu", "tier": 2}),  # in: 2 is "2"
        (utc(2026, 4, 5), {"value": 8, "region": "eu", "tier": 3}),  # tier not allowed
        (utc(2026, 4, 6), {"value": 16, "region": "apac", "tier": 1}),  # region not allowed
        (utc(2026, 4, 7), {"value": 32, "region": "eu"}),  # no tier
        (utc(2026, 4, 8), {"value": 64, "region": "EU", "tier": 1}),  # case matters
        (utc(2026, 4, 9), {"value": 128, "tier": 1}),  # no region
    )

    assert quantity(sub, tokens, APRIL) == (Decimal(7), 3)  # 1 + 2 + 4


def test_filters_apply_to_counts_and_to_a_number_allowed_as_a_string(sub):
    calls = metric(Agg.COUNT, filters={"status": ["200"]})
    record(
        sub,
        "m_count",
        (utc(2026, 4, 2), {"status": 200}),
        (utc(2026, 4, 3), {"status": "200"}),
        (utc(2026, 4, 4), {"status": 500}),
        (utc(2026, 4, 5), {}),
    )

    assert quantity(sub, calls, APRIL) == (Decimal(2), 2)


# --- grouping ---------------------------------------------------------------------------------


@pytest.fixture
def grouped(sub):
    """Tokens grouped by model (large 10 + 20, small 5, 7 sent as a number 1 and as a string 2,
    one event without a model 100), plus one large event outside April."""
    tokens = metric(Agg.SUM, group_by="model")
    record(
        sub,
        "m_sum",
        (utc(2026, 4, 2), {"value": 10, "model": "large"}),
        (utc(2026, 4, 3), {"value": 20, "model": "large"}),
        (utc(2026, 4, 4), {"value": 5, "model": "small"}),
        (utc(2026, 4, 5), {"value": 1, "model": 7}),
        (utc(2026, 4, 6), {"value": 2, "model": "7"}),
        (utc(2026, 4, 7), {"value": 100}),
        (utc(2026, 5, 1), {"value": 1000, "model": "large"}),
    )
    return tokens


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({}, (Decimal(138), 6)),  # every event: 10 + 20 + 5 + 1 + 2 + 100
        ({"group_value": "large"}, (Decimal(30), 2)),
        ({"group_value": "small"}, (Decimal(5), 1)),
        ({"group_value": "7"}, (Decimal(3), 2)),  # 7 and "7" are one value
        ({"group_value": "medium"}, (Decimal(0), 0)),
        # the default charge: what the other charges do not price, events without a model too
        ({"exclude_groups": ["large", "small"]}, (Decimal(103), 3)),
        ({"exclude_groups": ("large",)}, (Decimal(108), 4)),
        ({"exclude_groups": ["medium"]}, (Decimal(138), 6)),
    ],
)
def test_group_value_and_exclude_groups(sub, grouped, selection, expected):
    assert quantity(sub, grouped, APRIL, **selection) == expected


def test_grouping_combines_with_filters(sub):
    calls = metric(Agg.COUNT, filters={"region": ["eu"]}, group_by="model")
    record(
        sub,
        "m_count",
        (utc(2026, 4, 2), {"region": "eu", "model": "large"}),
        (utc(2026, 4, 3), {"region": "us", "model": "large"}),
        (utc(2026, 4, 4), {"region": "eu", "model": "small"}),
        (utc(2026, 4, 5), {"region": "eu"}),
    )

    assert quantity(sub, calls, APRIL, group_value="large") == (Decimal(1), 1)
    assert quantity(sub, calls, APRIL, exclude_groups=["large"]) == (Decimal(2), 2)


# --- max --------------------------------------------------------------------------------------


def test_max_within_the_period(sub, django_assert_num_queries):
    seats = metric(Agg.MAX)
    record(
        sub,
        "m_max",
        (utc(2026, 3, 31, 23, 59, 59), {"value": 50}),  # out
        (utc(2026, 4, 1), {"value": 3}),
        (utc(2026, 4, 12), {"value": "7.5"}),
        (utc(2026, 4, 20), {"value": 5}),
        (utc(2026, 5, 1), {"value": 100}),  # out
    )

    with django_assert_num_queries(1):
        assert quantity(sub, seats, APRIL) == (Decimal("7.5"), 3)
    assert quantity(sub, seats, JUNE) == (Decimal(0), 0)


def test_max_of_negative_values_is_negative(sub):
    record(sub, "m_max", (utc(2026, 4, 2), {"value": -4}), (utc(2026, 4, 3), {"value": "-2"}))

    assert quantity(sub, metric(Agg.MAX), APRIL) == (Decimal(-2), 2)


def test_recurring_max_also_weighs_the_value_carried_in(sub, django_assert_num_queries):
    seats = metric(Agg.MAX, recurring=True)
    record(
        sub,
        "m_max",
        (utc(2026, 4, 2), {"value": 20}),
        (utc(2026, 4, 25), {"value": 9}),  # April's last value: carried into May
        (utc(2026, 5, 3), {"value": 4}),
        (utc(2026, 5, 20), {"value": 6}),  # May's last value: carried into June
        (utc(2026, 6, 10), {"value": 2}),  # in June, below the 6 carried in
        (utc(2026, 6, 11), {"value": 8}),
    )

    with django_assert_num_queries(2):
        assert quantity(sub, seats, MAY) == (Decimal(9), 2)  # max(9 carried, 4, 6)
    assert quantity(sub, seats, APRIL) == (Decimal(20), 2)  # nothing carried
    assert quantity(sub, seats, JUNE) == (Decimal(8), 2)  # max(6 carried, 2, 8)


def test_recurring_max_of_a_period_without_events_is_the_value_carried_in(sub):
    seats = metric(Agg.MAX, recurring=True)
    record(
        sub,
        "m_max",
        (utc(2026, 4, 10), {"value": 30}),
        # two events at the same instant: the later id is the latest
        (utc(2026, 4, 20), {"value": 12}),
        (utc(2026, 4, 20), {"value": 11}),
        (utc(2026, 6, 1), {"value": 99}),  # at May's end: out
    )

    assert quantity(sub, seats, MAY) == (Decimal(11), 0)


# --- unique_count -----------------------------------------------------------------------------


def test_unique_count_compares_values_as_text(sub, django_assert_num_queries):
    users = metric(Agg.UNIQUE_COUNT, field="user")
    record(
        sub,
        "m_unique_count",
        (utc(2026, 3, 31), {"user": "zed"}),  # out
        (utc(2026, 4, 1), {"user": "ann"}),
        (utc(2026, 4, 2), {"user": "bob"}),
        (utc(2026, 4, 3), {"user": "ann"}),
        (utc(2026, 4, 4), {"user": 1}),
        (utc(2026, 4, 5), {"user": "1"}),  # the same as 1
        (utc(2026, 4, 6), {"user": 2.5}),
        (utc(2026, 4, 7), {"user": "Ann"}),  # case matters
        (utc(2026, 5, 1), {"user": "cat"}),  # out
    )

    # ann, bob, 1, 2.5, Ann
    with django_assert_num_queries(1):
        assert quantity(sub, users, APRIL) == (Decimal(5), 7)


def test_recurring_unique_count_runs_from_the_subscription_start(sub):
    users = metric(Agg.UNIQUE_COUNT, field="user", recurring=True)
    record(
        sub,
        "m_unique_count",
        (utc(2026, 4, 2), {"user": "ann"}),
        (utc(2026, 4, 3), {"user": "bob"}),
        (utc(2026, 5, 2), {"user": "bob"}),
        (utc(2026, 5, 3), {"user": "cat"}),
    )

    assert quantity(sub, users, MAY) == (Decimal(3), 2)  # ann, bob, cat


# --- latest -----------------------------------------------------------------------------------


def test_latest_value_in_the_period(sub, django_assert_num_queries):
    gauge = metric(Agg.LATEST)
    record(
        sub,
        "m_latest",
        (utc(2026, 3, 31), {"value": 77}),  # out
        (utc(2026, 4, 2), {"value": 5}),
        (utc(2026, 4, 20), {"value": "8.25"}),
        (utc(2026, 4, 10), {"value": 6}),  # stored later, but earlier in time
        (utc(2026, 5, 1), {"value": 100}),  # at the end: out
    )

    with django_assert_num_queries(1):
        assert quantity(sub, gauge, APRIL) == (Decimal("8.25"), 3)
    assert quantity(sub, gauge, JUNE) == (Decimal(0), 0)  # not recurring: nothing carried


def test_latest_breaks_a_tie_on_the_timestamp_by_id(sub):
    record(
        sub,
        "m_latest",
        (utc(2026, 4, 20), {"value": 3}),
        (utc(2026, 4, 20), {"value": 4}),
    )

    assert quantity(sub, metric(Agg.LATEST), APRIL) == (Decimal(4), 2)


def test_recurring_latest_reaches_back_before_the_period(sub, django_assert_num_queries):
    gauge = metric(Agg.LATEST, recurring=True)
    record(
        sub,
        "m_latest",
        (utc(2026, 4, 2), {"value": 5}),
        (utc(2026, 4, 20), {"value": 8}),
        (utc(2026, 6, 1), {"value": 100}),  # exactly at May's end: June's
        (utc(2026, 6, 5), {"value": 120}),
    )

    with django_assert_num_queries(1):
        assert quantity(sub, gauge, MAY) == (Decimal(8), 0)
    assert quantity(sub, gauge, JUNE) == (Decimal(120), 2)


# --- weighted_sum -----------------------------------------------------------------------------


def seats_metric(**fields) -> BillableMetric:
    return metric(Agg.WEIGHTED_SUM, code="seats", field="seats", recurring=True, **fields)


def test_weighted_sum_holds_each_level_for_its_share_of_the_period(sub, django_assert_num_queries):
    seats = seats_metric()
    record(
        sub,
        "seats",
        (utc(2026, 4, 1), {"seats": 10}),  # at the start: held all 30 days
        (utc(2026, 4, 16), {"seats": "5"}),  # the middle: 15 held 15 days
        (utc(2026, 5, 1), {"seats": 100}),  # at the end: May's
    )

    # (10 × 30 + 5 × 15) / 30 = 12.5
    with django_assert_num_queries(1):
        assert quantity(sub, seats, APRIL) == (Decimal("12.5"), 2)


def test_weighted_sum_carries_the_level_into_the_next_periods(sub):
    seats = seats_metric()
    record(
        sub,
        "seats",
        (utc(2026, 4, 1), {"seats": 10}),
        (utc(2026, 4, 16), {"seats": 5}),
        (utc(2026, 6, 11), {"seats": -3}),  # day 10 of June's 30
    )

    # May: no event, 15 all month; June: (15 × 10 + 12 × 20) / 30 = 13
    assert quantity(sub, seats, MAY) == (Decimal(15), 0)
    assert quantity(sub, seats, JUNE) == (Decimal(13), 1)


def test_weighted_sum_keeps_fractions_of_seconds_and_full_precision(sub):
    seats = seats_metric()
    record(
        sub,
        "seats",
        (utc(2026, 4, 1), {"seats": 10}),
        (utc(2026, 4, 30, 12), {"seats": 1}),  # the last 12 hours
        (utc(2026, 4, 30, 23, 59, 59, 750000), {"seats": 4}),  # the last quarter second
    )

    # seat-seconds: 10 × 2,592,000 + 1 × 43,200 + 4 × 0.25 = 25,963,201, over 2,592,000 s
    expected = Decimal(25_963_201) / Decimal(2_592_000)
    assert quantity(sub, seats, APRIL) == (expected, 3)
    assert str(expected) == "10.01666705246913580246913580"


def test_weighted_sum_with_filters_and_groups(sub):
    seats = seats_metric(filters={"region": ["eu"]}, group_by="role")
    record(
        sub,
        "seats",
        (utc(2026, 4, 1), {"seats": 6, "region": "eu", "role": "admin"}),
        (utc(2026, 4, 1), {"seats": 30, "region": "eu", "role": "viewer"}),
        (utc(2026, 4, 1), {"seats": 1000, "region": "us", "role": "admin"}),
        (utc(2026, 4, 16), {"seats": -3, "region": "eu", "role": "admin"}),
    )

    # admins: (6 × 30 + 3 × 15) / 30 = 4.5; the rest: 30
    assert quantity(sub, seats, APRIL, group_value="admin") == (Decimal("4.5"), 2)
    assert quantity(sub, seats, APRIL, exclude_groups=["admin"]) == (Decimal(30), 1)
    assert quantity(sub, seats, MAY, group_value="admin") == (Decimal(3), 0)


def test_a_non_recurring_weighted_sum_is_treated_as_recurring(sub):
    # BillableMetric.clean refuses it; if one exists anyway, the level still carries
    seats = seats_metric()
    BillableMetric.objects.filter(pk=seats.pk).update(recurring=False)
    seats.refresh_from_db()
    record(sub, "seats", (utc(2026, 4, 16), {"seats": 4}))

    assert quantity(sub, seats, APRIL) == (Decimal(2), 1)  # 4 × 15 / 30
    assert quantity(sub, seats, MAY) == (Decimal(4), 0)


# --- every aggregation: nothing to count, and a bounded number of queries ---------------------

EVERY = [
    (Agg.COUNT, False),
    (Agg.COUNT, True),
    (Agg.SUM, False),
    (Agg.SUM, True),
    (Agg.MAX, False),
    (Agg.MAX, True),
    (Agg.UNIQUE_COUNT, False),
    (Agg.UNIQUE_COUNT, True),
    (Agg.LATEST, False),
    (Agg.LATEST, True),
    (Agg.WEIGHTED_SUM, True),
]


@pytest.mark.parametrize(("aggregation", "recurring"), EVERY)
def test_no_events_is_zero(sub, aggregation, recurring):
    m = metric(aggregation, recurring=recurring)
    record(sub, "another_metric", (utc(2026, 4, 2), {"value": 5}))

    assert quantity(sub, m, APRIL) == (Decimal(0), 0)


@pytest.mark.parametrize(("aggregation", "recurring"), EVERY)
def test_queries_do_not_grow_with_the_number_of_events(
    sub, aggregation, recurring, django_assert_num_queries
):
    m = metric(aggregation, recurring=recurring)
    record(
        sub,
        m.code,
        *[(utc(2026, 4, 30, 23) - dt.timedelta(hours=n), {"value": n % 7}) for n in range(60)],
        *[(utc(2026, 5, 1) + dt.timedelta(hours=n), {"value": n % 5}) for n in range(60)],
    )
    queries = 2 if (aggregation, recurring) == (Agg.MAX, True) else 1

    with django_assert_num_queries(queries):
        _, events = quantity(sub, m, MAY)

    assert events == 60


# --- event_amounts ----------------------------------------------------------------------------


def test_event_amounts_are_the_matching_values_in_time_order(sub, django_assert_num_queries):
    amounts = metric(Agg.SUM, code="payments", field="amount", filters={"currency": ["usd"]})
    record(
        sub,
        "payments",
        (utc(2026, 3, 31, 23), {"amount": 1, "currency": "usd"}),  # out
        (utc(2026, 4, 20), {"amount": "30.5", "currency": "usd"}),
        (utc(2026, 4, 1), {"amount": 10, "currency": "usd"}),  # at the start
        (utc(2026, 4, 20), {"amount": 40, "currency": "usd"}),  # same instant: by id
        (utc(2026, 4, 10), {"amount": 20, "currency": "eur"}),  # filtered out
        (utc(2026, 4, 15), {"amount": "0.125", "currency": "usd"}),
        (utc(2026, 5, 1), {"amount": 99, "currency": "usd"}),  # at the end: out
    )

    with django_assert_num_queries(1):
        values = event_amounts(subscription=sub, metric=amounts, period=APRIL)

    assert values == [Decimal(10), Decimal("0.125"), Decimal("30.5"), Decimal(40)]
    assert all(isinstance(v, Decimal) for v in values)


def test_event_amounts_of_one_group_and_of_the_rest(sub, grouped):
    assert event_amounts(subscription=sub, metric=grouped, period=APRIL, group_value="large") == [
        Decimal(10),
        Decimal(20),
    ]
    assert event_amounts(
        subscription=sub, metric=grouped, period=APRIL, exclude_groups=["large", "7"]
    ) == [Decimal(5), Decimal(100)]
    assert event_amounts(subscription=sub, metric=grouped, period=JUNE) == []


# --- ingestion: what each aggregation needs in the event --------------------------------------


def send(code, properties) -> list[str]:
    """The problems ingestion finds with one event of the metric (empty when it is stored)."""
    try:
        with time_machine.travel("2026-04-02 12:00Z", tick=False):
            events_ingest(
                raw_events=[
                    {
                        "transaction_id": f"i{next(_txn)}",
                        "external_subscription_id": "sub_acme",
                        "code": code,
                        "timestamp": "2026-04-02T00:00:00Z",
                        "properties": properties,
                    }
                ]
            )
    except ValidationError as error:
        return error.details[0]["errors"]
    return []


@pytest.mark.parametrize(
    ("aggregation", "verb"),
    [
        (Agg.SUM, "sums"),
        (Agg.MAX, "takes the maximum of"),
        (Agg.LATEST, "takes the latest"),
        (Agg.WEIGHTED_SUM, "adds up changes of"),
    ],
)
@pytest.mark.parametrize(
    "value",
    [None, "many", "", True, [5], {"v": 5}, "NaN", "Infinity", "-inf"],
)
def test_numeric_aggregations_need_a_finite_number(sub, aggregation, verb, value):
    m = metric(aggregation, recurring=aggregation == Agg.WEIGHTED_SUM)

    assert send(m.code, {"value": value}) == [
        f"Metric '{m.code}' {verb} properties.value: send it as a number."
    ]
    assert send(m.code, {}) == [f"Metric '{m.code}' {verb} properties.value: send it as a number."]
    assert Event.objects.count() == 0


@pytest.mark.parametrize("value", ["1_000", "١٢", " 5", "5 ", "1e", ".", "0x10"])
def test_a_numeric_string_must_be_plain_ascii_digits(sub, value):
    # Python's Decimal reads all of these; PostgreSQL's numeric refuses "1_000" and "١٢" (the
    # period could not be aggregated any more) and SQLite reads "1_000" as 1
    assert send(metric(Agg.SUM).code, {"value": value}) == [
        "Metric 'm_sum' sums properties.value: send it as a number."
    ]
    assert Event.objects.count() == 0


def test_numeric_strings_in_every_plain_notation_are_aggregated(sub):
    tokens = metric(Agg.SUM, accepts_negative=True)
    for value in ["5", "-1", "+2", "0.5", ".25", "3.", "1e2", "-1E-1"]:
        assert send(tokens.code, {"value": value}) == []

    # 5 − 1 + 2 + 0.5 + 0.25 + 3 + 100 − 0.1
    assert quantity(sub, tokens, APRIL) == (Decimal("109.65"), 8)


@pytest.mark.parametrize("aggregation", [Agg.SUM, Agg.MAX, Agg.LATEST, Agg.WEIGHTED_SUM])
def test_numeric_aggregations_refuse_10_to_the_26(sub, aggregation):
    m = metric(aggregation, recurring=aggregation == Agg.WEIGHTED_SUM, accepts_negative=True)

    for value in (10**26, "-1e26", 1e27):
        assert send(m.code, {"value": value}) == [
            "properties.value is too large: values must stay below 10^26."
        ]
    assert send(m.code, {"value": "-99999999999999999999999999.5"}) == []  # just below, negative
    assert Event.objects.count() == 1


def test_a_weighted_sum_accepts_negative_changes(sub):
    seats_metric()

    assert send("seats", {"seats": -3}) == []
    assert send("seats", {"seats": "-0.5"}) == []
    assert Event.objects.count() == 2


@pytest.mark.parametrize("value", ["ann", "", 7, 2.5, "7"])
def test_unique_count_accepts_a_string_or_a_number(sub, value):
    m = metric(Agg.UNIQUE_COUNT, field="user")

    assert send(m.code, {"user": value}) == []
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    "properties", [{}, {"user": None}, {"user": True}, {"user": [1]}, {"user": {"id": 1}}]
)
def test_unique_count_needs_a_scalar_property(sub, properties):
    m = metric(Agg.UNIQUE_COUNT, field="user")

    assert send(m.code, properties) == [
        f"Metric '{m.code}' counts distinct values of properties.user: send it as a string or a "
        "number."
    ]
    assert Event.objects.count() == 0


def test_a_count_needs_no_property(sub):
    m = metric(Agg.COUNT)

    assert send(m.code, {}) == []
    assert send(m.code, {"value": "anything", "nested": {"a": [1]}}) == []
    assert Event.objects.count() == 2
