"""Bad quote lines are refused where they are typed (the line's field), not at acceptance."""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Charge, ChargeTier
from quotes.models import Quote, QuoteLine
from quotes.services import quote_populate_lines
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    QuoteFactory,
    TokensMetricFactory,
    hybrid_plan,
)
from tests.quotes.helpers import HEADER, lines_data

pytestmark = pytest.mark.usefixtures("admin_clock")


def tiered_plan():
    """The hybrid plan (USD, also sold in EUR) with graduated tokens and a EUR platform fee."""
    plan = hybrid_plan()
    plan.additional_currencies = "EUR"
    plan.save()
    tokens = ChargeFactory(
        plan=plan,
        name="Tokens",
        metric=TokensMetricFactory(),
        charge_model=Charge.Model.GRADUATED,
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0"),
        default_quantity=Decimal("0"),
        position=3,
    )
    ChargeTier.objects.create(charge=tokens, up_to=1000, unit_price=Decimal("0.01"))
    ChargeTier.objects.create(charge=tokens, from_units=1000, unit_price=Decimal("0.005"))
    ChargeFactory(plan=plan, name="Platform fee", currency="EUR", unit_price=Decimal("450"))
    return plan


def draft_quote(plan):
    quote = QuoteFactory(customer=CustomerFactory(), plan=plan, start_date="2026-03-15")
    quote_populate_lines(quote=quote)
    return Quote.objects.get(pk=quote.pk)


def post_change(client, quote, lines_post):
    data = {"customer": quote.customer_id, "plan": quote.plan_id, **HEADER, **lines_post}
    return client.post(f"/admin/quotes/quote/{quote.pk}/change/", data)


def saved_lines(quote):
    return list(quote.lines.values_list("charge_id", "unit_price").order_by("pk"))


def test_a_unit_price_on_a_tiered_line_is_refused_on_that_line(sales_client):
    quote = draft_quote(tiered_plan())
    before = saved_lines(quote)
    lines = list(quote.lines.order_by("position", "pk"))
    tokens = next(i for i, line in enumerate(lines) if line.description == "Tokens")
    data = lines_data(lines) | {f"lines-{tokens}-unit_price": "0.004"}

    response = post_change(sales_client, quote, data)

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    assert errors[tokens] == {
        "unit_price": [
            "'Tokens' is priced by its Graduated tiers (each tier at its own price) terms, "
            "not by a unit price: leave its price empty (negotiate its tiers or give a "
            "percentage discount)."
        ]
    }
    assert [e for i, e in enumerate(errors) if i != tokens] == [{}] * (len(lines) - 1)
    assert "not by a unit price: leave its price empty (negotiate" in response.content.decode()
    assert saved_lines(quote) == before


def test_a_unit_price_on_a_tiered_line_is_refused_on_the_add_page(sales_client):
    plan, customer = tiered_plan(), CustomerFactory()
    tokens = plan.charges.get(name="Tokens")
    data = {"customer": customer.pk, "plan": plan.pk, **HEADER}
    data |= lines_data(
        [], extra=[{"kind": "usage", "charge": tokens.pk, "quantity": "0", "unit_price": "1"}]
    )

    response = sales_client.post("/admin/quotes/quote/add/", data)

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    assert list(errors[0]) == ["unit_price"]
    assert "leave its price empty" in errors[0]["unit_price"][0]
    assert (Quote.objects.count(), QuoteLine.objects.count()) == (0, 0)


def test_a_charge_in_another_currency_is_refused_on_the_line(sales_client):
    plan = tiered_plan()
    quote = draft_quote(plan)  # a USD customer
    before = saved_lines(quote)
    eur_fee = plan.charges.get(currency="EUR")
    new_line = {"kind": "recurring", "charge": eur_fee.pk, "quantity": "1", "unit_price": "450"}
    lines = list(quote.lines.order_by("position", "pk"))

    response = post_change(sales_client, quote, lines_data(lines, extra=[new_line]))

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    assert errors[-1] == {
        "charge": [
            "Charge 'Platform fee' is priced in EUR, not USD (the customer's currency): choose "
            "one of the plan's charges in USD."
        ]
    }
    assert saved_lines(quote) == before


def test_another_plans_charge_is_not_a_choice(sales_client):
    quote = draft_quote(tiered_plan())
    other = hybrid_plan().charges.get(name="Seats")  # USD, but another plan
    new_line = {"kind": "recurring", "charge": other.pk, "quantity": "1", "unit_price": ""}
    lines = list(quote.lines.order_by("position", "pk"))

    response = post_change(sales_client, quote, lines_data(lines, extra=[new_line]))

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    assert list(errors[-1]) == ["charge"]
    assert "Select a valid choice" in errors[-1]["charge"][0]
    assert quote.lines.count() == len(lines)


def charge_options(html: str, row: str) -> list[str]:
    select = re.search(rf'<select name="{row}-charge"[^>]*>(.*?)</select>', html, re.S)
    return [o.strip() for o in re.findall(r"<option[^>]*>([^<]*)</option>", select.group(1))]


def test_line_charges_are_the_quotes_plans_in_its_currency_with_unique_labels(sales_client):
    plan = tiered_plan()
    hybrid_plan()  # another plan's charges, with the same names
    quote = draft_quote(plan)

    html = sales_client.get(f"/admin/quotes/quote/{quote.pk}/change/").content.decode()

    expected = [
        "Select value",
        "Platform fee · Standard · $500.00 per unit",
        "Seats · Standard · $25.00 per unit",
        "API calls · Standard · $0.002 per unit",
        "Tokens · Graduated · 0 – 1,000: $0.01 · above 1,000: $0.005",
    ]
    assert charge_options(html, "lines-0") == expected
    assert charge_options(html, "lines-__prefix__") == expected  # "Add another line"


def test_before_the_first_save_the_choices_follow_the_submitted_plan_and_customer(sales_client):
    plan = tiered_plan()
    eur_customer = CustomerFactory(currency="EUR")

    add = sales_client.get("/admin/quotes/quote/add/").content.decode()
    assert charge_options(add, "lines-__prefix__") == ["Select value"]  # no plan yet: none

    data = {"customer": eur_customer.pk, "plan": plan.pk, **HEADER, "term_months": ""}
    response = sales_client.post("/admin/quotes/quote/add/", data | lines_data([]))

    assert response.status_code == 200  # the term is missing
    assert charge_options(response.content.decode(), "lines-__prefix__") == [
        "Select value",
        "Platform fee · Standard · €450.00 per unit",
    ]
    assert Quote.objects.count() == 0


@pytest.mark.parametrize("status", [Quote.Status.DRAFT, Quote.Status.SENT])
def test_the_change_page_reads_the_same_for_2_and_20_lines(sales_client, status):
    """No query per line: editable rows (a draft's) and read-only ones (a sent quote's)."""
    plan = tiered_plan()

    def queries(lines: int) -> int:
        quote = QuoteFactory(
            customer=CustomerFactory(), plan=plan, start_date="2026-03-15", status=status
        )
        charges = list(plan.charges.filter(currency="USD"))
        QuoteLine.objects.bulk_create(
            QuoteLine(quote=quote, charge=charges[n % len(charges)], position=n)
            for n in range(lines)
        )
        sales_client.get(f"/admin/quotes/quote/{quote.pk}/change/")  # warm caches
        with CaptureQueriesContext(connection) as captured:
            response = sales_client.get(f"/admin/quotes/quote/{quote.pk}/change/")
        assert response.status_code == 200
        return len(captured)

    assert queries(2) == queries(20)


def test_a_long_quote_shows_and_saves_its_lines_by_pages(sales_client):
    from quotes.admin import LINES_PER_PAGE

    plan = tiered_plan()
    quote = QuoteFactory(customer=CustomerFactory(), plan=plan, start_date="2026-03-15")
    seats = plan.charges.get(name="Seats")
    QuoteLine.objects.bulk_create(
        QuoteLine(quote=quote, charge=seats, description=f"Seats {n}", position=n)
        for n in range(LINES_PER_PAGE + 10)
    )
    url = f"/admin/quotes/quote/{quote.pk}/change/"

    def rows(html: str) -> int:
        return len(re.findall(r'name="lines-\d+-description"', html))

    assert rows(sales_client.get(url).content.decode()) == LINES_PER_PAGE
    page_2 = sales_client.get(url, {"lines-page": 2})
    assert rows(page_2.content.decode()) == 10

    # Saving page 2 changes its lines and leaves the others alone
    second = list(quote.lines.order_by("position", "id")[LINES_PER_PAGE:])
    data = lines_data(second) | {"lines-page": "2", "lines-0-quantity": "7"}
    response = post_change(sales_client, quote, data)
    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    quantities = list(quote.lines.order_by("position", "id").values_list("quantity", flat=True))
    assert quantities == [1] * LINES_PER_PAGE + [7] + [1] * 9
