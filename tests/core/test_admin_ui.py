"""The back office as each role sees it: its sidebar, and money shown as money, never raw."""

import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from invoicing.models import Invoice, InvoiceLine
from tests.factories import CustomerFactory, UserFactory, hybrid_plan, subscribe

RAW_NUMBER = re.compile(r"\d\.\d{5,}0\b|E-\d")


def _visible(html: str) -> str:
    """The page without scripts and input tags (editable fields stay inputs)."""
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    return re.sub(r"<(input|option)[^>]*>", "", html)


def _login(client, role):
    if role == "superuser":
        user = UserFactory(username="root", is_staff=True, is_superuser=True)
    else:
        user = UserFactory(username=role.lower(), is_staff=True)
        user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("role", "sees", "does_not_see"),
    [
        (
            "Sales",
            ["Customers", "Quotes", "Subscriptions", "Invoices"],
            [
                "API keys",
                "Payments",
                "Plans",
                "Periodic tasks",
                "Shadow billing",
                "Revenue contracts",
                "Recognize revenue",
                "Journal entries",
                "Trial balance",
                "Deferred revenue",
            ],
        ),
        (
            "Finance",
            [
                "Customers",
                "Quotes",
                "Invoices",
                "Plans",
                "Charges",
                "Payments",
                "Revenue contracts",
                "Recognize revenue",
                "Accounting periods",
                "Journal entries",
                "Trial balance",
                "Deferred revenue",
                "Accounts",
                "Shadow billing",
            ],
            ["Periodic tasks", "API keys", "Users"],
        ),
        (
            "Operator",
            ["API keys", "Periodic tasks", "Users", "Groups", "Login attempts"],
            ["Plans", "Invoices", "Shadow billing"],
        ),
        (
            "superuser",
            ["Quotes", "Plans", "Payments", "API keys", "Periodic tasks", "Shadow billing"],
            [],
        ),
    ],
)
def test_each_role_sees_its_own_sidebar(db, client, role, sees, does_not_see):
    from config.admin import sidebar_navigation

    _login(client, role)
    request = client.get("/admin/").wsgi_request
    titles = [item["title"] for group in sidebar_navigation(request) for item in group["items"]]
    assert set(sees) <= set(titles), titles
    assert not set(does_not_see) & set(titles), titles
    assert len(titles) == len(set(titles))  # each model once
    html = client.get("/admin/").content.decode()
    for title in sees:
        assert title in html


def test_finance_finds_shadow_billing_in_the_billing_group_as_an_unfold_page(db, client):
    from config.admin import sidebar_navigation

    _login(client, "Finance")
    request = client.get("/admin/").wsgi_request
    billing = next(g for g in sidebar_navigation(request) if g["title"] == "Billing")
    assert [(i["title"], str(i["link"])) for i in billing["items"]][-1] == (
        "Shadow billing",
        "/admin/invoicing/shadow-billing/",
    )

    html = client.get("/admin/invoicing/shadow-billing/").content.decode()

    assert '<a href="/admin/invoicing/shadow-billing/"' in html  # in the sidebar
    header = re.search(r"<h1.*?</h1>", html, flags=re.S).group(0)
    words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", header)).strip()
    assert words == "Invoicing chevron_right Invoices chevron_right Shadow billing"  # not "Welcome"
    assert 'type="submit"' in html and "Run the shadow billing" in html
    assert "bg-primary-600" in html  # unfold's button, not a bare browser button


def test_sidebar_groups_are_named_by_work(db, client):
    from config.admin import sidebar_navigation

    _login(client, "superuser")
    request = client.get("/admin/").wsgi_request
    assert [g["title"] for g in sidebar_navigation(request)] == [
        "Sales",
        "Billing",
        "Receivables",
        "Revenue",
        "Catalog",
        "Operations",
    ]


@pytest.fixture
def billed(db):
    subscription = subscribe(customer=CustomerFactory(), plan=hybrid_plan())
    invoice = Invoice.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        billing_date=subscription.start_date,
        currency="USD",
        subtotal="2250.0000",
        total="2250.0000",
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        kind="fee",
        description="Platform fee",
        period_start=subscription.start_date,
        period_end=subscription.start_date,
        quantity="1",
        unit_price="2250",
        amount="2250.0000",
    )
    return subscription, invoice


def test_key_admin_pages_show_money_not_raw_decimals(client, billed):
    subscription, invoice = billed
    _login(client, "Finance")
    for url, money in [
        ("/admin/invoicing/invoice/", "$2,250.00"),
        (f"/admin/invoicing/invoice/{invoice.pk}/change/", "$2,250.00"),
        (f"/admin/subscriptions/subscription/{subscription.pk}/change/", "$25.00"),
        (f"/admin/catalog/plan/{subscription.plan_id}/change/", "$500.00"),
    ]:
        html = client.get(url).content.decode()
        assert money in html, url
        assert not RAW_NUMBER.search(_visible(html)), (url, RAW_NUMBER.search(_visible(html)))
    page = client.get(f"/admin/subscriptions/subscription/{subscription.pk}/change/")
    assert "Standard · $0.002 per unit" in page.content.decode()  # items' prices, not JSON
    assert '"model"' not in page.content.decode()


def test_finalize_is_offered_on_drafts_only(client, billed):
    _, invoice = billed
    _login(client, "Finance")
    url = f"/admin/invoicing/invoice/{invoice.pk}/change/"
    action = reverse("admin:invoicing_invoice_detail_finalize", args=[invoice.pk])
    assert action in client.get(url).content.decode()

    Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.FINALIZED, number="INV-9")

    assert action not in client.get(url).content.decode()
    assert client.post(action).status_code == 403  # and refused if called anyway


def test_invoice_lines_read_once_with_how_each_was_rated(client, billed):
    from invoicing.pdf import invoice_html

    _, invoice = billed
    InvoiceLine.objects.create(
        invoice=invoice,
        kind="usage",
        description="Tokens",
        period_start=invoice.billing_date,
        period_end=invoice.billing_date.replace(day=invoice.billing_date.day + 1),
        quantity="2000",
        unit_price="0.000002",
        amount="0.0040",
        explanation=[{"description": "2,000 × 0.000002", "subtotal": "0.004"}],
    )
    _login(client, "Finance")

    html = client.get(f"/admin/invoicing/invoice/{invoice.pk}/change/").content.decode()

    assert html.count("Platform fee") == 1  # no row header repeating the description
    assert html.count("Tokens") == 1 and "Tokens<ul" in html  # the steps under the description
    assert "<li>2,000 × $0.000002 = $0.004</li>" in html  # the step, exact, in the currency
    day = invoice.billing_date
    assert f"{day:%b %-d} – {day:%b %-d, %Y}" in html  # a one-day period: its last day included
    pdf = invoice_html(invoice)
    assert "2,000 × $0.000002 = $0.004" in pdf  # not "= $0.00"
    assert "= $0.00<" not in pdf


def test_a_subscription_page_is_titled_by_its_customer_then_its_id(client, billed):
    subscription, _ = billed
    subscription.customer.name = "Bluefin"
    subscription.customer.save(update_fields=["name"])
    subscription.external_id = "sub_bluefin_enterprise"
    subscription.save(update_fields=["external_id"])
    _login(client, "Finance")

    html = client.get(f"/admin/subscriptions/subscription/{subscription.pk}/change/")

    assert str(subscription) == "Bluefin — sub_bluefin_enterprise"
    assert "Bluefin — sub_bluefin_enterprise" in html.content.decode()
    assert "Sub_bluefin" not in html.content.decode()


def _listed(n):
    """n customers, each with a plan that has a graduated charge, a quote and a payment."""
    from decimal import Decimal

    from catalog.models import ChargeTier
    from quotes.services import quote_populate_lines
    from receivables.models import Payment
    from tests.factories import ChargeFactory, MetricFactory, QuoteFactory

    for i in range(n):
        plan = hybrid_plan()
        tiered = ChargeFactory(
            plan=plan,
            name="Tokens",
            key=f"tokens_{i}",
            metric=MetricFactory(),
            charge_model="graduated",
            unit_price=Decimal(0),
        )
        ChargeTier.objects.create(charge=tiered, up_to=Decimal(100), unit_price=Decimal(1))
        ChargeTier.objects.create(charge=tiered, up_to=None, unit_price=Decimal("0.5"))
        customer = CustomerFactory()
        quote_populate_lines(quote=QuoteFactory(customer=customer, plan=plan))
        Payment.objects.create(
            customer=customer, amount="5", currency="USD", received_on="2026-01-15"
        )


@pytest.mark.parametrize(
    "url", ["/admin/quotes/quote/", "/admin/receivables/payment/", "/admin/catalog/charge/"]
)
def test_list_pages_read_the_same_queries_for_one_row_or_many(db, client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _login(client, "superuser")

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    _listed(1)
    few = queries()
    _listed(4)
    assert queries() == few  # nothing read per row (totals, unapplied amounts, tiers)
