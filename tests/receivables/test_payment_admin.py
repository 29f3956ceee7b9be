"""Finance's payment pages in the admin: recording a payment against the customer's open invoices
(explicit amounts, oldest first, all on account, a preview), the payment's page with its
allocations and actions (apply on-account money, un-apply, reverse), the credit balances with
refunds and applications, and the customer's receivables panel. Bad input is refused on its
field and writes nothing; sales gets 403."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group

from invoicing.balance import credit_balance
from invoicing.models import CreditBalanceEntry, Invoice
from receivables import services
from receivables.models import Payment, PaymentAllocation, Refund
from tests.factories import CustomerFactory, PlanFactory, UserFactory, day, subscribe

D = Decimal
TODAY = "2026-03-15 12:00Z"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(TODAY, tick=False):
        yield


def invoice(customer, number, issued, due, total):
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
    """Acme (USD), on Mar 15, 2026:
    INV-1001 issued Jan 1, due Jan 31, 500.00 (43 days overdue)
    INV-1002 issued Feb 1, due Mar 3, 400.00 (12 days overdue)
    INV-1003 issued Mar 1, due Mar 31, 300.00 (not due yet); 1,200.00 open in all."""
    acme = CustomerFactory(name="Acme", currency="USD")
    subscribe(customer=acme, plan=PlanFactory(currency="USD"), external_id="sub_acme")
    invoice(acme, "INV-1001", "2026-01-01", "2026-01-31", "500.00")
    invoice(acme, "INV-1002", "2026-02-01", "2026-03-03", "400.00")
    invoice(acme, "INV-1003", "2026-03-01", "2026-03-31", "300.00")
    return acme


def inv(number) -> Invoice:
    return Invoice.objects.get(number=number)


def login(client, group):
    user = UserFactory(username=group.lower(), is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return user


@pytest.fixture
def finance(client):
    login(client, "Finance")
    return client


ADD = "/admin/receivables/payment/add/"


def post_payment(client, customer, amount, *, currency="USD", apply=None, auto=True, **extra):
    data = {
        "customer": customer.pk,
        "currency": currency,
        "amount": amount,
        "received_on": "2026-03-14",
        "method": "bank_transfer",
        "reference": "WIRE-77",
        "idempotency_key": extra.pop("key", "key-1"),
        **extra,
    }
    if auto:
        data["auto_apply"] = "on"
    for number, value in (apply or {}).items():
        data[f"apply_{inv(number).pk}"] = value
    return client.post(ADD, data)


def on_account(payment) -> Decimal:
    return services.payment_on_account(payment)


# --- Payments › Add ----------------------------------------------------------------------------


def test_add_is_two_steps_customer_then_the_open_invoices(acme, finance):
    # Given Acme's three open invoices
    # When finance opens Add, then chooses Acme
    first = finance.get(ADD)
    page = finance.get(f"{ADD}?customer={acme.pk}")

    # Then step 1 asks for the customer; step 2 lists the invoices oldest due first with their
    # figures and an amount to apply on each
    assert first.status_code == 200 and "Step 1 of 2" in first.content.decode()
    html = page.content.decode()
    assert page.status_code == 200 and "Step 2 of 2" in html
    assert html.index("INV-1001") < html.index("INV-1002") < html.index("INV-1003")
    assert "open $1,200.00 on 3 invoices" in html
    for number in ("INV-1001", "INV-1002", "INV-1003"):
        assert f'name="apply_{inv(number).pk}"' in html
    assert ">43</span>" in html and ">12</span>" in html  # days overdue
    assert "Jan 31, 2026" in html and "$500.00" in html
    assert 'value="USD"' in html and "Apply oldest first automatically" in html
    assert "The rest of the payment goes on account" in html


def test_record_with_amounts_entered_applies_them_and_puts_the_rest_on_account(acme, finance):
    # Given Acme owes 500 + 400 + 300
    # When finance records 1,000.00 with 300.00 to INV-1001 and 200.00 to INV-1002
    response = post_payment(finance, acme, "1000.00", apply={"INV-1001": "300", "INV-1002": "200"})

    # Then the payment is recorded, those amounts applied and 500.00 is on account
    payment = Payment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/receivables/payment/{payment.pk}/change/"
    rows = {(a.invoice and a.invoice.number, a.amount) for a in payment.allocations.all()}
    assert rows == {("INV-1001", D("300.00")), ("INV-1002", D("200.00")), (None, D("500.00"))}
    assert (inv("INV-1001").open_amount, inv("INV-1002").open_amount) == (D("200"), D("200"))
    assert inv("INV-1003").open_amount == D("300.00")
    assert credit_balance(acme) == D("500.00")
    assert payment.created_by.username == "finance" and payment.reference == "WIRE-77"
    page = finance.get(response["Location"]).content.decode()
    assert (
        "Payment of $1,000.00 recorded: applied $300.00 to INV-1001, $200.00 to INV-1002; "
        "$500.00 on account (credit balance)."
    ) in page


def test_record_without_amounts_pays_the_oldest_first(acme, finance):
    # When 1,000.00 is recorded with no amount entered and "oldest first" on
    post_payment(finance, acme, "1000.00")

    # Then INV-1001 (500) and INV-1002 (400) are paid, 100 goes to INV-1003, nothing on account
    payment = Payment.objects.get()
    assert [(a.invoice.number, a.amount) for a in payment.allocations.order_by("id")] == [
        ("INV-1001", D("500.00")),
        ("INV-1002", D("400.00")),
        ("INV-1003", D("100.00")),
    ]
    assert inv("INV-1002").status == Invoice.Status.PAID
    assert inv("INV-1003").open_amount == D("200.00") and on_account(payment) == 0


def test_record_with_oldest_first_off_puts_it_all_on_account(acme, finance):
    post_payment(finance, acme, "250.00", auto=False)

    payment = Payment.objects.get()
    assert on_account(payment) == D("250.00") and credit_balance(acme) == D("250.00")
    assert inv("INV-1001").open_amount == D("500.00")


def test_preview_shows_where_the_money_goes_and_writes_nothing(acme, finance):
    # When finance previews 1,500.00 with oldest first
    page = post_payment(finance, acme, "1500.00", preview="1")

    # Then the page shows 500 + 400 + 300 to the invoices and 300.00 on account, and keeps
    # nothing
    html = page.content.decode()
    assert page.status_code == 200 and "Preview (nothing recorded yet)" in html
    assert "$500.00 to INV-1001" in html and "$300.00 to INV-1003" in html
    assert "$300.00 on account" in html
    assert not Payment.objects.exists() and not CreditBalanceEntry.objects.exists()
    assert inv("INV-1001").open_amount == D("500.00")


def test_a_wrong_currency_is_refused_on_its_field_saying_which_to_use(acme, finance):
    page = post_payment(finance, acme, "100.00", currency="EUR")

    errors = page.context["form"].errors
    assert errors["currency"] == ["Acme is billed in USD: record the payment in USD, not EUR."]
    assert not Payment.objects.exists() and not PaymentAllocation.objects.exists()


def test_an_amount_beyond_an_invoice_is_refused_on_its_line_and_nothing_is_written(acme, finance):
    # When finance applies 600.00 to INV-1001, which has 500.00 open (and 100 to INV-1002)
    page = post_payment(finance, acme, "1000.00", apply={"INV-1002": "100", "INV-1001": "600"})

    # Then the message is on INV-1001's line, and nothing was written
    errors = page.context["form"].errors
    assert errors[f"apply_{inv('INV-1001').pk}"] == [
        "Invoice INV-1001 has $500.00 open: $600.00 is more."
    ]
    assert f"apply_{inv('INV-1002').pk}" not in errors
    assert "Invoice INV-1001 has $500.00 open: $600.00 is more." in page.content.decode()
    assert not Payment.objects.exists() and not CreditBalanceEntry.objects.exists()
    assert inv("INV-1002").paid_amount == 0


def test_amounts_beyond_the_payment_and_a_future_date_are_refused_on_their_fields(acme, finance):
    page = post_payment(finance, acme, "300.00", apply={"INV-1001": "200", "INV-1002": "200"})
    assert page.context["form"].errors["amount"] == [
        "The amounts to apply add up to $400.00, more than the payment's $300.00."
    ]
    page = post_payment(finance, acme, "300.00", received_on="2026-03-16")
    assert page.context["form"].errors["received_on"] == [
        "The payment cannot be received in the future (Mar 16, 2026)."
    ]
    page = post_payment(finance, acme, "10.005")
    assert page.context["form"].errors["amount"] == [
        "The payment amount (10.005) has more decimals than USD allows."
    ]
    assert not Payment.objects.exists()


def test_the_same_form_sent_twice_records_one_payment(acme, finance):
    post_payment(finance, acme, "100.00", key="same")
    again = post_payment(finance, acme, "100.00", key="same")

    assert Payment.objects.count() == 1
    assert again["Location"] == f"/admin/receivables/payment/{Payment.objects.get().pk}/change/"


# --- the payment's page and its actions -------------------------------------------------------


@pytest.fixture
def paid(acme, finance):
    """1,000.00 from Acme: 300 to INV-1001, 200 to INV-1002, 500 on account."""
    post_payment(finance, acme, "1000.00", apply={"INV-1001": "300", "INV-1002": "200"})
    return Payment.objects.get()


def test_the_payment_page_shows_its_allocations_on_account_and_its_buttons(paid, finance):
    html = finance.get(f"/admin/receivables/payment/{paid.pk}/change/").content.decode()

    assert "On account (credit balance)" in html
    assert "$300.00" in html and "$200.00" in html and "$500.00" in html
    assert "Apply on-account money" in html and "Reverse payment" in html
    first = paid.allocations.get(invoice__number="INV-1001")
    assert f"/admin/receivables/payment/{paid.pk}/unapply/{first.pk}/" in html
    assert 'name="reference"' not in html  # read-only facts


def test_apply_on_account_money_to_an_open_invoice(paid, finance):
    # Given 500.00 of the payment is on account
    url = f"/admin/receivables/payment/{paid.pk}/apply/"
    assert finance.get(url).status_code == 200

    # When finance applies 250.00 of it to INV-1003
    response = finance.post(url, {"invoice": inv("INV-1003").pk, "amount": "250.00"})

    # Then INV-1003 has 50.00 open, 250.00 stays on account, the balance is 250.00
    assert response.status_code == 302
    assert inv("INV-1003").open_amount == D("50.00")
    assert on_account(paid) == D("250.00") and credit_balance(paid.customer) == D("250.00")
    page = finance.get(response["Location"]).content.decode()
    assert "$250.00 of the payment&#x27;s on-account money applied to INV-1003" in page


def test_applying_more_than_is_open_or_on_account_is_refused_on_the_amount(paid, finance):
    url = f"/admin/receivables/payment/{paid.pk}/apply/"
    # INV-1001 has 200.00 open; 500.00 of the payment is on account
    page = finance.post(url, {"invoice": inv("INV-1001").pk, "amount": "300.00"})
    assert page.context["form"].errors["amount"] == [
        "Invoice INV-1001 has $200.00 open: $300.00 is more."
    ]
    page = finance.post(url, {"invoice": inv("INV-1003").pk, "amount": "600.00"})
    assert page.context["form"].errors["amount"] == [
        "Only $500.00 of this payment is on account and still in the credit balance: "
        "$600.00 is more."
    ]
    assert PaymentAllocation.objects.count() == 3 and on_account(paid) == D("500.00")


def test_unapply_needs_a_reason_then_reopens_the_invoice(paid, finance):
    allocation = paid.allocations.get(invoice__number="INV-1001")
    url = f"/admin/receivables/payment/{paid.pk}/unapply/{allocation.pk}/"
    assert finance.get(url).status_code == 200

    # When finance sends no reason: refused on the field, nothing written
    page = finance.post(url, {"reason": "  "})
    assert page.context["form"].errors["reason"] == [
        "Say why the payment is un-applied (the reason is required)."
    ]
    assert PaymentAllocation.objects.count() == 3

    # When finance gives a reason: INV-1001 opens again (500.00) and 300.00 more is on account
    response = finance.post(url, {"reason": "Meant for INV-1003"})
    assert response.status_code == 302
    assert inv("INV-1001").open_amount == D("500.00")
    assert on_account(paid) == D("800.00") and credit_balance(paid.customer) == D("800.00")
    back = allocation.reversals.get()
    assert (back.amount, back.reason) == (D("-300.00"), "Meant for INV-1003")
    html = finance.get(f"/admin/receivables/payment/{paid.pk}/change/").content.decode()
    assert "-$300.00" in html and "Meant for INV-1003" in html and "Un-applied" in html


def test_reverse_reopens_the_invoices_and_marks_the_payment(paid, finance):
    url = f"/admin/receivables/payment/{paid.pk}/reverse/"
    form = finance.get(url).content.decode()
    assert "Paid by it now: INV-1001 ($300.00), INV-1002 ($200.00); on account $500.00." in form

    # A reversal before the payment was received is refused on its date, nothing written
    page = finance.post(url, {"reason": "Bounced", "reversed_on": "2026-03-01"})
    assert page.context["form"].errors["reversed_on"] == [
        "A payment cannot be reversed before it was received."
    ]
    assert Payment.objects.get().reversed_on is None

    # When finance reverses it on Mar 15
    response = finance.post(url, {"reason": "Bounced: account closed", "reversed_on": "2026-03-15"})

    # Then INV-1001 and INV-1002 are open in full again, the 500.00 left the balance
    assert response.status_code == 302
    paid.refresh_from_db()
    assert paid.reversed_on == dt.date(2026, 3, 15) and paid.reversal_reason.startswith("Bounced")
    assert (inv("INV-1001").open_amount, inv("INV-1002").open_amount) == (D("500"), D("400"))
    assert credit_balance(paid.customer) == 0
    detail = finance.get(response["Location"]).content.decode()
    assert "Payment reversed on Mar 15, 2026. Open again: INV-1001, INV-1002." in detail
    assert "REVERSED on Mar 15, 2026" in detail
    assert "Reverse payment" not in detail and "Apply on-account money" not in detail
    listing = finance.get("/admin/receivables/payment/?status=reversed").content.decode()
    assert "Reversed" in listing and "$1,000.00" in listing


# --- credit balances -----------------------------------------------------------------------------


def test_credit_balances_page_lists_each_balance_and_the_total(paid, finance):
    # Given Acme's 500.00 on account and Bolt's 80.00 on account
    bolt = CustomerFactory(name="Bolt", currency="USD")
    services.payment_record(
        customer=bolt, amount=D("80.00"), currency="USD", received_on=day("2026-03-10")
    )
    html = finance.get("/admin/receivables/credit-balances/").content.decode()

    assert "Unapplied cash: $580.00" in html
    assert html.index("Acme") < html.index("Bolt")
    assert f"/admin/receivables/credit-balances/{paid.customer.pk}/" in html

    ledger = finance.get(f"/admin/receivables/credit-balances/{paid.customer.pk}/")
    page = ledger.content.decode()
    assert ledger.status_code == 200 and "Payment on account" in page
    assert "+$500.00" in page and "Payment WIRE-77" in page


def test_refund_from_the_credit_balance(paid, finance):
    url = f"/admin/receivables/credit-balances/{paid.customer.pk}/"
    refund = {
        "refund": "1",
        "refund-amount": "600.00",
        "refund-refunded_on": "2026-03-15",
        "refund-method": "bank_transfer",
        "refund-reference": "RF-1",
        "refund-reason": "Customer asked for the overpayment back",
    }
    # More than the 500.00 balance: refused on the amount, nothing written
    page = finance.post(url, refund)
    assert page.context["refund"].errors["amount"] == [
        "Acme has $500.00 of credit balance: $600.00 is more."
    ]
    assert not Refund.objects.exists()

    response = finance.post(url, {**refund, "refund-amount": "120.00"})
    assert response.status_code == 302
    made = Refund.objects.get()
    assert (made.amount, made.reference, made.created_by.username) == (
        D("120.00"),
        "RF-1",
        "finance",
    )
    assert credit_balance(paid.customer) == D("380.00")
    assert "$120.00 refunded to Acme; the credit balance is now $380.00." in (
        finance.get(url).content.decode()
    )


def test_apply_the_credit_balance_to_an_invoice(paid, finance):
    url = f"/admin/receivables/credit-balances/{paid.customer.pk}/"
    response = finance.post(url, {"apply": "1", "apply-invoice": inv("INV-1003").pk})

    # As much as both allow: INV-1003's 300.00 of the 500.00
    assert response.status_code == 302
    assert inv("INV-1003").status == Invoice.Status.PAID
    assert credit_balance(paid.customer) == D("200.00")
    entry = CreditBalanceEntry.objects.get(kind=CreditBalanceEntry.Kind.APPLIED)
    assert (entry.amount, entry.invoice.number) == (D("-300.00"), "INV-1003")

    page = finance.post(
        url, {"apply": "1", "apply-invoice": inv("INV-1001").pk, "apply-amount": "250.00"}
    )
    assert page.context["apply"].errors["amount"] == [
        "Acme has $200.00 of credit balance: $250.00 is more."
    ]
    assert CreditBalanceEntry.objects.filter(kind=CreditBalanceEntry.Kind.APPLIED).count() == 1


# --- the customer's page, and who may ---------------------------------------------------------


def test_customer_page_shows_open_overdue_and_credit(paid, finance):
    html = finance.get(f"/admin/customers/customer/{paid.customer.pk}/change/").content.decode()

    # Open 200 + 200 + 300; overdue INV-1001 and INV-1002 (400.00); 500.00 on account
    assert "Receivables" in html
    assert "open $700.00 on" in html and "overdue $400.00 on 2" in html
    assert f'href="/admin/receivables/credit-balances/{paid.customer.pk}/">$500.00</a>' in html
    assert f'href="/admin/receivables/payment/add/?customer={paid.customer.pk}"' in html


def test_sales_gets_403_on_every_cash_page(paid, client):
    user = login(client, "Sales")
    allocation = paid.allocations.first()
    for url in [
        ADD,
        f"{ADD}?customer={paid.customer.pk}",
        f"/admin/receivables/payment/{paid.pk}/apply/",
        f"/admin/receivables/payment/{paid.pk}/reverse/",
        f"/admin/receivables/payment/{paid.pk}/unapply/{allocation.pk}/",
        "/admin/receivables/credit-balances/",
        f"/admin/receivables/credit-balances/{paid.customer.pk}/",
    ]:
        assert client.get(url).status_code == 403, url
    response = client.post(f"/admin/receivables/payment/{paid.pk}/reverse/", {"reason": "x"})
    assert response.status_code == 403
    assert Payment.objects.get().reversed_on is None
    page = client.get(f"/admin/customers/customer/{paid.customer.pk}/change/").content.decode()
    assert "credit-balances" not in page and user.username == "sales"
