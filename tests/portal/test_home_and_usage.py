"""The portal's home (balance, overdue, next invoice, alerts fired) and usage pages (issue 18)."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from catalog.models import Charge
from core.periods import Period
from invoicing.models import Invoice
from invoicing.selectors import upcoming_invoice
from invoicing.services import billing_run
from metering.models import AlertFiring, UsageAlert
from metering.selectors import daily_usage, metric_quantity
from metering.services import events_ingest
from receivables.selectors import customer_balances
from receivables.services import payment_record
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PortalMembershipFactory,
    TokensMetricFactory,
    day,
    hybrid_plan,
    subscribe,
)

TODAY = "2026-02-20 12:00Z"


def ingest(subscription, at: str, calls: int = 0, tokens: list[int] = ()) -> None:
    """Events as the API receives them, at `at` (the clock is there too): rollups are kept."""
    raw = [
        {
            "transaction_id": f"{subscription.external_id}-{at}-c{n}",
            "external_subscription_id": subscription.external_id,
            "code": "api_calls",
        }
        for n in range(calls)
    ] + [
        {
            "transaction_id": f"{subscription.external_id}-{at}-t{n}",
            "external_subscription_id": subscription.external_id,
            "code": "tokens",
            "properties": {"tokens": count},
        }
        for n, count in enumerate(tokens)
    ]
    with time_machine.travel(at, tick=False):
        events_ingest(raw_events=raw)


def bill(on: str) -> None:
    with time_machine.travel(f"{on} 01:00Z", tick=False):
        billing_run()


@pytest.fixture
def acme(db):
    """Acme on the hybrid plan + tokens, since Jan 15 (monthly, due in 30 days, no tax):

    - INV-000001 (Jan 15): 500.00 platform + 5 seats × 25.00 = 625.00, due Feb 14;
    - INV-000002 (Feb 15): 500 calls × 0.002 = 1.00 and 1,200 tokens × 0.01 = 12.00 in arrears,
      625.00 in advance = 638.00, due Mar 17;
    - 200.00 paid on INV-000001;
    - this period (Feb 15 – Mar 14) so far: 250 calls on Feb 16, 40 on Feb 18, and
      1,234,567 tokens on Feb 18.
    """
    customer = CustomerFactory(external_id="acme", name="Acme", billing_email="ap@acme.example")
    plan = hybrid_plan()
    ChargeFactory(
        plan=plan,
        name="Tokens",
        metric=TokensMetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0.01"),
        unit_name="token",
        default_quantity=Decimal("0"),
        position=3,
    )
    subscription = subscribe(customer=customer, plan=plan, external_id="sub_acme")
    bill("2026-01-15")
    ingest(subscription, "2026-01-20 10:00Z", calls=300, tokens=[1000])
    ingest(subscription, "2026-01-21 10:00Z", calls=200, tokens=[200])
    bill("2026-02-15")
    payment_record(
        customer=customer,
        amount=Decimal("200.00"),
        currency="USD",
        received_on=day("2026-02-16"),
        allocations={Invoice.objects.get(number="INV-000001"): Decimal("200.00")},
    )
    ingest(subscription, "2026-02-16 09:00Z", calls=250)
    ingest(subscription, "2026-02-18 09:00Z", calls=40, tokens=[1_234_000, 567])
    return customer


@pytest.fixture
def portal(acme, client):
    client.force_login(PortalMembershipFactory(customer=acme, user__username="ana").user)
    with time_machine.travel(TODAY, tick=False):
        yield client


@pytest.fixture
def globex(db):
    customer = CustomerFactory(external_id="globex", name="Globex")
    return subscribe(customer=customer, plan=hybrid_plan(), external_id="sub_globex")


def test_the_invoices_of_the_fixture_are_as_described(acme):
    assert list(Invoice.objects.order_by("number").values_list("number", "total", "due_date")) == [
        ("INV-000001", Decimal("625.00"), day("2026-02-14")),
        ("INV-000002", Decimal("638.00"), day("2026-03-17")),
    ]


# --- home -----------------------------------------------------------------------------------


def test_balances_are_the_open_invoices_less_the_payments_and_the_overdue_part(acme):
    # Given INV-000001 (625.00, due Feb 14) with 200.00 paid, and INV-000002 (638.00, due Mar 17)
    # When the balance is read on Feb 14, then on Feb 15
    on_due_date = customer_balances(customer=acme, as_of=day("2026-02-14"))
    day_after = customer_balances(customer=acme, as_of=day("2026-02-15"))

    # Then 425.00 + 638.00 is due; INV-000001 is overdue from the day after its due date
    assert [(b.currency, b.due, b.overdue, b.open_invoices) for b in on_due_date] == [
        ("USD", Decimal("1063.00"), Decimal("0.00"), 2)
    ]
    assert [(b.due, b.overdue, b.overdue_invoices) for b in day_after] == [
        (Decimal("1063.00"), Decimal("425.00"), 1)
    ]


def test_home_shows_balance_due_overdue_and_the_next_invoice_estimate(portal, acme):
    # Given the estimate of the next invoice, Mar 15: 625.00 in advance; 290 calls = 0.58 and
    # 1,234,567 tokens × 0.01 = 12,345.67 in arrears
    estimate = upcoming_invoice(subscription=acme.subscriptions.get())
    assert (estimate.billing_date, estimate.total) == (day("2026-03-15"), Decimal("12971.25"))

    # When the customer opens the portal
    page = portal.get("/portal/").content.decode()

    # Then the figures are money, exactly
    assert "$1,063.00" in page  # balance due: 425.00 + 638.00
    assert "2 open invoices" in page
    assert "$425.00" in page and "1 invoice past due" in page
    assert "$12,971.25" in page and "estimated, on Mar 15, 2026" in page
    assert 'href="/portal/subscriptions/sub_acme/usage/"' in page
    assert 'href="/portal/invoices/"' in page and 'href="/portal/alerts/"' in page
    assert '<nav class="nav" aria-label="Billing portal">' in page


def test_home_lists_the_alerts_that_fired_latest_first(portal, acme, globex):
    # Given a bill alert that fired on Jan 20 and a calls alert on Feb 16 (and Globex's own)
    subscription = acme.subscriptions.get()
    bill_alert = UsageAlert.objects.create(
        subscription=subscription, threshold=Decimal("630"), name="Budget"
    )
    calls_alert = UsageAlert.objects.create(
        subscription=subscription, metric=MetricFactory(), threshold=Decimal("200")
    )
    secret = UsageAlert.objects.create(subscription=globex, threshold=1, name="Globex secret")
    for alert, value, at in [
        (bill_alert, "631.20", "2026-01-20 10:05Z"),
        (calls_alert, "250", "2026-02-16 09:05Z"),
        (secret, "625", "2026-02-17 09:05Z"),
    ]:
        AlertFiring.objects.create(
            alert=alert,
            period_start=day("2026-01-15"),
            period_end=day("2026-02-15"),
            value=Decimal(value),
            threshold=alert.threshold,
            fired_at=dt.datetime.fromisoformat(at),
        )

    page = portal.get("/portal/").content.decode()

    # Then the latest shows first, values as quantities or money; not Globex's
    calls_row = page.index('<td data-label="Value" class="num">250</td>')
    bill_row = page.index('<td data-label="Value" class="num">$631.20</td>')
    assert calls_row < bill_row
    assert '<td data-label="Threshold" class="num">$630.00</td>' in page
    assert "Globex secret" not in page


def test_login_lands_on_home_and_staff_go_to_the_admin(acme, client, admin_user):
    PortalMembershipFactory(customer=acme, user__username="bea")
    answer = client.post("/portal/login/", {"username": "bea", "password": "pass-1234"})
    assert answer.status_code == 302 and answer["Location"] == "/portal/"

    client.force_login(admin_user)
    assert client.get("/portal/")["Location"] == "/admin/"


# --- usage ----------------------------------------------------------------------------------


def test_the_usage_page_shows_usage_so_far_the_chart_data_and_the_estimate(portal, acme):
    page = portal.get("/portal/subscriptions/sub_acme/usage/").content.decode()

    # Usage so far this period, formatted
    assert "billing period Feb 15 – Mar 14, 2026" in page
    assert ">290<" in page and "$0.58" in page
    assert ">1,234,567<" in page and "$12,345.67" in page
    # The estimate: its lines and total
    assert "Estimated total" in page and "$12,971.25" in page
    assert "$0.002" in page  # a unit price in its currency
    # The chart: Chart.js served locally, and this period beside the previous one, day by day
    assert "/static/unfold/js/chart/chart.js" in page
    assert '"current": ["0", "250", "0", "40", "0", "0"]' in page
    assert '"previous": ["0", "0", "0", "0", "0", "300", "200"' in page
    assert 'href="/portal/subscriptions/sub_acme/usage.csv"' in page


def test_the_usage_csv_has_one_row_per_day_and_metric_of_both_periods(portal, acme):
    answer = portal.get("/portal/subscriptions/sub_acme/usage.csv")

    assert answer["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="sub_acme-daily-usage.csv"' in answer["Content-Disposition"]
    rows = answer.content.decode().splitlines()
    assert rows[0] == "date,metric,quantity"
    assert len(rows) == 1 + 2 * (31 + 6)  # Jan 15 – Feb 14 and Feb 15 – 20, two metrics
    assert rows[1:3] == ["2026-01-15,api_calls,0", "2026-01-15,tokens,0"]
    assert rows[11:15] == [
        "2026-01-20,api_calls,300",
        "2026-01-20,tokens,1000",
        "2026-01-21,api_calls,200",
        "2026-01-21,tokens,200",
    ]
    assert rows[-6:] == [
        "2026-02-18,api_calls,40",
        "2026-02-18,tokens,1234567",
        "2026-02-19,api_calls,0",
        "2026-02-19,tokens,0",
        "2026-02-20,api_calls,0",
        "2026-02-20,tokens,0",
    ]


def test_daily_usage_from_the_rollups_equals_the_events_read_per_day(acme):
    subscription = acme.subscriptions.get()
    period_days = [day("2026-02-15") + dt.timedelta(days=n) for n in range(6)]
    with time_machine.travel(TODAY, tick=False):
        series = daily_usage(
            subscription=subscription, period=Period(day("2026-02-15"), day("2026-03-15"))
        )
    for usage in series:
        assert [d for d, _ in usage.days] == period_days  # up to today
        for when, quantity in usage.days:
            expected, _ = metric_quantity(
                subscription=subscription,
                metric=usage.metric,
                period=Period(when, when + dt.timedelta(days=1)),
            )
            assert quantity == expected


@pytest.mark.parametrize("path", ["usage/", "usage.csv"])
def test_another_customers_subscription_is_not_found(portal, globex, path):
    assert portal.get(f"/portal/subscriptions/sub_globex/{path}").status_code == 404
    assert portal.get(f"/portal/subscriptions/sub_nothing/{path}").status_code == 404


def test_the_usage_pages_need_a_login(client, acme):
    answer = client.get("/portal/subscriptions/sub_acme/usage.csv")
    assert answer.status_code == 302 and answer["Location"].startswith("/portal/login/")


def test_the_usage_estimate_explains_each_usage_line_and_reads_periods_by_their_last_day(
    portal, acme
):
    page = portal.get("/portal/subscriptions/sub_acme/usage/").content.decode()

    assert "billing period Feb 15 – Mar 14, 2026" in page
    assert "1,234,567 × $0.01 = $12,345.67" in page  # how the Tokens line was rated
    assert "290 × $0.002 = $0.58" in page
    assert "Feb 15 – Mar 14, 2026</td>" in page  # a usage line's period: its last day included
    assert "Mar 15 – Apr 14, 2026</td>" in page  # a fee in advance for the next period
    assert "Mar 15, 2026</td>" not in page  # never the exclusive end


def test_an_invoice_in_the_portal_reads_its_periods_by_their_last_day(portal, acme):
    page = portal.get("/portal/invoices/INV-000002/").content.decode()

    assert "Jan 15 – Feb 14, 2026</td>" in page
    assert "Feb 15 – Mar 14, 2026</td>" in page
    assert "500 × $0.002 = $1.00" in page
