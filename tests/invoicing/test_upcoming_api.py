"""GET /api/v1/customers/<id>/upcoming_invoice and current usage's estimated bill."""

from decimal import Decimal

import time_machine
from rest_framework.test import APIClient

from invoicing.models import Invoice
from tests.invoicing.test_upcoming import subscription  # noqa: F401 (a fixture)

D = Decimal
URL = "/api/v1/customers/acme/upcoming_invoice"


@time_machine.travel("2026-01-20 09:00Z", tick=False)
def test_the_upcoming_invoice_answers_lines_and_totals_in_strings_and_cents(api, subscription):  # noqa: F811
    answer = api.get(URL, {"external_subscription_id": "sub_acme"})

    assert answer.status_code == 200, answer.content
    body = answer.json()["upcoming_invoice"]
    lines = body.pop("lines")
    assert body == {
        "external_customer_id": "acme",
        "external_subscription_id": "sub_acme",
        "currency": "USD",
        "currency_minor_units": 2,
        "billing_date": "2026-02-01",
        "period_start": "2026-01-01",
        "period_end": "2026-02-01",
        "subtotal": "1130.00",
        "subtotal_cents": 113000,
        "tax_rate": "8.25",
        "tax_amount": "93.23",  # 8.25 % of 1,130.00 = 93.225, rounded once
        "tax_amount_cents": 9323,
        "total": "1223.23",
        "total_cents": 122323,
    }
    assert [
        (
            line["kind"],
            line["description"],
            line["period_start"],
            line["quantity"],
            line["amount"],
            line["amount_cents"],
        )
        for line in lines
    ] == [
        ("usage", "API calls", "2026-01-01", "400", "340.00", 34000),
        ("true_up", "API calls: minimum commitment true-up", "2026-01-01", "0", "260.00", 26000),
        ("credit", "Prepaid credit applied (0 USD left)", "2026-01-01", "0", "-50.00", -5000),
        ("fee", "Support", "2026-01-01", "1", "80.00", 8000),
        ("fee", "Platform fee", "2026-02-01", "1", "500.00", 50000),
    ]
    assert [step["description"] for step in lines[0]["explanation"]] == [
        "tier 1–100: 100 × 1",
        "tier 101–500: 300 × 0.8",
    ]
    assert lines[1]["explanation"] == [
        {
            "description": "minimum commitment 600: the period's charge 600.00, rounded once, "
            "− 340.00 on the usage line",
            "subtotal": "260.00",
        }
    ]
    assert Invoice.objects.count() == 1  # January's, made on Jan 1: the preview saved nothing


@time_machine.travel("2026-01-20 09:00Z", tick=False)
def test_current_usage_carries_the_upcoming_invoices_estimated_bill(api, subscription):  # noqa: F811
    answer = api.get(
        "/api/v1/customers/acme/current_usage", {"external_subscription_id": "sub_acme"}
    )

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["customer_usage"]["amount"] == "600.00"  # Lago's usage: 340.00 + 260.00 minimum
    assert body["estimated_bill"] == {
        "billing_date": "2026-02-01",
        "subtotal": "1130.00",
        "subtotal_cents": 113000,
        "tax_rate": "8.25",
        "tax": "93.23",
        "tax_cents": 9323,
        "total": "1223.23",
        "total_cents": 122323,
    }


def test_upcoming_invoice_errors_have_the_api_error_shape(api, subscription):  # noqa: F811
    cases = [
        (URL, {}, 422, "validation_error"),
        ("/api/v1/customers/nobody/upcoming_invoice", {"external_subscription_id": "x"}, 404, None),
        (URL, {"external_subscription_id": "sub_nope"}, 404, "not_found"),
    ]
    with time_machine.travel("2026-01-20 09:00Z", tick=False):
        for url, query, status, code in cases:
            answer = api.get(url, query)
            assert answer.status_code == status, (url, answer.content)
            assert set(answer.json()["error"]) == {"code", "message", "details"}
            assert code is None or answer.json()["error"]["code"] == code
    with time_machine.travel("2026-04-02 09:00Z", tick=False):  # after the term
        answer = api.get(URL, {"external_subscription_id": "sub_acme"})
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == (
        "Subscription 'sub_acme' has no billing period in progress today."
    )
    assert APIClient().get(URL, {"external_subscription_id": "sub_acme"}).status_code == 401
    answer = api.get(URL + "?external_subscription_id=a%00b")
    assert answer.status_code == 400
