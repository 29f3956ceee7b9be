"""The deferred revenue roll-forward (revrec.selectors.deferred_rollforward) and its admin page.

Figures worked by hand: 12,000.00 billed on Jan 1 for the year, recognized daily per month
(Jan 12,000.00 × 31/365 = 1,019.18, Feb × 28/365 = 920.55, Mar 1,019.18, Apr × 30/365 =
986.30); a credit note of 300.00 in March; in EUR an invoice of 500.00 in February voided in
March. A January credit note dated after January closed lands in February."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from revrec.models import AccountingPeriod
from revrec.selectors import account_balances, deferred_rollforward
from tests.factories import UserFactory
from tests.revrec.ledger import closed, post

D = Decimal
pytestmark = pytest.mark.django_db
DEFERRED = dict(debit="deferred_revenue", credit="accounts_receivable")
RECOGNIZED = dict(kind="recognition", debit="deferred_revenue", credit="revenue")


@pytest.fixture
def year():
    """Four months of the books in USD and EUR (see the module's figures)."""
    post("invoice:1", "2026-01-01", "12000.00")
    post("recline:1", "2026-01-31", "1019.18", **RECOGNIZED)
    post("invoice:2", "2026-02-10", "500.00", currency="EUR")
    post("recline:2", "2026-02-28", "920.55", **RECOGNIZED)
    post("credit_note:1", "2026-03-12", "300.00", kind="credit_note", **DEFERRED)
    post("invoice:2", "2026-03-05", "500.00", kind="invoice_void", currency="EUR", **DEFERRED)
    post("recline:3", "2026-03-31", "1019.18", **RECOGNIZED)
    post("recline:4", "2026-04-30", "986.30", **RECOGNIZED)


def table(rows):
    return [
        (
            f"{r.period.start:%Y-%m}",
            r.currency,
            r.opening,
            r.billed,
            r.credited,
            r.recognized,
            r.closing,
        )
        for r in rows
    ]


def test_a_year_billed_up_front_rolled_forward_month_by_month(year):
    # When the roll-forward is taken over every period
    rows = deferred_rollforward()

    # Then per month and currency: opening + billed − credited − recognized = closing, and each
    # opening is the month before's closing. USD: Jan 0 + 12,000.00 − 1,019.18 = 10,980.82;
    # Feb − 920.55 = 10,060.27; Mar − 300.00 (credit note) − 1,019.18 = 8,741.09;
    # Apr − 986.30 = 7,754.79. EUR starts in February (500.00 billed), the void takes it out in
    # March, and April is a quiet month at 0.00.
    assert table(rows) == [
        ("2026-01", "USD", 0, D("12000.00"), 0, D("1019.18"), D("10980.82")),
        ("2026-02", "EUR", 0, D("500.00"), 0, 0, D("500.00")),
        ("2026-02", "USD", D("10980.82"), 0, 0, D("920.55"), D("10060.27")),
        ("2026-03", "EUR", D("500.00"), 0, D("500.00"), 0, D("0.00")),
        ("2026-03", "USD", D("10060.27"), 0, D("300.00"), D("1019.18"), D("8741.09")),
        ("2026-04", "EUR", D("0.00"), 0, 0, 0, D("0.00")),
        ("2026-04", "USD", D("8741.09"), 0, 0, D("986.30"), D("7754.79")),
    ]


def test_each_closing_ties_to_the_deferred_revenue_balance_at_the_period_end(year):
    # Given a credit note dated Jan 28 posted after January closed: it lands in February
    closed("2026-01")
    post("credit_note:2", "2026-01-28", "100.00", kind="credit_note", **DEFERRED)

    rows = deferred_rollforward()

    # Then January is unchanged and February shows the 100.00 credited
    jan, feb = rows[0], rows[2]
    assert (jan.credited, jan.closing) == (0, D("10980.82"))
    assert (feb.currency, feb.credited, feb.closing) == ("USD", D("100.00"), D("9960.27"))
    # And every closing is the account's balance on the period's last day
    for row in rows:
        balances = account_balances(as_of=row.period.end - dt.timedelta(days=1))
        assert balances.get(("deferred_revenue", row.currency), D(0)) == row.closing, row


def test_a_range_of_periods_opens_on_the_balance_before_it(year):
    # When the roll-forward is taken for March alone
    march = AccountingPeriod.objects.get(start="2026-03-01")
    rows = deferred_rollforward(march, march)

    # Then its openings are February's closings
    assert table(rows) == [
        ("2026-03", "EUR", D("500.00"), 0, D("500.00"), 0, D("0.00")),
        ("2026-03", "USD", D("10060.27"), 0, D("300.00"), D("1019.18"), D("8741.09")),
    ]


def test_a_reversed_recognition_counts_back_into_recognized(year):
    # Given April's recognition reversed in April (Dr Revenue / Cr Deferred revenue)
    post(
        "entry:99",
        "2026-04-30",
        "986.30",
        kind="reversal:recognition",
        credit="deferred_revenue",
        debit="revenue",
    )

    # Then April recognizes nothing and closes where March did
    april = deferred_rollforward()[-1]
    assert (april.recognized, april.closing) == (D("0.00"), D("8741.09"))


def test_nothing_posted_means_no_rows():
    assert deferred_rollforward() == []


def login(client, role: str):
    user = UserFactory(username=role.lower(), is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)


def test_the_page_and_its_csv_for_finance(client, year):
    login(client, "Finance")
    url = reverse("admin:revrec_journalentry_deferred_rollforward")

    # When finance opens the page (the twelve periods up to the latest by default)
    page = client.get(url)

    # Then it lists each period and currency with its figures
    assert page.status_code == 200
    html = page.content.decode()
    assert "Credited/voided" in html
    assert 'data-period="2026-03" data-currency="USD"' in html
    assert "8,741.09" in html and "10,060.27" in html

    # And the CSV has the columns and the figures in the currency's minor unit
    feb = AccountingPeriod.objects.get(start="2026-02-01")
    mar = AccountingPeriod.objects.get(start="2026-03-01")
    answer = client.get(url, {"start": feb.pk, "end": mar.pk, "download": "1"})
    assert (
        answer["Content-Disposition"]
        == 'attachment; filename="deferred-revenue-2026-02-2026-03.csv"'
    )
    assert list(csv.reader(io.StringIO(answer.content.decode()))) == [
        ["period", "currency", "opening", "billed", "credited_voided", "recognized", "closing"],
        ["2026-02", "EUR", "0.00", "500.00", "0.00", "0.00", "500.00"],
        ["2026-02", "USD", "10980.82", "0.00", "0.00", "920.55", "10060.27"],
        ["2026-03", "EUR", "500.00", "0.00", "500.00", "0.00", "0.00"],
        ["2026-03", "USD", "10060.27", "0.00", "300.00", "1019.18", "8741.09"],
    ]


def test_sales_may_not_see_it(client, year):
    login(client, "Sales")
    url = reverse("admin:revrec_journalentry_deferred_rollforward")
    assert client.get(url).status_code == 403
    assert client.get(url, {"download": "1"}).status_code == 403
