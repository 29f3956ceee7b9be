"""The published lago-python-client, unchanged, against a live server of ours.

Every call goes over HTTP (pytest-django's `live_server`, a real WSGI server in a thread) through
the client's own URL building, JSON encoding, status checks and pydantic response models.
"""

import time

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import BatchEvent
from lago_python_client.models import Event as LagoEvent
from lago_python_client.models.customer_usage import CustomerUsageResponse
from lago_python_client.models.event import EventResponse

from core import clock
from core.services import api_key_create
from metering.models import Event
from subscriptions.services import subscription_create
from tests.factories import CustomerFactory, hybrid_plan


@pytest.fixture
def client(live_server, transactional_db) -> Client:
    """acme on the hybrid plan (API calls at 0.002 USD each, in arrears), started today so that
    the period in progress covers now; a Lago client with a fresh API key."""
    _, key = api_key_create(name="lago-python-client")
    subscription_create(
        customer=CustomerFactory(external_id="acme"),
        plan=hybrid_plan(),
        external_id="sub_acme",
        start_date=clock.today(),
        term_months=12,
    )
    return Client(api_key=key, api_url=live_server.url)


def call(txn: str, **fields) -> LagoEvent:
    return LagoEvent(
        transaction_id=txn,
        external_subscription_id=fields.pop("external_subscription_id", "sub_acme"),
        code=fields.pop("code", "api_calls"),
        timestamp=fields.pop("timestamp", int(time.time())),
        properties=fields.pop("properties", {}),
    )


def test_events_create_answers_the_event_the_client_reads(client):
    answer = client.events.create(call("evt_single"))

    assert isinstance(answer, EventResponse)
    assert answer.transaction_id == "evt_single"
    assert answer.external_subscription_id == "sub_acme"
    assert answer.code == "api_calls"
    assert isinstance(answer.timestamp, str)
    assert Event.objects.get().transaction_id == "evt_single"


def test_batch_create_replay_and_current_usage(client):
    client.events.create(call("evt_0000"))
    batch = BatchEvent(events=[call(f"evt_{n:04d}") for n in range(1, 251)])

    assert client.events.batch_create(batch) is None  # 2xx; the client returns nothing
    assert Event.objects.count() == 251

    client.events.batch_create(batch)  # a replay: 2xx again, no exception
    client.events.create(call("evt_0000"))  # a single replay too
    assert Event.objects.count() == 251  # nothing new stored

    usage = client.customers.current_usage("acme", "sub_acme")

    assert isinstance(usage, CustomerUsageResponse)
    assert usage.currency == "USD"
    assert usage.from_datetime.startswith(clock.today().isoformat())
    (calls,) = [c for c in usage.charges_usage if c.billable_metric.code == "api_calls"]
    assert calls.units == "251"
    assert calls.events_count == 251
    # 251 calls × 0.002 USD = 0.502 USD, rounded half-up to the cent: 50 cents.
    assert calls.amount_cents == 50
    assert calls.amount_currency == "USD"
    assert calls.billable_metric.aggregation_type == "count_agg"
    assert usage.amount_cents == 50
    assert usage.taxes_amount_cents == 0
    assert usage.total_amount_cents == 50


def test_an_iso_timestamp_string_is_accepted(client):
    now = clock.now().replace(microsecond=0)
    client.events.create(call("evt_iso", timestamp=now.isoformat().replace("+00:00", "Z")))

    assert Event.objects.get().timestamp == now


def test_an_invalid_event_raises_lago_api_error_422_and_stores_nothing(client):
    with pytest.raises(LagoApiError) as raised:
        client.events.create(call("evt_bad", external_subscription_id="sub_nope"))

    assert raised.value.status_code == 422
    error = raised.value.response["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {"index": 0, "errors": ["No subscription has external id 'sub_nope'."]}
    ]
    assert Event.objects.count() == 0


def test_a_batch_with_one_invalid_event_raises_422_and_stores_nothing(client):
    events = [call("evt_1"), call("evt_2", code="api_cals"), call("evt_3")]

    with pytest.raises(LagoApiError) as raised:
        client.events.batch_create(BatchEvent(events=events))

    assert raised.value.status_code == 422
    assert [d["index"] for d in raised.value.response["error"]["details"]] == [1]
    assert Event.objects.count() == 0


def test_a_wrong_api_key_raises_lago_api_error_401(client, live_server):
    stranger = Client(api_key="q2c_not-a-key", api_url=live_server.url)

    with pytest.raises(LagoApiError) as raised:
        stranger.events.create(call("evt_1"))
    assert raised.value.status_code == 401
    assert raised.value.response["error"]["code"] == "authentication_failed"

    with pytest.raises(LagoApiError) as raised:
        stranger.events.batch_create(BatchEvent(events=[call("evt_2")]))
    assert raised.value.status_code == 401

    with pytest.raises(LagoApiError) as raised:
        stranger.customers.current_usage("acme", "sub_acme")
    assert raised.value.status_code == 401
    assert Event.objects.count() == 0


def test_current_usage_of_an_unknown_subscription_raises_404(client):
    with pytest.raises(LagoApiError) as raised:
        client.customers.current_usage("acme", "sub_nope")

    assert raised.value.status_code == 404
    assert raised.value.response["error"]["code"] == "not_found"
