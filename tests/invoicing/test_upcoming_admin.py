"""The subscription's admin page shows its upcoming invoice (issue 18): finance's path to "what
will this customer be billed if the period closed now"."""

from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group

from invoicing.selectors import upcoming_invoice
from invoicing.services import billing_run
from metering.services import events_ingest
from tests.factories import CustomerFactory, UserFactory, day, hybrid_plan, subscribe


@pytest.fixture
def finance(client, db):
    user = UserFactory(username="fiona", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    return client


@pytest.fixture
def subscription(db):
    """Acme since Jan 15 on the hybrid plan, 8.25% tax; 1,500 API calls on Feb 16 and 17."""
    customer = CustomerFactory(name="Acme", tax_rate=Decimal("8.25"))
    subscription = subscribe(customer=customer, plan=hybrid_plan(), external_id="sub_acme")
    for at in ("2026-01-15 01:00Z", "2026-02-15 01:00Z"):
        with time_machine.travel(at, tick=False):
            billing_run()
    for at, count in (("2026-02-16 09:00Z", 1000), ("2026-02-17 09:00Z", 500)):
        raw = [
            {
                "transaction_id": f"{at}-{n}",
                "external_subscription_id": "sub_acme",
                "code": "api_calls",
            }
            for n in range(count)
        ]
        with time_machine.travel(at, tick=False):
            events_ingest(raw_events=raw)
    return subscription


DESCRIPTIONS = ["API calls", "Platform fee", "Seats"]  # usage in arrears, then fees in advance


def test_finance_sees_the_upcoming_invoice_with_its_lines_and_total_formatted(
    finance, subscription
):
    # Given Feb 20: the period Feb 15 – Mar 14 is in progress, billed on Mar 15
    with time_machine.travel("2026-02-20 12:00Z", tick=False):
        expected = upcoming_invoice(subscription=subscription)
        # When finance opens the subscription
        page = finance.get(f"/admin/subscriptions/subscription/{subscription.pk}/change/")
    html = page.content.decode()

    # Then: 1,500 calls × $0.002 = $3.00 in arrears; $500.00 + 5 × $25.00 in advance;
    # 628.00 + 8.25% tax (51.81) = $679.81
    assert page.status_code == 200
    assert (expected.billing_date, expected.subtotal, expected.total) == (
        day("2026-03-15"),
        Decimal("628.00"),
        Decimal("679.81"),
    )
    assert "Upcoming invoice — if the period closed now (billing date Mar 15, 2026)" in html
    assert '<td class="px-4 py-2 text-right whitespace-nowrap">1,500</td>' in html
    assert '<td class="px-4 py-2 text-right whitespace-nowrap">$0.002</td>' in html
    assert '<td class="px-4 py-2 text-right whitespace-nowrap">$3.00</td>' in html
    assert '<td class="px-4 py-2 text-right whitespace-nowrap">$500.00</td>' in html
    assert '<td class="px-4 py-2 text-right whitespace-nowrap">$25.00</td>' in html
    assert [line.description for line in expected.lines] == DESCRIPTIONS
    assert all(f'<td class="px-4 py-2">{text}</td>' in html for text in DESCRIPTIONS)
    assert (
        '<td class="px-4 py-2 text-right whitespace-nowrap" id="upcoming-subtotal">$628.00</td>'
        in html
    )
    assert "Tax (8.25%)" in html and ">$51.81<" in html
    assert '<strong id="upcoming-total">$679.81</strong>' in html


def test_a_subscription_past_its_term_has_no_period_in_progress(finance, subscription):
    # Given the 3-month term ended on Apr 15
    with time_machine.travel("2026-05-01 12:00Z", tick=False):
        assert upcoming_invoice(subscription=subscription) is None
        html = finance.get(f"/admin/subscriptions/subscription/{subscription.pk}/change/")
    html = html.content.decode()

    assert "No period in progress." in html
    assert "upcoming-total" not in html
