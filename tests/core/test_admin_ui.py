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
            ["API keys", "Payments", "Plans", "Periodic tasks"],
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
                "Revenue schedules",
            ],
            ["Periodic tasks", "API keys", "Users"],
        ),
        (
            "Operator",
            ["API keys", "Periodic tasks", "Users", "Groups", "Login attempts"],
            ["Plans", "Invoices"],
        ),
        ("superuser", ["Quotes", "Plans", "Payments", "API keys", "Periodic tasks"], []),
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
