"""Hostile or broken input: every request answers 4xx in the API's error shape, stores nothing,
and a batch stays all or nothing. Several of these were 500s only on PostgreSQL (NUL, lone
surrogates, infinities), so this module runs on both databases."""

import json

import pytest
from rest_framework.test import APIClient

from metering.models import Event
from tests.factories import (
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    PortalMembershipFactory,
    TokensMetricFactory,
    subscribe,
)

BATCH = "/api/v1/events/batch"
ONE = "/api/v1/events"


@pytest.fixture
def subscription(db):
    MetricFactory()  # api_calls: a count
    TokensMetricFactory()  # tokens: a sum of properties.tokens
    return subscribe(customer=CustomerFactory(external_id="acme"), plan=PlanFactory())


def call(txn="t1", **fields) -> dict:
    return {
        "transaction_id": txn,
        "external_subscription_id": "sub_acme",
        "code": "api_calls",
        **fields,
    }


def post_raw(api: APIClient, path: str, text: str):
    """Post a JSON document written by hand (json.dumps writes neither 1e309 nor what a sender's
    encoder may)."""
    return api.post(path, data=text.encode(), content_type="application/json")


def post_batch_with(api: APIClient, hostile: dict):
    """A batch of a valid event then the hostile one (json.dumps escapes NUL and surrogates as
    \\u0000 and \\ud800, as a sender's JSON does)."""
    return post_raw(api, BATCH, json.dumps({"events": [call("ok"), hostile]}))


def assert_error(answer, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.content
    assert answer["Content-Type"] == "application/json"
    body = answer.json()
    assert body.keys() == {"error"}
    assert body["error"].keys() == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def assert_second_event_refused(answer, reason: str) -> None:
    error = assert_error(answer, 422, "validation_error")
    assert error["message"] == (
        "1 of 2 events are invalid; nothing was stored. Fix them and resend the batch."
    )
    assert error["details"] == [{"index": 1, "errors": [reason]}]
    assert Event.objects.count() == 0


# --- 1. longer than the column ------------------------------------------------------------------


def test_a_transaction_id_longer_than_255_characters_is_refused(api, subscription):
    answer = post_batch_with(api, call("x" * 256))

    assert_second_event_refused(answer, "transaction_id is longer than 255 characters.")


def test_a_transaction_id_of_exactly_255_characters_is_stored(api, subscription):
    answer = post_batch_with(api, call("x" * 255))

    assert answer.status_code == 200, answer.content
    assert Event.objects.filter(transaction_id="x" * 255).exists()


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("code", "code is longer than 100 characters."),
        ("external_subscription_id", "external_subscription_id is longer than 255 characters."),
        ("external_customer_id", "external_customer_id is longer than 255 characters."),
    ],
)
def test_a_field_longer_than_its_limit_is_refused(api, subscription, field, reason):
    answer = post_batch_with(api, call(**{field: "x" * 256}))

    assert_second_event_refused(answer, reason)


def test_a_property_key_longer_than_100_characters_is_refused(api, subscription):
    answer = post_batch_with(api, call(properties={"k" * 101: 1}))

    assert_second_event_refused(answer, "properties: property keys are at most 100 characters.")


def test_properties_over_8_kb_are_refused(api, subscription):
    answer = post_batch_with(api, call(properties={"note": "x" * 8200}))

    assert_second_event_refused(answer, "properties are 8,211 bytes as JSON: at most 8,192.")


def test_properties_of_8_kb_are_stored(api, subscription):
    properties = {"note": "x" * (8192 - len('{"note":""}'))}

    answer = post_batch_with(api, call(properties=properties))

    assert answer.status_code == 200, answer.content
    assert Event.objects.get(transaction_id="t1").properties == properties


# --- 2. NUL -------------------------------------------------------------------------------------

NUL = "contains a NUL character (\\u0000)"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (call("t\x001"), f"transaction_id {NUL}."),
        (call(code="api_calls\x00"), f"code {NUL}."),
        (call(external_subscription_id="sub_acme\x00"), f"external_subscription_id {NUL}."),
        (
            {**call(external_subscription_id=None), "external_customer_id": "ac\x00me"},
            f"external_customer_id {NUL}.",
        ),
        (call(properties={"model\x00": "gpt"}), f"properties: a property key {NUL}."),
        (call(properties={"model": "g\x00pt"}), f"properties: a property value {NUL}."),
        (call(properties={"a": [{"b": ["\x00"]}]}), f"properties: a property value {NUL}."),
    ],
    ids=["transaction_id", "code", "subscription", "customer", "key", "value", "nested-value"],
)
def test_a_nul_character_is_refused(api, subscription, event, reason):
    answer = post_batch_with(api, event)

    assert_second_event_refused(answer, reason)


# --- 3. lone surrogates -------------------------------------------------------------------------

SURROGATE = "contains a lone surrogate (an unpaired \\ud800-\\udfff escape)"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (call("t\ud800"), f"transaction_id {SURROGATE}."),
        (call(properties={"model": "\ud800"}), f"properties: a property value {SURROGATE}."),
        (call(properties={"\udfff": 1}), f"properties: a property key {SURROGATE}."),
    ],
    ids=["transaction_id", "value", "key"],
)
def test_a_lone_surrogate_is_refused(api, subscription, event, reason):
    answer = post_batch_with(api, event)

    assert_second_event_refused(answer, reason)


def test_a_surrogate_pair_is_a_character_and_is_stored(api, subscription):
    # "\ud83d\ude00" in JSON is one character, 😀
    answer = post_batch_with(api, call("t😀", properties={"emoji": "😀"}))

    assert answer.status_code == 200, answer.content
    assert Event.objects.get(transaction_id="t😀").properties == {"emoji": "😀"}


def test_a_lone_surrogate_in_a_single_event_is_refused(api, subscription):
    answer = post_raw(api, ONE, json.dumps({"event": call(properties={"k": "\ud800"})}))

    error = assert_error(answer, 422, "validation_error")
    assert error["details"] == [
        {"index": 0, "errors": [f"properties: a property value {SURROGATE}."]}
    ]
    assert Event.objects.count() == 0


# --- 4. numbers that are not finite -------------------------------------------------------------


@pytest.mark.parametrize("number", ["1e309", "-1e400"])
def test_an_infinite_number_in_a_count_metrics_properties_is_refused(api, subscription, number):
    text = json.dumps({"events": [call("ok"), call(properties={"k": "NUMBER"})]})

    answer = post_raw(api, BATCH, text.replace('"NUMBER"', number))

    assert_second_event_refused(answer, "properties: numbers in properties must be finite.")


def test_an_infinite_number_in_a_sum_metrics_field_is_refused_once(api, subscription):
    text = json.dumps({"events": [call("ok"), call(code="tokens", properties={"tokens": "N"})]})

    answer = post_raw(api, BATCH, text.replace('"N"', "1e309"))

    assert_second_event_refused(answer, "properties: numbers in properties must be finite.")


# --- 5. deep nesting ----------------------------------------------------------------------------


def test_properties_nested_5000_deep_are_a_parse_error(api, subscription):
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    text = json.dumps({"events": [call("ok"), call(properties={})]})

    answer = post_raw(api, BATCH, text.replace('"properties": {}', f'"properties": {deep}'))

    error = assert_error(answer, 400, "parse_error")
    assert error["message"] == (
        "The request body is not valid JSON: JSON parse error - the document is nested too deeply."
    )
    assert Event.objects.count() == 0


def test_properties_nested_9_deep_are_refused(api, subscription):
    properties = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}  # 8 levels: stored
    deeper = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": [1]}}}}}}}}  # 9 levels

    answer = post_batch_with(api, call("t9", properties=deeper))

    assert_second_event_refused(
        answer, "properties: nested too deeply (at most 8 levels of objects and arrays)."
    )
    assert post_batch_with(api, call("t8", properties=properties)).status_code == 200


# --- 6. ids that are not strings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (call(external_subscription_id=["x"]), "external_subscription_id must be a string."),
        (
            {**call(external_subscription_id=None), "external_customer_id": {"a": 1}},
            "external_customer_id must be a string.",
        ),
        (call(code=["api_calls"]), "code must be a string."),
        (call(txn={"id": 1}), "transaction_id is required (a unique string per event)."),
    ],
    ids=["subscription-list", "customer-object", "code-list", "transaction-object"],
)
def test_an_id_that_is_not_a_string_is_refused(api, subscription, event, reason):
    answer = post_batch_with(api, event)

    assert_second_event_refused(answer, reason)


# --- 7. current usage ---------------------------------------------------------------------------


def test_a_nul_in_current_usages_query_string_is_400(api, subscription):
    answer = api.get("/api/v1/customers/acme/current_usage?external_subscription_id=a%00b")

    error = assert_error(answer, 400, "bad_request")
    assert "NUL" in error["message"]


def test_a_nul_in_current_usages_path_is_404(api, subscription):
    answer = api.get("/api/v1/customers/acme%00/current_usage?external_subscription_id=sub_acme")

    assert_error(answer, 404, "not_found")


def test_current_usage_without_external_subscription_id_says_it_is_missing(api, subscription):
    answer = api.get("/api/v1/customers/acme/current_usage")

    error = assert_error(answer, 422, "validation_error")
    assert error["message"] == (
        "The query parameter external_subscription_id is missing: send "
        "?external_subscription_id=<the subscription's external id>."
    )


# --- 8. the portal ------------------------------------------------------------------------------


def test_a_nul_in_a_portal_path_is_a_404_page(client, subscription):
    client.force_login(PortalMembershipFactory(customer=subscription.customer).user)

    answer = client.get("/portal/invoices/INV-000001%00/")

    assert answer.status_code == 404
    assert answer["Content-Type"].startswith("text/html")


def test_a_nul_in_a_portal_query_string_is_a_400_page(client, subscription):
    client.force_login(PortalMembershipFactory(customer=subscription.customer).user)

    answer = client.get("/portal/?page=%00")

    assert answer.status_code == 400


# --- unknown paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/nope"),
        ("post", "/api/v1/events/"),  # a trailing slash: no redirect, which would break a POST
        ("get", "/api/v1/customers/acme/usage"),
        ("get", "/api/v2/events"),
    ],
)
def test_an_unknown_api_path_is_a_json_404(api, db, method, path):
    answer = getattr(api, method)(path)

    error = assert_error(answer, 404, "not_found")
    assert error["message"].startswith(f"No API endpoint at {method.upper()} '{path}'.")


def test_an_unknown_api_path_is_a_json_404_without_a_key(client, db):
    assert_error(client.post("/api/v1/evnts", {}), 404, "not_found")


# --- the whole body -----------------------------------------------------------------------------


def test_a_body_that_is_not_utf8_is_a_parse_error(api, subscription):
    answer = api.post(BATCH, data=b'{"events": ["\xff"]}', content_type="application/json")

    assert_error(answer, 400, "parse_error")
    assert Event.objects.count() == 0


def test_a_form_body_is_415(api, subscription):
    answer = api.post(BATCH, data="events=1", content_type="application/x-www-form-urlencoded")

    assert_error(answer, 415, "unsupported_media_type")
    assert Event.objects.count() == 0
