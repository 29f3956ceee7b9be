"""API requests are limited per API key: over the rate, 429 with Retry-After in the error shape."""

import pytest
import time_machine
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from core.services import api_key_create
from tests.factories import CustomerFactory, hybrid_plan, subscribe

NOW = "2026-02-14 12:00Z"


@pytest.fixture(autouse=True)
def _clock_and_cache():
    cache.clear()
    with time_machine.travel(NOW, tick=False):
        yield
    cache.clear()


@pytest.fixture
def subscription(db):
    return subscribe(customer=CustomerFactory(external_id="acme"), plan=hybrid_plan())


def client_for(name: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name=name)[1]}")
    return client


def send(client: APIClient, n: int):
    event = {
        "transaction_id": f"t{n}",
        "external_subscription_id": "sub_acme",
        "code": "api_calls",
        "timestamp": "2026-02-14T11:00:00Z",
    }
    return client.post("/api/v1/events", {"event": event}, format="json")


@override_settings(API_RATE_LIMIT="3/min")
def test_over_the_rate_a_key_gets_429_with_retry_after_and_another_key_is_not_affected(
    subscription,
):
    # Given two keys
    first, second = client_for("pipeline A"), client_for("pipeline B")

    # When the first sends its 3 requests, then a fourth
    answers = [send(first, n).status_code for n in range(3)]
    refused = send(first, 3)

    # Then the fourth is refused in the API's error shape, saying when to retry
    assert answers == [200, 200, 200]
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert refused.json() == {
        "error": {
            "code": "throttled",
            "message": "Request was throttled. Expected available in 60 seconds.",
            "details": None,
        }
    }

    # and the second key has its own budget
    assert [send(second, n).status_code for n in range(10, 13)] == [200, 200, 200]
    assert send(second, 13).status_code == 429

    # and the first key is served again once the window has passed
    with time_machine.travel("2026-02-14 12:01:01Z", tick=False):
        assert send(first, 4).status_code == 200


@override_settings(API_RATE_LIMIT="")
def test_an_empty_rate_means_no_limit(subscription):
    client = client_for("pipeline")
    assert {send(client, n).status_code for n in range(30)} == {200}
