"""POST /api/v1/events and /api/v1/events/batch: Lago's format, all or nothing, deduplicated."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from catalog.models import Charge
from metering.models import Event
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    TokensMetricFactory,
    subscribe,
)

NOW = "2026-02-14 12:00Z"  # the moment every request of this module is received
NOW_DT = dt.datetime(2026, 2, 14, 12, tzinfo=dt.UTC)
NOW_UNIX = 1771070400  # 2026-01-01T00:00Z is 1767225600; + 44 days + 12 h
ELEVEN = dt.datetime(2026, 2, 14, 11, tzinfo=dt.UTC)

pytestmark = pytest.mark.usefixtures("frozen")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def subscription(db):
    """acme's subscription: api_calls (count) and tokens (sum of properties.tokens), in arrears."""
    plan = PlanFactory()
    ChargeFactory(plan=plan, name="Platform fee", unit_price=Decimal("500"))
    for position, metric in enumerate([MetricFactory(), TokensMetricFactory()], start=1):
        ChargeFactory(
            plan=plan,
            name=metric.name,
            metric=metric,
            billing_timing=Charge.Timing.IN_ARREARS,
            unit_price=Decimal("0.002"),
            default_quantity=Decimal("0"),
            position=position,
        )
    return subscribe(customer=CustomerFactory(external_id="acme"), plan=plan, start="2026-01-15")


def call(txn="t1", **fields) -> dict:
    return {
        "transaction_id": txn,
        "external_subscription_id": "sub_acme",
        "code": "api_calls",
        **fields,
    }


def post_one(api, event) -> tuple[int, dict]:
    answer = api.post("/api/v1/events", {"event": event}, format="json")
    return answer.status_code, answer.json()


def post_batch(api, events) -> tuple[int, dict]:
    answer = api.post("/api/v1/events/batch", {"events": events}, format="json")
    return answer.status_code, answer.json()


def one_invalid(*errors: str) -> dict:
    """The answer to a single event that is invalid for the given reasons."""
    return {
        "error": {
            "code": "validation_error",
            "message": (
                "1 of 1 events are invalid; nothing was stored. Fix them and resend the batch."
            ),
            "details": [{"index": 0, "errors": list(errors)}],
        }
    }


# --- bad input: 4xx, a clear message, nothing stored ------------------------------------------


def test_malformed_json_is_400_and_nothing_is_stored(api, subscription):
    answer = api.post(
        "/api/v1/events",
        data=b'{"event": {"transaction_id": "t1",',
        content_type="application/json",
    )

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "parse_error"
    assert error["message"].startswith("The request body is not valid JSON: JSON parse error")
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/v1/events", {"foo": 1}, 'Send {"event": {...}} with one event object.'),
        ("/api/v1/events", {"events": [call()]}, 'Send {"event": {...}} with one event object.'),
        ("/api/v1/events", {"event": [call()]}, 'Send {"event": {...}} with one event object.'),
        ("/api/v1/events", [call()], 'Send {"event": {...}} with one event object.'),
        (
            "/api/v1/events/batch",
            {"event": call()},
            'Send {"events": [...]} with a list of event objects.',
        ),
        (
            "/api/v1/events/batch",
            {"events": call()},
            'Send {"events": [...]} with a list of event objects.',
        ),
        ("/api/v1/events/batch", {"events": []}, "Send at least one event."),
    ],
)
def test_a_body_without_event_or_events_is_422(api, subscription, path, body, message):
    answer = api.post(path, body, format="json")

    assert answer.status_code == 422
    assert answer.json() == {
        "error": {"code": "validation_error", "message": message, "details": None}
    }
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("event", "errors"),
    [
        (
            call(external_subscription_id="sub_nope"),
            ["No subscription has external id 'sub_nope'."],
        ),
        (
            call(external_subscription_id=None),
            ["external_subscription_id (or external_customer_id) is required."],
        ),
        (call(code="api_cals"), ["No billable metric has code 'api_cals'."]),
        (call(code=""), ["code is required (the billable metric's code)."]),
        (call(txn=None), ["transaction_id is required (a unique string per event)."]),
        (call(txn="  "), ["transaction_id is required (a unique string per event)."]),
        (call(txn=1.5), ["transaction_id is required (a unique string per event)."]),
        (call(properties=[1, 2]), ["properties must be a JSON object."]),
        (
            {"external_subscription_id": "sub_acme", "code": "nope"},
            [
                "transaction_id is required (a unique string per event).",
                "No billable metric has code 'nope'.",
            ],
        ),
    ],
)
def test_an_invalid_event_is_422_with_every_reason_and_nothing_is_stored(
    api, subscription, event, errors
):
    status, body = post_one(api, event)

    assert status == 422
    assert body == one_invalid(*errors)
    assert Event.objects.count() == 0


def test_an_event_without_transaction_id_is_refused(api, subscription):
    event = call()
    del event["transaction_id"]

    status, body = post_one(api, event)

    assert (status, body) == (
        422,
        one_invalid("transaction_id is required (a unique string per event)."),
    )
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "properties",
    [
        {},
        {"tokens": None},
        {"other": 5},
        {"tokens": "many"},
        {"tokens": ""},
        {"tokens": True},
        {"tokens": [5]},
        {"tokens": {"value": 5}},
        # Decimal() parses these, but they are not amounts: NaN crashes the PostgreSQL sum and is
        # silently dropped by SQLite's
        pytest.param({"tokens": "NaN"}, id="nan"),
        pytest.param({"tokens": "Infinity"}, id="infinity"),
        pytest.param({"tokens": "-inf"}, id="minus-inf"),
    ],
)
def test_a_sum_metric_needs_its_property_as_a_number(api, subscription, properties):
    status, body = post_one(api, call(code="tokens", properties=properties))

    assert status == 422
    assert body == one_invalid("Metric 'tokens' sums properties.tokens: send it as a number.")
    assert Event.objects.count() == 0


def test_a_sum_property_too_large_to_aggregate_is_refused(api, subscription):
    # Usage is summed as numeric(38, 12): 10^26 and beyond overflows on PostgreSQL when the
    # period is aggregated (current usage, billing), so it must be refused at the door
    status, body = post_one(api, call(code="tokens", properties={"tokens": 1e27}))

    assert status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "timestamp",
    [
        NOW_UNIX + 301,  # 5 minutes and 1 second ahead
        NOW_UNIX + 86400,
        "2026-02-14T12:05:01Z",
        "2026-02-14T14:06:00+02:00",  # 12:06 UTC
    ],
)
def test_an_event_more_than_5_minutes_in_the_future_is_refused(api, subscription, timestamp):
    status, body = post_one(api, call(timestamp=timestamp))

    assert (status, body) == (422, one_invalid("timestamp is more than 5 minutes in the future."))
    assert Event.objects.count() == 0


def test_an_event_exactly_5_minutes_ahead_is_accepted(api, subscription):
    status, body = post_one(api, call(timestamp=NOW_UNIX + 300))

    assert status == 200, body
    assert Event.objects.get().timestamp == dt.datetime(2026, 2, 14, 12, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "timestamp",
    ["yesterday", "2026-02-30T00:00:00Z", "14/02/2026 11:00", True, [1771066800], {"s": 1}, 1e20],
)
def test_a_bad_timestamp_is_refused(api, subscription, timestamp):
    status, body = post_one(api, call(timestamp=timestamp))

    assert (status, body) == (
        422,
        one_invalid("timestamp must be Unix seconds or an ISO 8601 date-time."),
    )
    assert Event.objects.count() == 0


def test_without_an_api_key_nothing_is_stored(subscription):
    answer = APIClient().post("/api/v1/events/batch", {"events": [call()]}, format="json")

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "not_authenticated"
    assert Event.objects.count() == 0


def test_a_batch_with_one_bad_event_of_three_stores_none_and_names_it(api, subscription):
    # Given a batch whose second event has a misspelt code
    events = [call("t1"), call("t2", code="api_cals"), call("t3")]

    # When
    status, body = post_batch(api, events)

    # Then
    assert status == 422
    assert body == {
        "error": {
            "code": "validation_error",
            "message": (
                "1 of 3 events are invalid; nothing was stored. Fix them and resend the batch."
            ),
            "details": [{"index": 1, "errors": ["No billable metric has code 'api_cals'."]}],
        }
    }
    assert Event.objects.count() == 0


def test_a_batch_lists_every_bad_event(api, subscription):
    events = [call("t1", timestamp="soon"), call("t2"), "not an object", call("t4", code="x")]

    status, body = post_batch(api, events)

    assert status == 422
    assert body["error"]["details"] == [
        {"index": 0, "errors": ["timestamp must be Unix seconds or an ISO 8601 date-time."]},
        {"index": 2, "errors": ["An event must be a JSON object."]},
        {"index": 3, "errors": ["No billable metric has code 'x'."]},
    ]
    assert Event.objects.count() == 0


def test_a_batch_over_10_000_events_is_refused(api, subscription):
    events = [call(f"t{n}") for n in range(10_001)]

    status, body = post_batch(api, events)

    assert status == 422
    assert body == {
        "error": {
            "code": "validation_error",
            "message": "A batch holds at most 10,000 events; split it.",
            "details": None,
        }
    }
    assert Event.objects.count() == 0


def test_a_batch_of_exactly_10_000_events_is_stored(api, subscription):
    events = [
        call(
            f"0b0f6d3e-8d3c-4a0e-9a67-{n:012d}",
            code="tokens",
            timestamp="2026-02-14T11:00:00Z",
            properties={"tokens": 3},
        )
        for n in range(10_000)
    ]

    status, body = post_batch(api, events)

    assert (status, body) == (200, {"received": 10_000, "created": 10_000, "duplicates": 0})
    assert Event.objects.count() == 10_000


# --- happy paths ------------------------------------------------------------------------------


def test_one_event_is_stored_and_echoed_in_lagos_shape(api, subscription):
    # When
    status, body = post_one(
        api, call(timestamp="2026-02-14T11:00:00Z", properties={"region": "eu"})
    )

    # Then the answer carries the event the Lago client reads (timestamp as a string)
    assert status == 200
    assert body == {
        "event": {
            "transaction_id": "t1",
            "external_subscription_id": "sub_acme",
            "code": "api_calls",
            "timestamp": "2026-02-14T11:00:00+00:00",
            "properties": {"region": "eu"},
        },
        "received": 1,
        "created": 1,
        "duplicates": 0,
    }
    event = Event.objects.get()
    assert (event.customer, event.subscription) == (subscription.customer, subscription)
    assert (event.transaction_id, event.code) == ("t1", "api_calls")
    assert event.timestamp == ELEVEN
    assert event.received_at == NOW_DT
    assert event.properties == {"region": "eu"}


@pytest.mark.parametrize(
    ("timestamp", "stored"),
    [
        (1771066800, ELEVEN),  # int Unix seconds (what the Lago client sends)
        ("1771066800", ELEVEN),  # Unix seconds as a string
        (1771066800.25, ELEVEN.replace(microsecond=250_000)),  # fractional seconds
        ("2026-02-14T11:00:00Z", ELEVEN),
        ("2026-02-14T11:00:00.5Z", ELEVEN.replace(microsecond=500_000)),
        ("2026-02-14T13:00:00+02:00", ELEVEN),  # an offset is converted to UTC
        ("2026-02-14T11:00:00", ELEVEN),  # no offset: UTC
        (None, NOW_DT),  # absent: the time of receipt
        ("2026-01-11T00:00:00Z", dt.datetime(2026, 1, 11, tzinfo=dt.UTC)),  # late, within 35 days
    ],
)
def test_timestamp_formats(api, subscription, timestamp, stored):
    event = call() if timestamp is None else call(timestamp=timestamp)

    status, body = post_one(api, event)

    assert status == 200, body
    assert isinstance(body["event"]["timestamp"], str)
    assert dt.datetime.fromisoformat(body["event"]["timestamp"]) == stored
    assert Event.objects.get().timestamp == stored


def test_a_sum_event_with_a_numeric_property_is_stored(api, subscription):
    events = [
        call("t1", code="tokens", properties={"tokens": 1200}),
        call("t2", code="tokens", properties={"tokens": "35.5"}),
        call("t3", code="tokens", properties={"tokens": 0.25}),
    ]

    status, body = post_batch(api, events)

    assert (status, body) == (200, {"received": 3, "created": 3, "duplicates": 0})
    assert sorted(Event.objects.values_list("transaction_id", "properties")) == [
        ("t1", {"tokens": 1200}),
        ("t2", {"tokens": "35.5"}),
        ("t3", {"tokens": 0.25}),
    ]


def test_an_integer_transaction_id_is_stored_as_a_string(api, subscription):
    status, body = post_one(api, call(txn=42))

    assert status == 200
    assert body["event"]["transaction_id"] == "42"
    assert Event.objects.get().transaction_id == "42"


def test_duplicates_within_a_batch_are_stored_once(api, subscription):
    events = [call("t1"), call("t2"), call("t1"), call("t1", timestamp=NOW_UNIX - 60)]

    status, body = post_batch(api, events)

    assert (status, body) == (200, {"received": 4, "created": 2, "duplicates": 2})
    assert sorted(Event.objects.values_list("transaction_id", flat=True)) == ["t1", "t2"]
    assert Event.objects.get(transaction_id="t1").timestamp == NOW_DT  # the first one wins


def test_duplicates_across_batches_and_replays_are_stored_once(api, subscription):
    # Given a first batch
    assert post_batch(api, [call("t1"), call("t2")]) == (
        200,
        {"received": 2, "created": 2, "duplicates": 0},
    )

    # When a second batch overlaps it and a single event is replayed
    second = post_batch(api, [call("t2"), call("t3")])
    replay = post_one(api, call("t1"))

    # Then replays answer 2xx (the Lago client would raise on 409) and are stored once
    assert second == (200, {"received": 2, "created": 1, "duplicates": 1})
    assert replay[0] == 200
    assert (replay[1]["received"], replay[1]["created"], replay[1]["duplicates"]) == (1, 0, 1)
    assert sorted(Event.objects.values_list("transaction_id", flat=True)) == ["t1", "t2", "t3"]


def test_the_same_transaction_id_from_two_customers_is_two_events(api, subscription):
    # Given a second customer with their own subscription to the same plan
    subscribe(
        customer=CustomerFactory(external_id="globex"),
        plan=subscription.plan,
        external_id="sub_globex",
    )

    # When both send transaction t1 (deduplication is per customer)
    first = post_one(api, call("t1"))
    second = post_one(api, call("t1", external_subscription_id="sub_globex"))

    # Then both are stored
    assert first[1]["created"] == 1 and second[1]["created"] == 1
    assert sorted(Event.objects.values_list("customer__external_id", flat=True)) == [
        "acme",
        "globex",
    ]


def test_an_event_naming_the_right_customer_is_accepted(api, subscription):
    status, body = post_one(api, call(external_customer_id="acme"))

    assert (status, body["created"]) == (200, 1)


def test_an_event_whose_customer_does_not_own_the_subscription_is_refused(api, subscription):
    # Given globex exists, but sub_acme is acme's
    CustomerFactory(external_id="globex")

    # When globex's id is sent with acme's subscription
    status, body = post_one(api, call(external_customer_id="globex"))

    # Then
    assert (status, body) == (
        422,
        one_invalid("Subscription 'sub_acme' does not belong to customer 'globex'."),
    )
    assert Event.objects.count() == 0


def test_an_event_older_than_the_lateness_window_is_refused(api, subscription):
    status, body = post_one(api, call(timestamp="2026-01-09T11:59:59Z"))  # 36 days before NOW

    assert status == 422
    assert body["error"]["details"] == [
        {
            "index": 0,
            "errors": [
                "timestamp is more than 35 days old: usage that late is no longer accepted "
                "(ask finance for a manual adjustment)."
            ],
        }
    ]
    assert Event.objects.count() == 0


def test_an_event_may_name_only_its_customer_when_it_has_one_active_subscription(api, subscription):
    event = call()
    del event["external_subscription_id"]
    event["external_customer_id"] = subscription.customer.external_id

    status, body = post_one(api, event)

    assert (status, body["event"]["external_subscription_id"]) == (200, subscription.external_id)
    assert Event.objects.get().subscription == subscription


def test_a_customer_with_two_subscriptions_must_say_which(api, subscription):
    subscribe(customer=subscription.customer, plan=subscription.plan, external_id="sub_second")
    event = call()
    del event["external_subscription_id"]
    event["external_customer_id"] = subscription.customer.external_id

    status, body = post_one(api, event)

    assert status == 422
    assert body["error"]["details"][0]["errors"] == [
        f"Customer '{subscription.customer.external_id}' has 2 active subscriptions: send "
        "external_subscription_id to say which one the event is for."
    ]
    assert Event.objects.count() == 0


def test_an_oversize_body_is_413_with_a_message_and_nothing_is_stored(api, subscription, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    events = [call(f"t{n}") for n in range(40)]  # about 5 kB of JSON

    answer = api.post("/api/v1/events/batch", {"events": events}, format="json")

    assert answer.status_code == 413
    assert answer.json()["error"] == {
        "code": "request_too_large",
        "message": "The request body is over 2,000 bytes: send fewer events per batch.",
        "details": None,
    }
    assert Event.objects.count() == 0
