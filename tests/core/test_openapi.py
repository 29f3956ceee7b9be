"""The OpenAPI schema: served, and truthful (auth, typed bodies, statuses, examples that work)."""

from decimal import Decimal

import pytest

from metering.models import Event
from tests.factories import (
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    TokensMetricFactory,
    subscribe,
)


def test_openapi_schema_documents_the_event_api(client, db):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/events", "/api/v1/events/batch"} <= paths.keys()
    assert "/api/v1/customers/{external_customer_id}/current_usage" in paths
    assert "/api/v1/customers/{external_customer_id}/upcoming_invoice" in paths


def test_api_docs_page_is_served_without_a_cdn(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"/static/drf_spectacular_sidecar/" in response.content


# --- the schema describes the API truthfully ---------------------------------------------------

OPERATIONS = {
    ("post", "/api/v1/events"): {"200", "400", "401", "413", "415", "422", "429"},
    ("post", "/api/v1/events/batch"): {"200", "400", "401", "413", "415", "422", "429"},
    ("get", "/api/v1/customers/{external_customer_id}/current_usage"): {
        "200",
        "400",
        "401",
        "404",
        "422",
        "429",
    },
    ("get", "/api/v1/customers/{external_customer_id}/upcoming_invoice"): {
        "200",
        "400",
        "401",
        "404",
        "422",
        "429",
    },
}


@pytest.fixture
def schema(client, db) -> dict:
    return client.get("/api/schema/?format=json").json()


def test_the_schema_declares_the_bearer_scheme_on_every_operation(schema):
    assert schema["components"]["securitySchemes"] == {
        "BearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key made with `manage.py create_api_key`.",
        }
    }
    for (method, path), _ in OPERATIONS.items():
        assert schema["paths"][path][method]["security"] == [{"BearerAuth": []}]


def test_every_operation_declares_its_statuses_with_typed_bodies(schema):
    for (method, path), statuses in OPERATIONS.items():
        responses = schema["paths"][path][method]["responses"]
        assert set(responses) == statuses, path
        for status, response in responses.items():
            ref = response["content"]["application/json"]["schema"]["$ref"]
            if status != "200":
                assert ref == "#/components/schemas/Error", (path, status)
        assert "Retry-After" in responses["429"]["headers"]
    components = schema["components"]["schemas"]
    assert components["Error"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(components["ErrorBody"]["required"]) == {"code", "message", "details"}
    assert components["EventBatchIn"]["properties"]["events"]["items"] == {
        "$ref": "#/components/schemas/Event"
    }
    assert set(components["Event"]["required"]) == {"transaction_id", "code"}
    assert set(components["CustomerUsage"]["required"]) >= {
        "from_datetime",
        "to_datetime",
        "issuing_date",
        "currency",
        "amount_cents",
        "total_amount_cents",
        "taxes_amount_cents",
        "charges_usage",
    }
    assert set(components["CurrentUsageAnswer"]["required"]) == {"customer_usage", "estimated_bill"}
    assert set(components["UpcomingInvoice"]["required"]) >= {
        "billing_date",
        "period_start",
        "period_end",
        "lines",
        "subtotal",
        "subtotal_cents",
        "tax_amount",
        "tax_amount_cents",
        "total",
        "total_cents",
    }
    assert components["UpcomingInvoice"]["properties"]["lines"]["items"] == {
        "$ref": "#/components/schemas/UpcomingLine"
    }


def test_the_upcoming_invoice_example_is_its_schema_and_its_arithmetic(schema):
    from invoicing.api import UPCOMING_EXAMPLE

    operation = schema["paths"]["/api/v1/customers/{external_customer_id}/upcoming_invoice"]["get"]
    content = operation["responses"]["200"]["content"]["application/json"]
    (example,) = content["examples"].values()
    assert example["value"] == UPCOMING_EXAMPLE
    body = UPCOMING_EXAMPLE["upcoming_invoice"]
    amounts = [Decimal(line["amount"]) for line in body["lines"]]
    assert sum(amounts) == Decimal(body["subtotal"]) == Decimal("1050.00")
    assert Decimal(body["subtotal"]) + Decimal(body["tax_amount"]) == Decimal(body["total"])
    assert [line["amount_cents"] for line in body["lines"]] == [int(a * 100) for a in amounts]


def test_every_request_example_of_the_schema_is_accepted(schema, api, db):
    # Given what the examples refer to: sub_acme_1, api_calls and tokens
    MetricFactory()
    TokensMetricFactory()
    subscribe(customer=CustomerFactory(), plan=PlanFactory(), external_id="sub_acme_1")
    examples = [
        (path, example["value"])
        for path, item in schema["paths"].items()
        for operation in item.values()
        for example in operation.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("examples", {})
        .values()
    ]
    assert {path for path, _ in examples} == {
        "/api/v1/events",
        "/api/v1/events/batch",
        # Posted by tests/invoicing/test_contract_api.py (they need a contract on a date)
        "/api/v1/subscriptions/{external_id}/items/{item_id}/quantity",
        "/api/v1/subscriptions/{external_id}/cancel",
        # Posted by tests/receivables/test_payments_api.py (it needs invoices on a date)
        "/api/v1/payments",
    }

    for path, body in examples:
        if "{" in path or path == "/api/v1/payments":
            continue
        answer = api.post(path, body, format="json")

        assert answer.status_code == 200, (path, answer.json())
    assert set(Event.objects.values_list("transaction_id", flat=True)) == {"evt_0001", "evt_0002"}
