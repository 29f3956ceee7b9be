"""The payments API: a payment recorded once per idempotency key, applied oldest due date first
or as told, the rest on account; the customer's currency; every bad field refused with what to
send and nothing written; payments and a customer's balance read back; the schema."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from rest_framework.test import APIClient

from core.services import api_key_create
from invoicing.balance import credit_balance
from invoicing.models import CreditBalanceEntry, Invoice
from receivables.api import PAYMENT_ANSWER_EXAMPLE, PAYMENT_EXAMPLE
from receivables.models import Payment, PaymentAllocation
from receivables.services import allocation_unapply, payment_record
from tests.factories import CustomerFactory, PlanFactory, day, subscribe

D = Decimal
PAYMENTS = "/api/v1/payments"
KEY = PAYMENT_ANSWER_EXAMPLE["payment"]["idempotency_key"]


@pytest.fixture(autouse=True)
def today():
    """Mar 2, 2026: INV-000001 (due Feb 14) is overdue, INV-000002 (due Mar 16) is not."""
    with time_machine.travel("2026-03-02 10:00Z", tick=False):
        yield


def customer_with_subscription(external_id: str, name: str, currency: str = "USD"):
    customer = CustomerFactory(external_id=external_id, name=name, currency=currency)
    subscribe(customer=customer, plan=PlanFactory(currency=currency), external_id=f"sub_{name}")
    return customer


def invoice(customer, number: str, total: str, issued: str, due: str) -> Invoice:
    """A finalized invoice with nothing paid yet (one per billing date of the subscription)."""
    return Invoice.objects.create(
        customer=customer,
        subscription=customer.subscriptions.get(),
        billing_date=day(issued),
        currency=customer.currency,
        status=Invoice.Status.FINALIZED,
        number=number,
        issue_date=day(issued),
        due_date=day(due),
        subtotal=D(total),
        total=D(total),
    )


@pytest.fixture
def acme(db):
    """Acme (USD) owes INV-000001, 100.00 due Feb 14, and INV-000002, 100.00 due Mar 16."""
    customer = customer_with_subscription("acme", "Acme")
    invoice(customer, "INV-000001", "100.00", "2026-01-15", "2026-02-14")
    invoice(customer, "INV-000002", "100.00", "2026-02-14", "2026-03-16")
    return customer


def open_amounts(customer) -> dict[str, Decimal]:
    return {i.number: i.open_amount for i in customer.invoices.order_by("number")}


def written() -> tuple:
    """Everything a payment request can write."""
    return (
        Payment.objects.count(),
        PaymentAllocation.objects.count(),
        CreditBalanceEntry.objects.count(),
        sorted(Invoice.objects.values_list("number", "paid_amount", "status")),
    )


def post(api, body: dict, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(PAYMENTS, body, format="json", **headers)


# --- recording --------------------------------------------------------------------------------


def test_a_payment_pays_the_oldest_due_first_and_the_rest_goes_on_account(api, acme):
    # Given Acme owes 100.00 on each of two invoices

    # When the schema's example (250.00 by wire, no allocations) is posted with a key
    response = post(api, PAYMENT_EXAMPLE, KEY)

    # Then both invoices are paid and 50.00 is on account: the answer is the schema's example
    assert response.status_code == 201, response.json()
    body = response.json()
    payment = Payment.objects.get()
    assert body["payment"]["id"] == payment.pk
    assert body | {"payment": body["payment"] | {"id": 1, "created_at": None}} == (
        PAYMENT_ANSWER_EXAMPLE
        | {"payment": PAYMENT_ANSWER_EXAMPLE["payment"] | {"created_at": None}}
    )
    assert open_amounts(acme) == {"INV-000001": D("0.00"), "INV-000002": D("0.00")}
    assert set(acme.invoices.values_list("status", flat=True)) == {Invoice.Status.PAID}
    assert credit_balance(acme) == D("50.00")
    assert (payment.currency, payment.method, payment.idempotency_key) == (
        "USD",
        "bank_transfer",
        KEY,
    )
    assert payment.created_by is None


def test_the_oldest_due_date_is_paid_first_whatever_the_order_invoices_were_made(api, acme):
    # Given a third invoice, made last but due first (Jan 31)
    invoice(acme, "INV-000003", "40.00", "2026-01-01", "2026-01-31")

    # When 150.00 is paid without allocations
    response = post(api, {"external_customer_id": "acme", "amount": "150.00",
                          "received_on": "2026-03-01"})  # fmt: skip

    # Then INV-000003 (due Jan 31) 40.00, INV-000001 (Feb 14) 100.00, INV-000002 (Mar 16) the
    # last 10.00 of it, and nothing on account
    assert response.status_code == 201, response.json()
    answer = response.json()["payment"]
    assert [(a["invoice"], a["amount"]) for a in answer["allocations"]] == [
        ("INV-000003", "40.00"),
        ("INV-000001", "100.00"),
        ("INV-000002", "10.00"),
    ]
    assert (answer["applied"], answer["on_account"]) == ("150.00", "0.00")
    assert open_amounts(acme) == {
        "INV-000001": D("0.00"),
        "INV-000002": D("90.00"),
        "INV-000003": D("0.00"),
    }
    assert response.json()["credit_balance"] == {
        "currency": "USD",
        "amount": "0.00",
        "amount_cents": 0,
    }


def test_explicit_allocations_pay_what_they_name_and_the_rest_goes_on_account(api, acme):
    # When 120.00 is paid, 80.00 of it to INV-000002 (not the oldest)
    response = post(
        api,
        {
            "external_customer_id": "acme",
            "amount": "120.00",
            "currency": "usd",
            "received_on": "2026-03-02",
            "method": "check",
            "reference": "Check 1042",
            "allocations": [{"invoice": "INV-000002", "amount": "80.00"}],
        },
    )

    # Then INV-000002 has 20.00 left, INV-000001 is untouched, 40.00 is on account
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["payment"]["allocations"] == [
        {"invoice": "INV-000002", "amount": "80.00", "amount_cents": 8000}
    ]
    assert (body["payment"]["on_account"], body["payment"]["on_account_cents"]) == ("40.00", 4000)
    assert (body["payment"]["method"], body["payment"]["reference"]) == ("check", "Check 1042")
    assert body["credit_balance"]["amount"] == "40.00"
    assert open_amounts(acme) == {"INV-000001": D("100.00"), "INV-000002": D("20.00")}
    assert body["payment"]["idempotency_key"] is None


def test_apply_false_keeps_all_of_it_on_account(api, acme):
    response = post(api, {"external_customer_id": "acme", "amount": "75.50",
                          "received_on": "2026-03-02", "apply": False})  # fmt: skip

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["payment"]["allocations"], body["payment"]["applied"]) == ([], "0.00")
    assert body["payment"]["on_account"] == "75.50"
    assert body["credit_balance"] == {"currency": "USD", "amount": "75.50", "amount_cents": 7550}
    assert open_amounts(acme) == {"INV-000001": D("100.00"), "INV-000002": D("100.00")}


def test_a_currency_without_minor_units_is_answered_in_whole_units(api, db):
    # Given a customer billed in yen with one invoice of ¥12,000
    customer = customer_with_subscription("tanaka", "Tanaka", currency="JPY")
    invoice(customer, "INV-000010", "12000", "2026-02-01", "2026-03-03")

    # When ¥5,000 is paid
    response = post(api, {"external_customer_id": "tanaka", "amount": "5000",
                          "received_on": "2026-03-02"})  # fmt: skip

    # Then
    assert response.status_code == 201, response.json()
    answer = response.json()["payment"]
    assert (answer["amount"], answer["amount_cents"], answer["currency_minor_units"]) == (
        "5000",
        5000,
        0,
    )
    assert answer["allocations"] == [
        {"invoice": "INV-000010", "amount": "5000", "amount_cents": 5000}
    ]
    assert open_amounts(customer) == {"INV-000010": D("7000")}


# --- idempotency ------------------------------------------------------------------------------


def test_a_repeated_request_with_the_same_key_records_the_payment_once(api, acme):
    # Given a payment recorded with a key
    first = post(api, PAYMENT_EXAMPLE, KEY)
    assert first.status_code == 201
    before = written()

    # When the client retries it (a timeout on its side), header or body field alike
    again = post(api, PAYMENT_EXAMPLE, KEY)
    in_body = post(api, PAYMENT_EXAMPLE | {"idempotency_key": KEY})

    # Then the same payment is answered with 200, and nothing more is written
    assert (again.status_code, in_body.status_code) == (200, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert again.json() == first.json() == in_body.json()
    assert written() == before
    assert credit_balance(acme) == D("50.00")


def test_a_repeat_that_names_an_invoice_the_first_request_paid_is_still_answered_200(api, acme):
    # Given a payment that paid INV-000001 in full, with a key
    body = GOOD | {"amount": "100.00", "allocations": [{"invoice": "INV-000001", "amount": "100"}]}
    first = post(api, body, "retry-1")
    before = written()

    # When it is sent again (INV-000001 has nothing open any more)
    again = post(api, body, "retry-1")

    # Then the first payment is the answer, not a refusal for the paid invoice
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert written() == before
    assert open_amounts(acme) == {"INV-000001": D("0.00"), "INV-000002": D("100.00")}


def test_the_same_key_with_other_figures_is_a_conflict_and_records_nothing(api, acme):
    # Given a payment of 250.00 recorded with a key
    assert post(api, PAYMENT_EXAMPLE, KEY).status_code == 201
    before = written()

    # When the key comes again with another amount
    response = post(api, PAYMENT_EXAMPLE | {"amount": "260.00"}, KEY)

    # Then
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "conflict",
        "message": "This idempotency key was used for another payment ($250.00 from Acme on "
        "Mar 2, 2026): use a new key for a new payment.",
        "details": None,
    }
    assert written() == before


def test_a_key_in_the_header_and_another_in_the_body_is_refused(api, acme):
    response = post(api, PAYMENT_EXAMPLE | {"idempotency_key": "other"}, KEY)

    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": "idempotency_key"}
    assert "differ: send one of them" in response.json()["error"]["message"]
    assert written()[:3] == (0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_two_requests_with_the_same_key_at_the_same_moment_record_one_payment():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent inserts of one key are tested on PostgreSQL")

    # Given Acme's two invoices, and a client that sends its payment twice at once
    customer = customer_with_subscription("acme", "Acme")
    invoice(customer, "INV-000001", "100.00", "2026-01-15", "2026-02-14")
    invoice(customer, "INV-000002", "100.00", "2026-02-14", "2026-03-16")
    raw_key = api_key_create(name="concurrent")[1]
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def send() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        try:
            barrier.wait(timeout=10)
            response = post(client, PAYMENT_EXAMPLE, KEY)
            outcomes.append((response.status_code, response.json()["payment"]["id"]))
        except Exception as exc:
            outcomes.append(repr(exc))
        finally:
            connection.close()

    # When both arrive together
    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then one payment is recorded, answered to both (201, then 200), applied once
    payment = Payment.objects.get()
    assert sorted(outcomes, key=str) == [(200, payment.pk), (201, payment.pk)]
    assert sorted(PaymentAllocation.objects.values_list("amount", flat=True)) == [
        D("50.00"),
        D("100.00"),
        D("100.00"),
    ]
    assert open_amounts(customer) == {"INV-000001": D("0.00"), "INV-000002": D("0.00")}
    assert credit_balance(customer) == D("50.00")


# --- refusals: the field, what to send, nothing written ------------------------------------------

GOOD = {"external_customer_id": "acme", "amount": "120.00", "received_on": "2026-03-02"}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"external_customer_id": None}, "external_customer_id", "give the external id"),
        ({"external_customer_id": "nobody"}, "external_customer_id",
         "no customer has external id 'nobody'"),
        ({"amount": None}, "amount", 'give the amount received, such as "250.00"'),
        ({"amount": "12O.00"}, "amount", "not '12O.00'"),
        ({"amount": 120.5}, "amount", "a JSON number with a fraction can lose cents"),
        ({"amount": "NaN"}, "amount", "decimal string"),
        ({"amount": "1e20"}, "amount", "too large"),
        ({"amount": "0"}, "amount", "The payment amount must be above zero."),
        ({"amount": "-5.00"}, "amount", "The payment amount must be above zero."),
        ({"amount": "120.001"}, "amount", "(120.001) has more decimals than USD allows"),
        ({"currency": "EUR"}, "currency",
         "Acme is billed in USD: record the payment in USD, not EUR."),
        ({"currency": 840}, "currency", "give an ISO 4217 code such as USD"),
        ({"currency": " "}, "currency", "give an ISO 4217 code such as USD, or leave it out"),
        ({"received_on": None}, "received_on", "as YYYY-MM-DD"),
        ({"received_on": "02/03/2026"}, "received_on", "not '02/03/2026'"),
        ({"received_on": "2026-03-03"}, "received_on", "cannot be received in the future"),
        ({"method": "cash"}, "method", "give one of bank_transfer, card, check, other"),
        ({"reference": "x" * 201}, "reference", "at most 200 characters"),
        ({"reference": 42}, "reference", "give text"),
        ({"apply": "no"}, "apply", "give true or false"),
        ({"allocation": []}, "allocation", "this field is unknown (a typo?)"),
        ({"allocations": {"INV-000001": "10"}}, "allocations", "give a list of"),
        ({"allocations": []}, "allocations", "the list is empty"),
        ({"allocations": [{"invoice": "INV-000001"}]}, "allocations[0]", "give a list of"),
        ({"allocations": [{"invoice": 1, "amount": "10"}]}, "allocations[0].invoice",
         "give the invoice's number"),
        ({"allocations": [{"invoice": "INV-000001", "amount": "ten"}]},
         "allocations[0].amount", "decimal string"),
        ({"allocations": [{"invoice": "INV-000001", "amount": "10"},
                          {"invoice": "INV-000001", "amount": "5"}]},
         "allocations[1].invoice", "invoice INV-000001 is named twice"),
        ({"allocations": [{"invoice": "INV-000001", "amount": "10"},
                          {"invoice": "INV-999999", "amount": "5"}]},
         "allocations[1].invoice", "customer 'acme' has no invoice INV-999999"),
        ({"allocations": [{"invoice": "INV-000001", "amount": "100.01"}]}, "allocations",
         "Invoice INV-000001 has $100.00 open: $100.01 is more."),
        ({"amount": "150.00", "allocations": [{"invoice": "INV-000001", "amount": "100.00"},
                                              {"invoice": "INV-000002", "amount": "60.00"}]},
         "allocations",
         "The amounts to apply add up to $160.00, more than the payment's $150.00."),
        ({"allocations": [{"invoice": "INV-000001", "amount": "0.005"}]}, "allocations",
         "has more decimals than USD allows"),
        ({"apply": False, "allocations": [{"invoice": "INV-000001", "amount": "10"}]}, "apply",
         "false keeps the whole payment on account"),
        ({"idempotency_key": "k" * 101}, "idempotency_key", "give 1 to 100 characters"),
        ({"idempotency_key": "  "}, "idempotency_key", "give 1 to 100 characters"),
    ],
)  # fmt: skip
def test_a_bad_field_is_refused_with_what_to_send_and_nothing_is_written(
    api, acme, change, field, message
):
    # Given Acme's two open invoices
    before = written()
    body = {k: v for k, v in (GOOD | change).items() if v is not None}

    # When a payment with one bad field is posted
    response = post(api, body)

    # Then 422 names the field and says what to do; nothing is recorded
    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert (error["code"], error["details"]) == ("validation_error", {"field": field})
    assert error["message"].startswith(f"{field}: ")
    assert message in error["message"]
    assert written() == before


def test_another_customers_invoice_is_not_found_and_nothing_is_written(api, acme):
    # Given Globex's invoice INV-000020
    globex = customer_with_subscription("globex", "Globex")
    invoice(globex, "INV-000020", "300.00", "2026-02-01", "2026-03-03")
    before = written()

    # When Acme's payment names it
    response = post(api, GOOD | {"allocations": [{"invoice": "INV-000020", "amount": "10"}]})

    # Then
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        "allocations[0].invoice: customer 'acme' has no invoice INV-000020."
    )
    assert written() == before


def test_a_paid_invoice_cannot_take_more(api, acme):
    # Given INV-000001 paid in full
    payment_record(
        customer=acme,
        amount=D("100.00"),
        currency="USD",
        received_on=day("2026-03-01"),
        allocations={acme.invoices.get(number="INV-000001"): D("100.00")},
    )
    before = written()

    # When a payment names it again
    response = post(api, GOOD | {"allocations": [{"invoice": "INV-000001", "amount": "10"}]})

    # Then
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        "allocations: Invoice INV-000001 has nothing left to pay."
    )
    assert written() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [(["a", "list"], "Send a JSON object with the payment's fields.")],
)
def test_a_body_that_is_not_an_object_is_refused(api, acme, body, message):
    response = api.post(PAYMENTS, body, format="json")

    assert (response.status_code, response.json()["error"]["message"]) == (422, message)


def test_a_body_that_is_not_json_is_refused(api, acme):
    form = api.post(PAYMENTS, {"amount": "1"})  # multipart
    broken = api.generic("POST", PAYMENTS, "{not json", content_type="application/json")

    assert form.status_code == 415
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "parse_error")
    assert written()[:3] == (0, 0, 0)


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", PAYMENTS),
        ("get", PAYMENTS),
        ("get", f"{PAYMENTS}/1"),
        ("get", "/api/v1/customers/acme/balance"),
    ],
)
def test_every_payments_endpoint_requires_an_api_key(acme, method, path):
    anonymous = getattr(APIClient(), method)(path, GOOD, format="json")
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Bearer not-a-key")
    unknown = getattr(wrong, method)(path, GOOD, format="json")

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"] == (
        "Authentication required: send 'Authorization: Bearer <api key>'."
    )
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "authentication_failed"
    assert written()[:3] == (0, 0, 0)


# --- reading payments -------------------------------------------------------------------------


def test_a_payment_is_read_back_as_it_stands_now(api, acme):
    # Given the example payment, then its application to INV-000002 taken back
    created = post(api, PAYMENT_EXAMPLE, KEY).json()
    payment = Payment.objects.get()
    allocation_unapply(
        allocation=payment.allocations.get(invoice__number="INV-000002"), reason="Wrong invoice"
    )

    # When it is read
    response = api.get(f"{PAYMENTS}/{payment.pk}")

    # Then INV-000002's 100.00 is on account with the 50.00: 150.00 of credit
    assert response.status_code == 200
    body = response.json()
    assert body["payment"]["allocations"] == [created["payment"]["allocations"][0]]
    assert (body["payment"]["applied"], body["payment"]["on_account"]) == ("100.00", "150.00")
    assert body["credit_balance"]["amount"] == "150.00"


def test_an_unknown_payment_is_a_404(api, db):
    response = api.get(f"{PAYMENTS}/999")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No payment has id 999."


def pay(customer, amount: str, received: str, key: str | None = None) -> Payment:
    return payment_record(
        customer=customer,
        amount=D(amount),
        currency=str(customer.currency),
        received_on=day(received),
        auto_apply=False,
        idempotency_key=key,
    )


def test_payments_are_listed_newest_first_a_page_at_a_time(api, acme, django_assert_num_queries):
    # Given three payments of Acme and one of Globex
    globex = customer_with_subscription("globex", "Globex")
    first, second, third = (
        pay(acme, "10.00", "2026-02-01"),
        pay(acme, "20.00", "2026-02-15"),
        pay(acme, "30.00", "2026-03-01"),
    )
    other = pay(globex, "40.00", "2026-02-20")

    # When Acme's are read two a page
    url = f"{PAYMENTS}?external_customer_id=acme&per_page=2"
    api.get(PAYMENTS)  # the key's first use is stamped once (last_used_at)
    with django_assert_num_queries(5):  # key, customer, count, payments, their allocations
        page_1 = api.get(url).json()
    page_2 = api.get(f"{url}&page=2").json()
    everyone = api.get(PAYMENTS).json()
    beyond = api.get(f"{url}&page=3").json()

    # Then newest received first, with the pages' meta
    assert [p["id"] for p in page_1["payments"]] == [third.pk, second.pk]
    assert page_1["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 2,
        "total_count": 3,
    }
    assert [p["id"] for p in page_2["payments"]] == [first.pk]
    assert (page_2["meta"]["next_page"], page_2["meta"]["prev_page"]) == (None, 1)
    assert page_1["payments"][0]["on_account"] == "30.00"
    assert [p["id"] for p in everyone["payments"]] == [third.pk, other.pk, second.pk, first.pk]
    assert everyone["meta"]["total_count"] == 4
    assert (beyond["payments"], beyond["meta"]["prev_page"]) == ([], 2)


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("external_customer_id=nobody", 404, "No customer has external id 'nobody'."),
        ("per_page=101", 422, "per_page: give a whole number, 1 to 100, not '101'."),
        ("per_page=0", 422, "per_page: give a whole number, 1 to 100, not '0'."),
        ("page=two", 422, "page: give a whole number, 1 or more, not 'two'."),
    ],
)
def test_a_bad_list_query_says_what_to_send(api, db, query, status, message):
    response = api.get(f"{PAYMENTS}?{query}")

    assert (response.status_code, response.json()["error"]["message"]) == (status, message)


# --- the customer's balance --------------------------------------------------------------------


def test_the_balance_shows_open_overdue_and_credit(api, acme):
    # Given 30.00 paid to INV-000001 and 25.00 kept on account (Mar 2: INV-000001 is overdue)
    post(
        api, GOOD | {"amount": "30.00", "allocations": [{"invoice": "INV-000001", "amount": "30"}]}
    )
    post(api, GOOD | {"amount": "25.00", "apply": False})

    # When Acme's balance is read
    response = api.get("/api/v1/customers/acme/balance")

    # Then 170.00 open on two invoices, 70.00 of it overdue on one, 25.00 of credit
    assert response.status_code == 200
    assert response.json() == {
        "balance": {
            "external_customer_id": "acme",
            "currency": "USD",
            "as_of": "2026-03-02",
            "balances": [
                {
                    "currency": "USD",
                    "open": "170.00",
                    "open_cents": 17000,
                    "open_invoices": 2,
                    "overdue": "70.00",
                    "overdue_cents": 7000,
                    "overdue_invoices": 1,
                    "credit_balance": "25.00",
                    "credit_balance_cents": 2500,
                }
            ],
        }
    }


def test_a_customer_who_owes_nothing_has_a_zero_balance_and_an_unknown_one_is_a_404(api, db):
    customer_with_subscription("initech", "Initech", currency="EUR")

    quiet = api.get("/api/v1/customers/initech/balance")
    unknown = api.get("/api/v1/customers/nobody/balance")

    assert quiet.json()["balance"]["balances"] == [
        {
            "currency": "EUR",
            "open": "0.00",
            "open_cents": 0,
            "open_invoices": 0,
            "overdue": "0.00",
            "overdue_cents": 0,
            "overdue_invoices": 0,
            "credit_balance": "0.00",
            "credit_balance_cents": 0,
        }
    ]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "No customer has external id 'nobody'."


# --- the schema -------------------------------------------------------------------------------

OPERATIONS = {
    ("post", "/api/v1/payments"): {"200", "201", "400", "401", "409", "415", "422", "429"},
    ("get", "/api/v1/payments"): {"200", "400", "401", "404", "422", "429"},
    ("get", "/api/v1/payments/{payment_id}"): {"200", "400", "401", "404", "429"},
    ("get", "/api/v1/customers/{external_customer_id}/balance"): {
        "200",
        "400",
        "401",
        "404",
        "429",
    },
}


def test_the_schema_documents_the_payments_api(client, db):
    schema = client.get("/api/schema/?format=json").json()

    for (method, path), statuses in OPERATIONS.items():
        operation = schema["paths"][path][method]
        assert set(operation["responses"]) == statuses, path
        assert operation["security"] == [{"BearerAuth": []}]
        for status, response in operation["responses"].items():
            ref = response["content"]["application/json"]["schema"]["$ref"]
            if status[0] in "45":
                assert ref == "#/components/schemas/Error", (path, status)
    create = schema["paths"]["/api/v1/payments"]["post"]
    assert {p["name"] for p in create["parameters"]} == {"Idempotency-Key"}
    assert "Idempotent-Replayed" in create["responses"]["200"]["headers"]
    content = create["requestBody"]["content"]["application/json"]
    assert [e["value"] for e in content["examples"].values()] == [PAYMENT_EXAMPLE]
    assert set(schema["components"]["schemas"]["PaymentIn"]["required"]) == {
        "external_customer_id",
        "amount",
        "received_on",
    }
    answer = create["responses"]["201"]["content"]["application/json"]["examples"]
    assert [e["value"] for e in answer.values()] == [PAYMENT_ANSWER_EXAMPLE]
    assert dt.date.fromisoformat(PAYMENT_EXAMPLE["received_on"]) == day("2026-03-02")
