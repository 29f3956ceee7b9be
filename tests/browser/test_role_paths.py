"""Each role's main path in a real browser (issue 18): what a person sees — figures and money as
people read them — on the pages they use every day, at a laptop's 1366×768 without horizontal
scrolling.

The data is dated relative to today (core.clock.today()): the live server answers from another
thread, so the clock is not moved.
"""

import csv
import datetime as dt
import io
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group

from core import clock
from core.formatting import format_money
from core.roles import sync_roles
from invoicing.selectors import upcoming_invoice
from invoicing.services import billing_run
from metering.services import events_ingest
from quotes.services import quote_populate_lines
from quotes.totals import quote_totals
from reporting.selectors import recurring_revenue
from tests.factories import (
    CustomerFactory,
    PortalMembershipFactory,
    QuoteFactory,
    UserFactory,
    hybrid_plan,
    subscribe,
)

# Transactional: the live server's thread must see the data. A transactional test's flush
# removes what migrations made (the role groups), so `staff` makes the roles again.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pass-1234"  # UserFactory's


def fits(page) -> bool:
    """No horizontal scroll bar: the page is no wider than the window."""
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def visit(page, path: str) -> None:
    page.goto(path)
    check(page)


def check(page) -> None:
    """The page fits the window; with BROWSER_SCREENSHOTS=dir, a full-page screenshot is kept."""
    if folder := os.environ.get("BROWSER_SCREENSHOTS"):
        name = page.url.split("//", 1)[-1].split("/", 1)[-1].strip("/").replace("/", "_")
        page.screenshot(path=Path(folder) / f"{name or 'home'}.png", full_page=True)
    assert fits(page), f"{page.url} scrolls horizontally at 1366×768"


def log_in(page, path: str, username: str) -> None:
    visit(page, path)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit], input[type=submit]")
    assert "login" not in page.url, f"{username} could not log in"
    check(page)


def staff(username: str, group: str):
    sync_roles(apps)  # idempotent: the groups and their permissions, as the migrations make them
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def acme():
    """Acme on the hybrid plan since 10 days ago (monthly; its first invoice billed), 8.25% tax,
    and 1,500 API calls in the period in progress: 1,000 two days ago and 500 today."""
    today = clock.today()
    customer = CustomerFactory(external_id="acme", name="Acme Rockets", tax_rate=Decimal("8.25"))
    subscription = subscribe(
        customer=customer,
        plan=hybrid_plan(),
        external_id="sub_acme",
        start=(today - dt.timedelta(days=10)).isoformat(),
        term_months=12,
    )
    billing_run()
    now = clock.now()
    earlier = now - dt.timedelta(days=2)
    events_ingest(
        raw_events=[
            {
                "transaction_id": f"call-{n}",
                "external_subscription_id": "sub_acme",
                "code": "api_calls",
                "timestamp": (earlier if n < 1000 else now).isoformat(),
            }
            for n in range(1500)
        ]
    )
    return subscription


def test_finance_sees_mrr_and_a_subscriptions_upcoming_invoice(page):
    # Given Acme's subscription and a finance user
    subscription = acme()
    staff("fiona", "Finance")
    mrr = format_money(recurring_revenue().mrr["USD"], "USD")
    total = format_money(upcoming_invoice(subscription=subscription).total, "USD")
    assert mrr == "$625.00"  # 500.00 platform fee + 5 seats × 25.00

    # When finance logs in, the dashboard's first figure is the MRR, as money
    log_in(page, "/admin/login/", "fiona")
    first_card = page.locator("#finance-kpis > *").first
    assert "MRR" in first_card.inner_text()
    assert mrr in first_card.inner_text()

    # And the subscription's page shows what it would bill if the period closed now
    visit(page, f"/admin/subscriptions/subscription/{subscription.pk}/change/")
    panel = page.locator("#upcoming-invoice")
    assert "Upcoming invoice — if the period closed now" in panel.inner_text()
    lines = panel.locator("tr.upcoming-line")
    assert lines.count() == 3
    calls = lines.filter(has_text="API calls").inner_text()
    assert "1,500" in calls and "$0.002" in calls and "$3.00" in calls
    assert page.locator("#upcoming-subtotal").inner_text() == "$628.00"
    assert page.locator("#upcoming-total").inner_text() == total == "$679.81"


def test_sales_sees_their_quote_in_the_quote_list(page):
    # Given a quote for Globex, with the plan's lines
    quote = QuoteFactory(
        customer=CustomerFactory(name="Globex Corporation"),
        plan=hybrid_plan(platform_fee="1200.00"),
        start_date=clock.today() + dt.timedelta(days=31),
        valid_until=clock.today() + dt.timedelta(days=30),
    )
    quote_populate_lines(quote=quote)
    staff("sam", "Sales")
    total = format_money(quote_totals(quote).tcv, "USD")
    assert total == "$3,975.00"  # 3 months × (1,200.00 platform fee + 5 seats × 25.00)

    # When the rep logs in and opens the quotes
    log_in(page, "/admin/login/", "sam")
    visit(page, "/admin/quotes/quote/")

    # Then the quote's row shows its customer and its total, as money
    row = page.locator("#result_list tbody tr").filter(has_text="Globex Corporation")
    assert row.count() == 1
    assert total in row.inner_text()


def test_a_customer_sees_usage_and_the_estimated_bill_and_downloads_the_csv(page):
    # Given Acme's subscription and its portal user
    subscription = acme()
    PortalMembershipFactory(customer=subscription.customer, user__username="ana")
    estimate = format_money(upcoming_invoice(subscription=subscription).total, "USD")

    # When Ana logs in to the portal and opens the usage page
    log_in(page, "/portal/login/", "ana")
    visit(page, "/portal/subscriptions/sub_acme/usage/")

    # Then she sees the calls so far and the estimated bill, formatted
    usage = page.locator("table").first.locator("tbody tr").filter(has_text="API calls")
    assert "1,500" in usage.inner_text() and "$3.00" in usage.inner_text()
    assert page.locator(".kpi").inner_text() == estimate == "$679.81"

    # And the CSV has one row a day, the calls on their days
    with page.expect_download() as info:
        page.click("text=Download daily usage (CSV)")
    download = info.value
    assert download.suggested_filename == "sub_acme-daily-usage.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    by_day = {row["date"]: Decimal(row["quantity"]) for row in rows if row["metric"] == "api_calls"}
    today = subscription.start_date + dt.timedelta(days=10)  # acme()'s today, even past midnight
    assert by_day[today.isoformat()] == 500 and sum(by_day.values()) == 1500
    assert by_day[(today - dt.timedelta(days=2)).isoformat()] == 1000
