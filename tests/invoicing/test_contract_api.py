"""The contract API: item versions, a seat change without a quote, a cancellation."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from invoicing.models import CreditNote, Invoice
from subscriptions.models import Subscription, SubscriptionChange
from tests.factories import day
from tests.invoicing.test_cancellations import bill, seats_subscription

ITEMS = "/api/v1/subscriptions/sub_acme/items"


def at(on: str):
    return time_machine.travel(f"{on} 10:00Z", tick=False)


def seats_id(subscription: Subscription) -> int:
    return subscription.items.get(name="Seats", ends_on=None).pk


def test_items_lists_the_versions_with_what_is_in_force_today(api, db):
    subscription = seats_subscription()
    bill("2026-01-01")
    with at("2026-01-10"):
        changed = api.post(
            f"{ITEMS}/{seats_id(subscription)}/quantity",
            {"quantity": "20", "effective_date": "2026-01-16", "reason": "New team"},
            format="json",
        )
        assert changed.status_code == 201, changed.json()
        before = api.get(ITEMS).json()
    with at("2026-01-20"):
        after = api.get(ITEMS).json()

    change_id = changed.json()["change"]["id"]
    assert [
        (i["name"], i["charge_code"], i["kind"], i["quantity"], i["starts_on"], i["ends_on"])
        for i in before["items"]
    ] == [
        ("Platform fee", subscription.items.get(name="Platform fee").charge.key, "fixed", "1",
         None, None),
        ("Seats", subscription.plan.charges.get(name="Seats").key, "fixed", "12", None,
         "2026-01-16"),
        ("Seats", subscription.plan.charges.get(name="Seats").key, "fixed", "20", "2026-01-16",
         None),
        ("API calls", subscription.plan.charges.get(name="API calls").key, "usage", "0", None,
         None),
    ]  # fmt: skip
    assert [i["in_force_today"] for i in before["items"]] == [True, True, False, True]
    assert [i["in_force_today"] for i in after["items"]] == [True, False, True, True]
    assert [i["change_id"] for i in before["items"]] == [None, None, change_id, None]
    assert before["revision"] == 1 and before["status"] == "active"


def test_set_quantity_answers_201_with_the_change_and_the_new_version(api, db):
    subscription = seats_subscription()
    bill("2026-01-01")

    with at("2026-01-10"):
        response = api.post(
            f"{ITEMS}/{seats_id(subscription)}/quantity",
            {
                "quantity": 20,
                "effective_date": "2026-01-16",
                "invoice_now": True,
                "reason": "New team",
                "revision": 0,
            },
            format="json",
        )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["change"] | {"id": None, "at": None} == {
        "id": None,
        "at": None,
        "kind": "quantity",
        "effective_date": "2026-01-16",
        "description": "Seats: 12 → 20 seats",
        "reason": "New team",
        "invoice_now": True,
        "source": "API (test client)",
    }
    assert (body["item"]["quantity"], body["item"]["starts_on"], body["revision"]) == (
        "20",
        "2026-01-16",
        1,
    )
    # Invoiced at once: 8 more seats × 30.00 × 16/31 days = 123.87
    invoice = Invoice.objects.get(change_id=body["change"]["id"])
    assert (invoice.number, invoice.total) == ("INV-000002", Decimal("123.87"))


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"quantity": "-1", "effective_date": "2026-01-16"}, "quantity", "at least 0"),
        ({"quantity": "abc", "effective_date": "2026-01-16"}, "quantity", "at least 0"),
        ({"quantity": "12", "effective_date": "2026-01-16"}, "quantity", "already has 12"),
        ({"quantity": "20", "effective_date": "16/01/2026"}, "effective_date", "YYYY-MM-DD"),
        ({"quantity": "20", "effective_date": "2027-01-01"}, "effective_date", "within the term"),
        (
            {"quantity": "20", "effective_date": "2025-12-31"},
            "effective_date",
            "within the term",
        ),
        ({"quantity": "20"}, "effective_date", "YYYY-MM-DD"),
        (
            {"quantity": "20", "effective_date": "2026-01-16", "invoice_now": "yes"},
            "invoice_now",
            "true or false",
        ),
    ],
)
def test_set_quantity_refuses_bad_input_with_422_naming_the_field(api, db, body, field, message):
    subscription = seats_subscription()
    bill("2026-01-01")

    with at("2026-01-10"):
        response = api.post(f"{ITEMS}/{seats_id(subscription)}/quantity", body, format="json")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"{field}: ") and message in error["message"]
    assert error["details"] == {"field": field}
    assert SubscriptionChange.objects.count() == 0


def test_set_quantity_refuses_a_date_before_the_period_in_progress_and_a_usage_item(api, db):
    subscription = seats_subscription()
    bill("2026-01-01")
    bill("2026-02-01")
    usage = subscription.items.get(name="API calls")

    with at("2026-02-10"):
        early = api.post(
            f"{ITEMS}/{seats_id(subscription)}/quantity",
            {"quantity": "20", "effective_date": "2026-01-20"},
            format="json",
        )
        metered = api.post(
            f"{ITEMS}/{usage.pk}/quantity",
            {"quantity": "20", "effective_date": "2026-02-16"},
            format="json",
        )
        unknown = api.post(
            f"{ITEMS}/999999/quantity",
            {"quantity": "20", "effective_date": "2026-02-16"},
            format="json",
        )

    assert early.status_code == 422
    assert early.json()["error"]["message"] == (
        "effective_date: The change cannot take effect before 2026-02-01, the start of the "
        "billing period in progress: earlier periods are invoiced (correct them with a credit "
        "note)."
    )
    assert metered.status_code == 422
    assert metered.json()["error"]["details"] == {"field": "item_id"}
    assert "is usage" in metered.json()["error"]["message"]
    assert unknown.status_code == 404
    assert SubscriptionChange.objects.count() == 0


def test_set_quantity_answers_409_on_a_stale_revision_and_a_cancelled_subscription(api, db):
    subscription = seats_subscription()
    bill("2026-01-01")
    seats = seats_id(subscription)
    with at("2026-01-10"):
        first = api.post(
            f"{ITEMS}/{seats}/quantity",
            {"quantity": "15", "effective_date": "2026-01-16", "revision": 0},
            format="json",
        )
        stale = api.post(
            f"{ITEMS}/{seats}/quantity",
            {"quantity": "14", "effective_date": "2026-01-20", "revision": 0},
            format="json",
        )
        cancelled = api.post(
            "/api/v1/subscriptions/sub_acme/cancel", {"reason": "Budget cut"}, format="json"
        )
        after = api.post(
            f"{ITEMS}/{first.json()['item']['id']}/quantity",
            {"quantity": "14", "effective_date": "2026-01-20"},
            format="json",
        )

    assert first.status_code == 201
    assert stale.status_code == 409
    assert (
        "changed since this was drafted (quantity change: Seats: 12 → 15 seats)"
        in (stale.json()["error"]["message"])
    )
    assert cancelled.status_code == 200
    assert after.status_code == 409
    assert "is canceled: only a live subscription can change" in after.json()["error"]["message"]
    assert SubscriptionChange.objects.count() == 2


def test_cancel_answers_200_with_the_credit_note_issued_at_once(api, db):
    seats_subscription()
    bill("2026-01-01")

    with at("2026-01-10"):
        response = api.post(
            "/api/v1/subscriptions/sub_acme/cancel",
            {"effective_date": "2026-01-16", "reason": "Moving to a competitor"},
            format="json",
        )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["canceled_on"]) == ("canceled", "2026-01-16")
    assert body["change"]["kind"] == "cancellation"
    assert body["change"]["reason"] == "Moving to a competitor"
    assert body["change"]["source"] == "API (test client)"
    assert body["credit_notes"] == [
        {
            "number": "CN-000001",
            "invoice": "INV-000001",
            "reason": "Cancelled from Jan 16, 2026: unused time of Jan 1 – Jan 31, 2026",
            "total": "443.87",
        }
    ]
    subscription = Subscription.objects.get()
    assert subscription.canceled_at == dt.datetime(2026, 1, 10, 10, tzinfo=dt.UTC)
    assert subscription.canceled_by is None and subscription.cancel_reason == (
        "Moving to a competitor"
    )
    assert CreditNote.objects.get().change.pk == body["change"]["id"]


def test_cancel_refuses_without_a_reason_or_a_date_outside_the_term(api, db):
    seats_subscription()
    bill("2026-01-01")
    with at("2026-01-10"):
        no_reason = api.post(
            "/api/v1/subscriptions/sub_acme/cancel", {"effective_date": "2026-01-16"}, format="json"
        )
        outside = api.post(
            "/api/v1/subscriptions/sub_acme/cancel",
            {"effective_date": "2028-01-01", "reason": "x"},
            format="json",
        )
        unknown = api.post("/api/v1/subscriptions/nope/cancel", {"reason": "x"}, format="json")

    assert no_reason.status_code == 422
    assert no_reason.json()["error"]["details"] == {"field": "reason"}
    assert outside.status_code == 422
    assert outside.json()["error"]["message"].startswith("effective_date: The change must take")
    assert unknown.status_code == 404
    assert Subscription.objects.get().status == "active"


def test_the_contract_endpoints_need_an_api_key(db):
    seats_subscription()
    client = APIClient()
    assert client.get(ITEMS).status_code == 401
    assert client.post("/api/v1/subscriptions/sub_acme/cancel", {"reason": "x"}).status_code == 401
    assert Subscription.objects.get().status == "active"


def test_the_schema_documents_the_contract_endpoints(client, db):
    paths = client.get("/api/schema/?format=json").json()["paths"]

    items = paths["/api/v1/subscriptions/{external_id}/items"]["get"]
    quantity = paths["/api/v1/subscriptions/{external_id}/items/{item_id}/quantity"]["post"]
    cancel = paths["/api/v1/subscriptions/{external_id}/cancel"]["post"]
    assert set(items["responses"]) == {"200", "400", "401", "404", "429"}
    assert set(quantity["responses"]) == {"201", "400", "401", "404", "409", "415", "422", "429"}
    assert set(cancel["responses"]) == {"200", "400", "401", "404", "409", "415", "422", "429"}
    assert quantity["security"] == [{"BearerAuth": []}]
    assert day("2026-01-16")  # the examples' date, as in the docs


def test_the_schema_request_examples_are_accepted(client, api, db):
    schema = client.get("/api/schema/?format=json").json()

    def example(path: str) -> dict:
        content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        (value,) = [e["value"] for e in content["examples"].values()]
        return value

    subscription = seats_subscription()
    Subscription.objects.filter(pk=subscription.pk).update(external_id="sub_acme_1")
    bill("2026-01-01")
    with at("2026-01-10"):
        seats = api.post(
            f"/api/v1/subscriptions/sub_acme_1/items/{seats_id(subscription)}/quantity",
            example("/api/v1/subscriptions/{external_id}/items/{item_id}/quantity"),
            format="json",
        )
        cancel = api.post(
            "/api/v1/subscriptions/sub_acme_1/cancel",
            example("/api/v1/subscriptions/{external_id}/cancel"),
            format="json",
        )

    assert (seats.status_code, cancel.status_code) == (201, 200), (seats.json(), cancel.json())


def test_a_post_to_an_unknown_contract_path_is_a_json_404(api, db):
    response = api.post("/api/v1/subscriptions/sub_acme/items/1.5/quantity", {}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
