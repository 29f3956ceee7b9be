"""The quote page's totals: computed from the change form's unsaved data by the totals endpoint
(a ramp, a discount, negotiated tiers and a one-time fee), and the page's queries."""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from quotes.models import Quote, QuoteLine, QuoteLinePhase, QuoteLineTier
from tests.factories import CustomerFactory, QuoteFactory
from tests.quotes.helpers import change_data
from tests.quotes.test_admin_lines import tiered_plan

pytestmark = pytest.mark.usefixtures("admin_clock")


def worked_example():
    """docs/quotes.md's worked example, saved as the rep left it before the last edits:
    24 months, billed monthly, in USD —
    1. Platform fee: 1 × 500.00 (list);
    2. Seats: ramped, months 1–12: 100 seats, 13–24: 150 seats, at the list 25.00 (no discount yet);
    3. Tokens: negotiated tiers (up to 100,000 at 0.008, above at 0.004), an estimated 500,000
       tokens a month, a 1,000.00 minimum a month."""
    plan = tiered_plan()
    quote = QuoteFactory(
        customer=CustomerFactory(name="Acme Rockets"),
        plan=plan,
        title="Acme 2026",
        start_date="2026-03-15",
        term_months=24,
        valid_until="2026-03-31",
    )
    fee, seats_charge, _, tokens_charge = plan.charges.filter(currency="USD").order_by("position")
    QuoteLine.objects.create(quote=quote, charge=fee, description="Platform fee", position=1)
    seats = QuoteLine.objects.create(
        quote=quote, charge=seats_charge, description="Seats", quantity=100, position=2
    )
    tokens = QuoteLine.objects.create(
        quote=quote,
        kind="usage",
        charge=tokens_charge,
        description="Tokens",
        quantity=0,
        estimated_quantity=500_000,
        minimum_amount=Decimal("1000"),
        position=3,
    )
    QuoteLinePhase.objects.create(line=seats, start_month=1, end_month=12, quantity=100)
    QuoteLinePhase.objects.create(line=seats, start_month=13, end_month=24, quantity=150)
    QuoteLineTier.objects.create(line=tokens, up_to=100_000, unit_price=Decimal("0.008"))
    QuoteLineTier.objects.create(line=tokens, unit_price=Decimal("0.004"), position=1)
    return Quote.objects.get(pk=quote.pk)


def figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="(\w+)">([^<]*)<', html))


def test_the_totals_follow_the_unsaved_form(sales_client):
    # Given the worked example, saved
    quote = worked_example()
    saved = list(QuoteLine.objects.values_list("id", "discount_percent").order_by("id"))
    # When the rep gives the seats 10 % off and adds a 5,000.00 implementation fee, unsaved
    implementation = {
        "kind": "one_time",
        "description": "Implementation",
        "quantity": "1",
        "unit_price": "5000",
    }
    data = change_data(quote, extra=[implementation], term_months="24")
    data["lines-1-discount_percent"] = "10"

    response = sales_client.post(f"/admin/quotes/quote/{quote.pk}/totals/", data)

    # Then the panel shows the figures of the form as it is, computed by hand:
    # seats net 25.00 × 0.9 = 22.50: 100 × 22.50 = 2,250.00 a month, then 150 × 22.50 = 3,375.00
    # tokens a month: 100,000 × 0.008 + 400,000 × 0.004 = 800 + 1,600 = 2,400.00 (list: 1,000 ×
    #   0.01 + 499,000 × 0.005 = 2,505.00); committed: its 1,000.00 minimum
    assert response.status_code == 200
    assert figures(response.content.decode()) == {
        "mrr_first": "$2,750.00",  # 500 + 2,250
        "mrr_full": "$3,875.00",  # 500 + 3,375
        "arr": "$46,500.00",  # 12 × 3,875
        # months 1–12: 500 + 2,250 + 1,000 minimum = 3,750 × 12 = 45,000; + 5,000 one-time
        "first_year": "$50,000.00",
        # (recurring 12,000 + 27,000 + 40,500 + minimums 24,000 + 5,000 − 5,000) × 12 / 24
        "acv": "$51,750.00",
        "tcv": "$108,500.00",  # 79,500 recurring + 24,000 minimums + 5,000 one-time
        "estimated_usage": "$33,600.00",  # (2,400 − 1,000) × 24
        "one_time": "$5,000.00",
        "credits": "$0.00",
        # 12,000 + 75,000 seats (2,500 × 12 + 3,750 × 12) + 60,120 tokens (2,505 × 24) + 5,000
        "list_total": "$152,120.00",
        # list 152,120 − net 142,100 (108,500 + 33,600) = 10,020 = 6.59 % of list
        "discount": "$10,020.00 (6.59 %)",
    }
    # And nothing was saved
    assert list(QuoteLine.objects.values_list("id", "discount_percent").order_by("id")) == saved
    assert QuoteLine.objects.count() == 3


def test_a_bad_row_is_named_and_left_out_of_the_totals(sales_client):
    quote = worked_example()
    data = change_data(quote, term_months="24") | {"lines-0-discount_percent": "150"}

    html = sales_client.post(f"/admin/quotes/quote/{quote.pk}/totals/", data).content.decode()

    assert "Line 1 · Disc. %: Ensure this value is less than or equal to 100." in html
    assert figures(html)["mrr_first"] == "$3,000.00"  # the saved 500 + 100 × 25


def test_the_totals_endpoint_is_a_csrf_protected_post_for_those_who_see_the_quote(
    sales_client,
):
    from django.contrib.auth.models import User
    from django.test import Client

    quote = worked_example()
    url = f"/admin/quotes/quote/{quote.pk}/totals/"
    assert sales_client.get(url).status_code == 405
    assert Client().post(url, {}).status_code == 302  # anonymous: to the login page
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.get(username="rep"))
    assert strict.post(url, change_data(quote)).status_code == 403  # no CSRF token
    nobody = User.objects.create_user("nobody", is_staff=True)
    Client().force_login(nobody)
    outsider = Client()
    outsider.force_login(nobody)
    assert outsider.post(url, change_data(quote)).status_code == 403  # no permission


def test_the_page_shows_the_saved_totals_and_the_line_figures(sales_client):
    quote = worked_example()

    html = sales_client.get(f"/admin/quotes/quote/{quote.pk}/change/").content.decode()

    # 12,000 platform fee + 30,000 + 45,000 seats + 24,000 tokens minimums
    assert figures(html)["tcv"] == "$111,000.00"
    net = re.findall(r"field-net_price[^>]*>\s*(?:<[^>]+>\s*)*([^<\s][^<]*?)\s*<", html)
    assert net[:3] == ["$500.00", "$2,500.00 → $3,750.00", "$2,400.00"]  # then the empty row
    assert "2 tiers" in html and "2 phases" in html


@pytest.mark.parametrize("status", [Quote.Status.DRAFT, Quote.Status.SENT])
def test_the_change_page_reads_the_same_for_1_and_5_lines(sales_client, status):
    """No query per line, with mixed kinds, discounts, tiers and phases."""
    plan = tiered_plan()
    fee, seats, calls, tokens = plan.charges.filter(currency="USD").order_by("position")

    def queries(count: int) -> int:
        quote = QuoteFactory(
            customer=CustomerFactory(),
            plan=plan,
            start_date="2026-03-15",
            term_months=12,
            status=status,
        )
        kinds = [
            dict(charge=seats, discount_percent=Decimal("10"), quantity=10),
            dict(charge=fee),
            dict(charge=tokens, kind="usage", estimated_quantity=5000),
            dict(kind="one_time", description="Training", unit_price=Decimal("800")),
            dict(charge=calls, kind="usage", minimum_amount=Decimal("50")),
        ]
        for n in range(count):
            line = QuoteLine.objects.create(quote=quote, position=n, **kinds[n])
            if line.charge == seats:
                QuoteLinePhase.objects.create(line=line, start_month=1, end_month=12, quantity=10)
            if line.charge == tokens:
                QuoteLineTier.objects.create(line=line, unit_price=Decimal("0.004"))
        url = f"/admin/quotes/quote/{quote.pk}/change/"
        sales_client.get(url)  # warm caches
        with CaptureQueriesContext(connection) as captured:
            response = sales_client.get(url)
        assert response.status_code == 200
        return len(captured)

    assert queries(1) == queries(5)
