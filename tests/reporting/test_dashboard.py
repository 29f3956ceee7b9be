"""The admin home shows each role its figures, formatted, with links to the lists behind them."""

import pytest
import time_machine
from django.contrib.auth.models import Group

from tests.factories import CustomerFactory, QuoteFactory, UserFactory, day, hybrid_plan, subscribe


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel("2026-03-20 12:00Z", tick=False):
        yield


@pytest.fixture
def book(db):
    plan = hybrid_plan(platform_fee="1109.00", seat_price="25.00")  # 1,109 + 5 × 25 = 1,234
    subscribe(customer=CustomerFactory(), plan=plan, external_id="S", start="2026-03-01")
    euro = hybrid_plan(platform_fee="100.00", currency="EUR")
    subscribe(
        customer=CustomerFactory(currency="EUR"), plan=euro, external_id="E", start="2026-03-01"
    )
    QuoteFactory(plan=plan, valid_until=day("2026-03-24"))


def login(client, group=None, **extra):
    user = UserFactory(username=group or "plain", is_staff=True, **extra)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def test_finance_sees_mrr_formatted_and_linked(book, client):
    page = login(client, "Finance").get("/admin/").content.decode()

    assert "$1,234.00" in page  # MRR
    assert "ARR $14,808.00" in page
    assert "also €225.00 (not converted)" in page
    assert 'href="/admin/subscriptions/subscription/?status=active"' in page
    assert 'href="/admin/invoicing/invoice/?status=draft"' in page
    assert 'href="/admin/invoicing/invoice/?status=finalized&amp;due_date__lt=2026-03-20"' in page
    assert "Billings forecast" in page and "last 90 days" in page
    assert "Quotes by state" not in page


def test_sales_sees_quotes_by_state_and_not_mrr(book, client):
    page = login(client, "Sales").get("/admin/").content.decode()

    assert "Quotes by state" in page
    assert 'href="/admin/quotes/quote/?status=draft"' in page
    assert "Quotes expiring this week" in page and "Q-0" in page
    assert "MRR" not in page
    assert "$1,234.00" not in page


def test_a_superuser_sees_the_finance_figures(book, client):
    page = login(client, is_superuser=True).get("/admin/").content.decode()

    assert "$1,234.00" in page


def test_someone_in_neither_role_sees_a_welcome_and_the_app_list(book, client):
    page = login(client).get("/admin/").content.decode()

    assert "Welcome" in page
    assert "$1,234.00" not in page and "Quotes by state" not in page


@pytest.mark.parametrize(
    "url",
    [
        "/admin/invoicing/invoice/?status=finalized&due_date__lt=2026-03-20",
        "/admin/invoicing/invoice/?status__in=finalized,paid&issue_date__gte=2026-03-01",
        "/admin/quotes/quote/?status__in=draft,sent&valid_until__gte=2026-03-20",
        "/admin/quotes/quote/?status=accepted&accepted_at__date__gte=2026-03-01",
        "/admin/subscriptions/subscription/?start_date__gte=2026-03-01",
    ],
)
def test_the_links_open_filtered_lists(book, client, url):
    assert login(client, is_superuser=True).get(url).status_code == 200


def test_chart_axes_group_thousands_like_the_rest_of_the_page(book, client):
    import json

    response = login(client, "Finance").get("/admin/")

    for name in ("usage_options", "forecast_options"):
        options = json.loads(response.context[name])
        # Chart.js formats ticks with Intl.NumberFormat: 40,000,000, not 40000000
        assert options["locale"] == "en-US", name
        assert options["scales"]["y"]["ticks"]["format"] == {"maximumFractionDigits": 2}, name
    assert "maximumFractionDigits" in response.content.decode()  # on the forecast's canvas
