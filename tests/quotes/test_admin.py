"""A sales rep builds and accepts a quote in the Django admin."""

import datetime as dt
import re
from decimal import Decimal

import pytest

from quotes.models import Quote
from subscriptions.models import Subscription
from tests.factories import CustomerFactory, hybrid_plan

pytestmark = pytest.mark.usefixtures("admin_clock")


def _add_quote(client, customer, plan, **extra):
    data = {
        "customer": customer.pk,
        "plan": plan.pk,
        "title": "Acme 2026",
        "start_date": "2026-03-15",
        "term_months": "12",
        "valid_until": "2026-03-31",
        "subscription_external_id": "sub_acme_2026",
        "lines-TOTAL_FORMS": "0",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        **extra,
    }
    return client.post("/admin/quotes/quote/add/", data)


def test_a_new_quote_gets_one_line_per_plan_charge(sales_client):
    customer, plan = CustomerFactory(), hybrid_plan()
    response = _add_quote(sales_client, customer, plan)
    assert response.status_code == 302, response.content
    quote = Quote.objects.get()
    lines = [(line.description, line.quantity, line.unit_price) for line in quote.lines.all()]
    assert lines == [
        ("Platform fee", Decimal("1"), Decimal("500")),
        ("Seats", Decimal("5"), Decimal("25")),
        ("API calls", Decimal("0"), Decimal("0.002")),
    ]
    assert quote.owner.username == "rep"
    page = sales_client.get(f"/admin/quotes/quote/{quote.pk}/change/")
    assert page.status_code == 200
    assert b"$625.00" in page.content  # fixed fees per period: 500 + 5 × 25
    assert b"Accept quote and create subscription" in page.content


def test_invalid_quote_form_shows_errors_and_saves_nothing(sales_client):
    customer, plan = CustomerFactory(), hybrid_plan()
    response = _add_quote(sales_client, customer, plan, start_date="not a date", term_months="")
    assert response.status_code == 200
    assert b"Enter a valid date." in response.content
    assert Quote.objects.count() == 0


def test_accept_button_creates_the_subscription_once(sales_client):
    customer, plan = CustomerFactory(), hybrid_plan()
    _add_quote(sales_client, customer, plan)
    quote = Quote.objects.get()
    form = {
        "customer": customer.pk,
        "plan": plan.pk,
        "title": quote.title,
        "start_date": "2026-03-15",
        "term_months": "12",
        "valid_until": "2026-03-31",
        "subscription_external_id": "sub_acme_2026",
        "lines-TOTAL_FORMS": "3",
        "lines-INITIAL_FORMS": "3",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "_accept": "1",
    }
    for i, line in enumerate(quote.lines.all()):
        form |= {
            f"lines-{i}-id": line.pk,
            f"lines-{i}-quote": quote.pk,
            f"lines-{i}-position": line.position,
            f"lines-{i}-charge": line.charge_id,
            f"lines-{i}-description": line.description,
            f"lines-{i}-quantity": "10" if line.description == "Seats" else line.quantity,
            f"lines-{i}-unit_price": line.unit_price,
        }
    response = sales_client.post(f"/admin/quotes/quote/{quote.pk}/change/", form, follow=True)
    assert response.status_code == 200
    assert b"accepted: subscription created" in response.content
    quote.refresh_from_db()
    subscription = Subscription.objects.get()
    assert (quote.status, quote.subscription, subscription.start_date) == (
        Quote.Status.ACCEPTED,
        subscription,
        dt.date(2026, 3, 15),
    )
    assert subscription.items.get(name="Seats").quantity == Decimal("10")
    # The accept action again only reports it
    response = sales_client.post(
        "/admin/quotes/quote/",
        {"action": "accept", "_selected_action": [quote.pk]},
        follow=True,
    )
    assert b"was already accepted" in response.content
    assert Subscription.objects.count() == 1


def test_a_sent_quote_shows_its_lines_read_only_with_plain_prices(sales_client):
    from quotes.services import quote_mark_sent

    customer, plan = CustomerFactory(), hybrid_plan()
    _add_quote(sales_client, customer, plan)
    quote = quote_mark_sent(quote=Quote.objects.get())
    page = sales_client.get(f"/admin/quotes/quote/{quote.pk}/change/").content.decode()
    shown = re.findall(r"field-unit_price_shown[^>]*>\s*(?:<[^>]+>\s*)*([^<\s][^<]*?)\s*<", page)
    assert ("0.002000000000" not in page, shown) == (True, ["$500.00", "$25.00", "$0.002"])
    assert 'name="lines-0-quantity"' not in page  # no editable line fields once sent


def test_an_accepted_quote_links_its_subscription_and_cannot_be_deleted(sales_client):
    from quotes.services import quote_accept

    customer, plan = CustomerFactory(), hybrid_plan()
    _add_quote(sales_client, customer, plan)
    quote = Quote.objects.get()
    url, delete = (
        f"/admin/quotes/quote/{quote.pk}/change/",
        f"/admin/quotes/quote/{quote.pk}/delete/",
    )
    assert delete in sales_client.get(url).content.decode()  # a draft may be deleted

    quote_accept(quote=quote)
    subscription = Subscription.objects.get()
    html = sales_client.get(url).content.decode()

    link = (
        f'<a href="/admin/subscriptions/subscription/{subscription.pk}/change/"'
        ' class="text-primary-600 dark:text-primary-500">'
    )
    assert link + f"{subscription.external_id}</a>" in html
    assert delete not in html
    assert sales_client.get(delete).status_code == 403
