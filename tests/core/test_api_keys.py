"""API keys: created once by a management command, stored as a hash, sent as a Bearer token."""

import datetime as dt
import hashlib
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from rest_framework.test import APIClient

from core.errors import ValidationError
from core.models import ApiKey
from core.services import api_key_create
from metering.models import Event
from tests.factories import CustomerFactory, hybrid_plan, subscribe

NOW = "2026-02-14 12:00Z"
EVENT = {
    "event": {
        "transaction_id": "t1",
        "external_subscription_id": "sub_acme",
        "code": "api_calls",
        "timestamp": "2026-02-14T11:00:00Z",
    }
}


@pytest.fixture
def subscription(db):
    return subscribe(customer=CustomerFactory(external_id="acme"), plan=hybrid_plan())


def client_with(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


@time_machine.travel(NOW, tick=False)
def test_create_api_key_prints_the_key_alone_on_its_last_line_and_stores_only_its_hash(
    subscription,
):
    # When
    out = StringIO()
    call_command("create_api_key", "usage pipeline", stdout=out)

    # Then the raw key is the whole last line
    lines = out.getvalue().splitlines()
    raw = lines[-1]
    assert raw.startswith("q2c_")
    assert raw == raw.strip() and " " not in raw
    assert lines[0] == "Created API key 'usage pipeline'. Store it now: it is not shown again."

    # and only its sha256 is stored (plus a short prefix to recognise it)
    key = ApiKey.objects.get()
    assert key.name == "usage pipeline"
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert key.prefix == raw[:12]
    assert raw not in str(ApiKey.objects.values().get())
    assert key.last_used_at is None and key.revoked_at is None

    # and the key authenticates an event
    answer = client_with(f"Bearer {raw}").post("/api/v1/events", EVENT, format="json")
    assert answer.status_code == 200, answer.content
    assert Event.objects.count() == 1
    key.refresh_from_db()
    assert key.last_used_at == dt.datetime(2026, 2, 14, 12, tzinfo=dt.UTC)


def test_each_key_is_different(db):
    first = StringIO()
    second = StringIO()
    call_command("create_api_key", "a", stdout=first)
    call_command("create_api_key", "b", stdout=second)
    assert first.getvalue().splitlines()[-1] != second.getvalue().splitlines()[-1]
    assert ApiKey.objects.values("key_hash").distinct().count() == 2


def test_a_key_needs_a_name(db):
    with pytest.raises(ValidationError) as caught:
        api_key_create(name="   ")
    assert caught.value.message == "Give the API key a name, such as the system that will use it."
    assert ApiKey.objects.count() == 0


@time_machine.travel(NOW, tick=False)
def test_a_revoked_key_gets_401_with_a_clear_message_and_nothing_is_stored(subscription):
    # Given a key that has been revoked
    key, raw = api_key_create(name="old pipeline")
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))

    # When it is used
    answer = client_with(f"Bearer {raw}").post("/api/v1/events", EVENT, format="json")

    # Then
    assert answer.status_code == 401
    assert answer.json() == {
        "error": {
            "code": "authentication_failed",
            "message": "This API key is unknown or has been revoked.",
            "details": None,
        }
    }
    assert Event.objects.count() == 0


@time_machine.travel(NOW, tick=False)
def test_a_request_without_authorization_gets_401_in_the_error_shape(subscription):
    answer = client_with(None).post("/api/v1/events", EVENT, format="json")

    assert answer.status_code == 401
    assert answer.json() == {
        "error": {
            "code": "not_authenticated",
            "message": "Authentication required: send 'Authorization: Bearer <api key>'.",
            "details": None,
        }
    }
    assert Event.objects.count() == 0


@time_machine.travel(NOW, tick=False)
def test_a_401_names_the_scheme_in_www_authenticate(subscription):
    # RFC 9110 §11.6.1: a 401 response must carry WWW-Authenticate
    without_key = client_with(None).post("/api/v1/events", EVENT, format="json")
    unknown_key = client_with("Bearer q2c_unknown").post("/api/v1/events", EVENT, format="json")

    assert without_key.status_code == 401
    assert without_key.headers.get("WWW-Authenticate") == "Bearer"
    assert unknown_key.status_code == 401
    assert unknown_key.headers.get("WWW-Authenticate") == "Bearer"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Token q2c_abc", "Send the API key as 'Authorization: Bearer <key>'."),
        ("Bearer", "Send the API key as 'Authorization: Bearer <key>'."),
        ("Bearer    ", "Send the API key as 'Authorization: Bearer <key>'."),
        ("Bearer q2c_not-a-real-key", "This API key is unknown or has been revoked."),
    ],
)
@time_machine.travel(NOW, tick=False)
def test_a_malformed_or_unknown_key_gets_401(subscription, header, message):
    answer = client_with(header).post("/api/v1/events", EVENT, format="json")

    assert answer.status_code == 401
    assert answer.json() == {
        "error": {"code": "authentication_failed", "message": message, "details": None}
    }
    assert Event.objects.count() == 0


def test_current_usage_also_needs_a_key(subscription):
    answer = client_with(None).get(
        "/api/v1/customers/acme/current_usage", {"external_subscription_id": "sub_acme"}
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "not_authenticated"
