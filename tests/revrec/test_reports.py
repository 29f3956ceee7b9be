"""The revenue reports (revrec.reports, Revenue › Revenue by product, Revenue waterfall, Unbilled
receivables, Remaining obligations) and the finance dashboard's revenue tiles.

The figures of `books` (January to March 2026, recognized month by month, invoices posted):
- Acme Corp: a year of platform fee, 1,200.00 billed up front on an invoice of Jan 1; recognized
  by days: January 1200 × 31/365 = 101.92, February × 28/365 = 92.05, March 101.92.
- Beta LLC: API calls from Jan 15, invoiced 62.00 on Feb 15 for Jan 15 – Feb 14: recognized
  34.00 in January (17 days of 31) and 28.00 in February (14 days).
- Dune Inc.: 10 seats × 30.00 a month, Jan 1 – Mar 31 (90 days): 900.00 recognized 310.00,
  280.00, 310.00 (31, 28 and 31 days of 90); invoiced 300.00 on Jan 1 and Feb 1, March not yet.
- Carl GmbH (EUR): usage accrued on Feb 28 before it is invoiced, Dr Unbilled receivable /
  Cr Revenue 50.00 (a journal entry of kind usage_accrual carrying the customer).
"""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from catalog.models import Charge
from invoicing.models import CreditNote, Invoice, InvoiceLine
from revrec import reports
from revrec.ledger import Line, post_entry, reverse_entry
from revrec.models import RecognitionLine
from revrec.postings import journal_sync
from revrec.recognition import contracts_sync, recognize
from revrec.selectors import account_balances
from subscriptions.services import ItemSpec, subscription_create
from tests.factories import (
    ChargeFactory,
    CustomerFactory,
    MetricFactory,
    PlanFactory,
    UserFactory,
    day,
)

D = Decimal
pytestmark = pytest.mark.django_db


def invoice(subscription, number, issued, start, end, amount, kind=InvoiceLine.Kind.FEE):
    """A finalized invoice issued on `issued` with one line for the subscription's only item."""
    document = Invoice.objects.create(
        customer=subscription.customer,
        subscription=subscription,
        billing_date=day(issued),
        currency=subscription.currency,
        status=Invoice.Status.FINALIZED,
        number=number,
        issue_date=day(issued),
        subtotal=D(amount),
        total=D(amount),
    )
    InvoiceLine.objects.create(
        invoice=document,
        kind=kind,
        item=subscription.items.get(),
        description=number,
        period_start=day(start),
        period_end=day(end),
        quantity=D("1"),
        unit_price=D(amount),
        amount=D(amount),
    )
    return document


@pytest.fixture
def books():
    acme = CustomerFactory(name="Acme Corp")
    annual = PlanFactory(name="Annual", billing_interval_months=12)
    ChargeFactory(plan=annual, name="Platform fee", unit_price=D("1200"))
    platform = subscription_create(
        customer=acme,
        plan=annual,
        external_id="sub_a",
        start_date=day("2026-01-01"),
        term_months=12,
    )
    usage_plan = PlanFactory(name="Usage")
    calls = ChargeFactory(
        plan=usage_plan,
        name="API calls",
        metric=MetricFactory(),
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=D("0.002"),
        unit_name="call",
    )
    usage = subscription_create(
        customer=CustomerFactory(name="Beta LLC"),
        plan=usage_plan,
        external_id="sub_b",
        start_date=day("2026-01-15"),
        term_months=3,
        items=[ItemSpec(charge=calls, quantity=D("0"))],
    )
    team = PlanFactory(name="Team")
    ChargeFactory(plan=team, name="Seats", unit_price=D("30"), unit_name="seat")
    seats = subscription_create(
        customer=CustomerFactory(name="Dune Inc."),
        plan=team,
        external_id="sub_d",
        start_date=day("2026-01-01"),
        term_months=3,
        items=[ItemSpec(charge=team.charges.get(), quantity=D("10"))],
    )
    invoice(platform, "INV-A1", "2026-01-01", "2026-01-01", "2027-01-01", "1200.00")
    invoice(usage, "INV-B1", "2026-02-15", "2026-01-15", "2026-02-15", "62.00", "usage")
    invoice(seats, "INV-D1", "2026-01-01", "2026-01-01", "2026-02-01", "300.00")
    invoice(seats, "INV-D2", "2026-02-01", "2026-02-01", "2026-03-01", "300.00")
    contracts_sync()
    for month in ("2026-01-01", "2026-02-01", "2026-03-01"):
        recognize(day(month))
    journal_sync(today=day("2026-03-31"))
    carl = CustomerFactory(name="Carl GmbH", currency="EUR")
    accrual = post_entry(
        kind="usage_accrual",
        source="accrual:1",
        on=day("2026-02-28"),
        memo="Usage of February, not invoiced yet",
        currency="EUR",
        lines=[
            Line(role="unbilled_receivable", debit=D("50.00"), customer=carl),
            Line(role="revenue", credit=D("50.00"), customer=carl),
        ],
    )
    return {"acme": acme, "carl": carl, "accrual": accrual}


def table_rows(table):
    return [(row.product, row.customer, row.amounts, row.total) for row in table.rows]


# --- revenue by period × product × customer ----------------------------------------------------


def test_revenue_by_product_and_customer_per_month_and_currency(books):
    # When the report is taken for January to March 2026
    eur, usd = reports.revenue_by_month(day("2026-01-01"), day("2026-03-31"))

    # Then USD has a row per product and customer, sorted by product, with each month's revenue
    assert usd.months == [day("2026-01-01"), day("2026-02-01"), day("2026-03-01")]
    assert table_rows(usd) == [
        ("API calls (Usage)", "Beta LLC", [D("34.00"), D("28.00"), D("0")], D("62.00")),
        (
            "Platform fee (Annual)",
            "Acme Corp",
            [D("101.92"), D("92.05"), D("101.92")],
            D("295.89"),
        ),
        ("Seats (Team)", "Dune Inc.", [D("310.00"), D("280.00"), D("310.00")], D("900.00")),
    ]
    # Month totals: 34 + 101.92 + 310 = 445.92; 28 + 92.05 + 280 = 400.05; 101.92 + 310 = 411.92
    assert usd.month_totals == [D("445.92"), D("400.05"), D("411.92")]
    assert usd.total == D("1257.89")
    # They are the Revenue account's balance at March's end (nothing converted: EUR apart)
    assert account_balances(as_of=day("2026-03-31"))[("revenue", "USD")] == D("1257.89")
    assert table_rows(eur) == [
        ("Journal: usage_accrual", "Carl GmbH", [D("0"), D("50.00"), D("0")], D("50.00"))
    ]


def test_revenue_filters_by_customer_and_product(books):
    (usd,) = reports.revenue_by_month(
        day("2026-01-01"), day("2026-03-31"), customer_id=books["acme"].pk
    )
    assert [(r.product, r.total) for r in usd.rows] == [("Platform fee (Annual)", D("295.89"))]
    (usd,) = reports.revenue_by_month(day("2026-02-01"), day("2026-03-31"), product="Seats (Team)")
    assert [(r.customer, r.amounts) for r in usd.rows] == [
        ("Dune Inc.", [D("280.00"), D("310.00")])
    ]
    assert "Seats (Team)" in reports.product_choices()


def test_a_reversed_recognition_entry_takes_its_revenue_back_in_its_period(books):
    # Given Acme's March recognition reversed on April 2
    line = RecognitionLine.objects.get(
        obligation__contract__customer=books["acme"], month=day("2026-03-01")
    )
    reverse_entry(entry=line.entry, on=day("2026-04-02"), memo="Reversed")

    # Then March keeps its 101.92 and April shows −101.92 for Acme's platform fee
    (usd,) = reports.revenue_by_month(day("2026-03-01"), day("2026-04-30"))
    acme = next(r for r in usd.rows if r.customer == "Acme Corp")
    assert acme.amounts == [D("101.92"), D("-101.92")]
    assert usd.month_totals[1] == D("-101.92")


# --- the waterfall -----------------------------------------------------------------------------


def test_the_waterfall_by_billing_month_and_recognition_month(books):
    # When the waterfall shows February and March (January is "earlier")
    (usd,) = reports.waterfall(day("2026-02-01"), day("2026-03-31"))

    # Then January's billings (Acme's 1,200.00, Dune's first 300.00): earlier 101.92 + 310.00 =
    # 411.92, February 92.05, March 101.92 → 605.89 recognized so far;
    # February's (Beta's usage invoice covering January and February, Dune's February seats):
    # earlier 34.00 (January's usage, billed later), February 28.00 + 280.00 = 308.00 → 342.00;
    # not billed yet: Dune's March seats, 310.00, recognized before their invoice.
    rows = [(r.label, r.earlier, r.amounts, r.total) for r in usd.rows]
    assert rows == [
        ("Jan 2026", D("411.92"), [D("92.05"), D("101.92")], D("605.89")),
        ("Feb 2026", D("34.00"), [D("308.00"), D("0")], D("342.00")),
        ("Not billed yet", D("0"), [D("0"), D("310.00")], D("310.00")),
    ]
    assert (usd.earlier, usd.month_totals, usd.total) == (
        D("445.92"),
        [D("400.05"), D("411.92")],
        D("1257.89"),
    )
    # The EUR accrual is no recognition line, billed by no invoice: the waterfall leaves it out


# --- unbilled receivables ----------------------------------------------------------------------


def test_unbilled_receivables_per_customer(books):
    # At February's end: Carl's accrued 50.00 EUR; Dune has billed 600.00 for 590.00 recognized
    # (310 + 280): nothing ahead of billing
    rows = reports.unbilled(day("2026-02-28"))
    assert [(r.customer, r.currency, r.account, r.ahead, r.total) for r in rows] == [
        ("Carl GmbH", "EUR", D("50.00"), D("0"), D("50.00"))
    ]

    # Given the accrual reversed on invoicing, March 15
    reverse_entry(entry=books["accrual"], on=day("2026-03-15"), memo="Invoiced")

    # At March's end: Carl at zero (left out); Dune recognized 900.00 for 600.00 billed: 300.00
    # ahead of billing. Acme (1,200.00 billed, 295.89 recognized) and Beta (62.00 = 62.00) not.
    rows = reports.unbilled(day("2026-03-31"))
    assert [(r.customer, r.currency, r.account, r.ahead, r.total) for r in rows] == [
        ("Dune Inc.", "USD", D("0"), D("300.00"), D("300.00"))
    ]
    assert reports.unbilled_csv_rows(rows) == [
        ["currency", "customer", "unbilled_receivable_account", "recognized_ahead", "total"],
        ["USD", "Dune Inc.", "0.00", "300.00", "300.00"],
        ["USD", "Total", "0.00", "300.00", "300.00"],
    ]


def test_credit_notes_and_voids_count_against_what_was_billed(books):
    # Given a credit note of 100.00 on Dune's February invoice (Mar 10), and Acme's invoice
    # voided on Mar 20
    february = Invoice.objects.get(number="INV-D2")
    CreditNote.objects.create(
        invoice=february,
        customer=february.customer,
        number="CN-1",
        kind=CreditNote.Kind.AMOUNT,
        currency="USD",
        issue_date=day("2026-03-10"),
        subtotal=D("100.00"),
        tax_amount=D("0"),
        total=D("100.00"),
    )
    Invoice.objects.filter(number="INV-A1").update(
        status=Invoice.Status.VOID,
        voided_at=timezone.make_aware(dt.datetime(2026, 3, 20, 12)),
    )

    # At March's end: Dune billed 600.00 − 100.00 = 500.00 for 900.00 recognized: 400.00
    # ahead; Acme billed nothing (voided) for 295.89 recognized: 295.89 ahead
    rows = reports.unbilled(day("2026-03-31"))
    ahead = {r.customer: r.ahead for r in rows if r.currency == "USD"}
    assert ahead == {"Acme Corp": D("295.89"), "Dune Inc.": D("400.00")}
    # On March 19 the void is not there yet and the note is: Dune 590.00 − 500.00 = 90.00
    rows = reports.unbilled(day("2026-03-19"))
    assert {r.customer: r.ahead for r in rows if r.currency == "USD"} == {"Dune Inc.": D("90.00")}


# --- remaining performance obligations ---------------------------------------------------------


def test_remaining_obligations_at_a_months_end(books):
    # At February's end, March is not recognized yet (its entries are dated March 31):
    # Acme 1,200.00 − 101.92 − 92.05 = 1,006.03 (March to December, all within 12 months),
    # Dune's March 310.00; Beta's usage is variable: left out
    rows = reports.remaining_obligations(day("2026-02-01"))
    assert [(r.customer, r.currency, r.next_12, r.beyond, r.total) for r in rows] == [
        ("Acme Corp", "USD", D("1006.03"), D("0"), D("1006.03")),
        ("Dune Inc.", "USD", D("310.00"), D("0"), D("310.00")),
    ]
    # At March's end Dune is fully recognized: Acme's April to December, 1,200.00 − 295.89
    rows = reports.remaining_obligations(day("2026-03-01"))
    assert [(r.customer, r.total) for r in rows] == [("Acme Corp", D("904.11"))]


def test_remaining_obligations_beyond_twelve_months(settings):
    # Given two years of 10 seats × 30.00 from Jan 1, 2026, each month 300.00 (monthly
    # convention), January to March recognized
    settings.REVREC_CONVENTION = "monthly"
    plan = PlanFactory(name="Team")
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=D("30"), unit_name="seat")
    subscription_create(
        customer=CustomerFactory(name="Eon Ltd"),
        plan=plan,
        external_id="sub_e",
        start_date=day("2026-01-01"),
        term_months=24,
        items=[ItemSpec(charge=seats, quantity=D("10"))],
    )
    contracts_sync()
    recognize(day("2026-03-01"))

    # At March's end 21 months remain: April 2026 – March 2027 = 12 × 300.00 = 3,600.00 in the
    # next 12 months, April – December 2027 = 9 × 300.00 = 2,700.00 beyond
    (row,) = reports.remaining_obligations(day("2026-03-01"))
    assert (row.next_12, row.beyond, row.total) == (D("3600.00"), D("2700.00"), D("6300.00"))
    assert reports.rpo_csv_rows([row]) == [
        ["currency", "customer", "next_12_months", "beyond", "total"],
        ["USD", "Eon Ltd", "3600.00", "2700.00", "6300.00"],
        ["USD", "Total", "3600.00", "2700.00", "6300.00"],
    ]


# --- a fixed number of queries -----------------------------------------------------------------


def counts() -> list[int]:
    first, last = day("2026-01-01"), day("2026-03-31")
    calls = [
        lambda: reports.revenue_by_month(first, last),
        lambda: reports.waterfall(first, last),
        lambda: reports.unbilled(last),
        lambda: reports.remaining_obligations(day("2026-02-01")),
    ]
    result = []
    for call in calls:
        with CaptureQueriesContext(connection) as queries:
            call()
        result.append(len(queries))
    return result


def test_each_report_takes_a_fixed_number_of_queries(books, django_assert_num_queries):
    first, last = day("2026-01-01"), day("2026-03-31")
    with django_assert_num_queries(3):  # recognition lines, reversed ones, other entries
        reports.revenue_by_month(first, last)
    with django_assert_num_queries(3):  # recognition lines, reversed ones, invoice lines
        reports.waterfall(first, last)
    with django_assert_num_queries(5):  # the account; recognized, reversed, invoiced, credited
        reports.unbilled(last)
    with django_assert_num_queries(1):
        reports.remaining_obligations(day("2026-02-01"))
    # Given three more contracts, invoiced and recognized: the same number of queries
    before = counts()
    plan = PlanFactory(name="More")
    seats = ChargeFactory(plan=plan, name="Seats", unit_price=D("30"), unit_name="seat")
    for n in range(3):
        subscription = subscription_create(
            customer=CustomerFactory(),
            plan=plan,
            external_id=f"sub_more_{n}",
            start_date=day("2026-01-01"),
            term_months=3,
            items=[ItemSpec(charge=seats, quantity=D("2"))],
        )
        invoice(subscription, f"INV-M{n}", "2026-01-01", "2026-01-01", "2026-02-01", "60.00")
    contracts_sync()
    recognize(day("2026-03-01"))
    assert counts() == before


# --- the pages ---------------------------------------------------------------------------------


def login(client, role: str):
    user = UserFactory(username=role.lower(), is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def csv_rows(answer) -> list[list[str]]:
    return list(csv.reader(io.StringIO(answer.content.decode())))


PAGES = ["revrec-revenue-report", "revrec-waterfall", "revrec-unbilled", "revrec-rpo"]


@pytest.mark.parametrize("name", PAGES)
def test_sales_may_not_open_the_reports(client, name):
    login(client, "Sales")
    assert client.get(reverse(name)).status_code == 403
    assert client.get(reverse(name) + "?download=1").status_code == 403


def test_finance_sees_the_revenue_report_and_its_csv(client, books):
    login(client, "Finance")
    url = reverse("revrec-revenue-report")
    page = client.get(url, {"start": "2026-01", "end": "2026-03"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Platform fee (Annual)" in html and "$1,257.89" in html and "€50.00" in html

    answer = client.get(url, {"start": "2026-01", "end": "2026-03", "download": "1"})
    assert answer["Content-Disposition"] == 'attachment; filename="revenue-2026-01-2026-03.csv"'
    assert csv_rows(answer) == [
        ["currency", "product", "customer", "2026-01", "2026-02", "2026-03", "total"],
        ["EUR", "Journal: usage_accrual", "Carl GmbH", "0.00", "50.00", "0.00", "50.00"],
        ["EUR", "Total", "", "0.00", "50.00", "0.00", "50.00"],
        ["USD", "API calls (Usage)", "Beta LLC", "34.00", "28.00", "0.00", "62.00"],
        ["USD", "Platform fee (Annual)", "Acme Corp", "101.92", "92.05", "101.92", "295.89"],
        ["USD", "Seats (Team)", "Dune Inc.", "310.00", "280.00", "310.00", "900.00"],
        ["USD", "Total", "", "445.92", "400.05", "411.92", "1257.89"],
    ]
    # Filtered to a customer
    answer = client.get(
        url,
        {"start": "2026-01", "end": "2026-03", "customer": books["acme"].pk, "download": "1"},
    )
    assert [row[2] for row in csv_rows(answer)[1:]] == ["Acme Corp", ""]


def test_finance_downloads_the_waterfall_the_unbilled_and_the_rpo(client, books):
    login(client, "Finance")
    answer = client.get(
        reverse("revrec-waterfall"), {"start": "2026-02", "end": "2026-03", "download": "1"}
    )
    assert csv_rows(answer) == [
        ["currency", "billing_month", "earlier", "2026-02", "2026-03", "total"],
        ["USD", "2026-01", "411.92", "92.05", "101.92", "605.89"],
        ["USD", "2026-02", "34.00", "308.00", "0.00", "342.00"],
        ["USD", "not_billed", "0.00", "0.00", "310.00", "310.00"],
        ["USD", "Total", "445.92", "400.05", "411.92", "1257.89"],
    ]
    page = client.get(reverse("revrec-waterfall"), {"start": "2026-02", "end": "2026-03"})
    assert "Not billed yet" in page.content.decode()

    answer = client.get(reverse("revrec-unbilled"), {"as_of": "2026-02-28", "download": "1"})
    assert csv_rows(answer)[1] == ["EUR", "Carl GmbH", "50.00", "0.00", "50.00"]
    page = client.get(reverse("revrec-unbilled"), {"as_of": "2026-02-28"})
    assert page.status_code == 200 and "€50.00" in page.content.decode()

    answer = client.get(reverse("revrec-rpo"), {"month": "2026-02", "download": "1"})
    assert answer["Content-Disposition"] == 'attachment; filename="rpo-2026-02.csv"'
    assert csv_rows(answer) == [
        ["currency", "customer", "next_12_months", "beyond", "total"],
        ["USD", "Acme Corp", "1006.03", "0.00", "1006.03"],
        ["USD", "Dune Inc.", "310.00", "0.00", "310.00"],
        ["USD", "Total", "1316.03", "0.00", "1316.03"],
    ]
    page = client.get(reverse("revrec-rpo"), {"month": "2026-02"})
    assert "$1,316.03" in page.content.decode()


def test_the_finance_dashboard_shows_the_revenue_tiles(client, books):
    # On April 10, 2026 (March is last month)
    login(client, "Finance")
    with time_machine.travel("2026-04-10 12:00Z", tick=False):
        html = client.get(reverse("admin:index")).content.decode()

    # Revenue recognized in March 101.92 + 310.00 = 411.92; in 2026 1,257.89 (and €50.00 apart);
    # deferred revenue billed 1,200 + 62 + 600 = 1,862.00 − 1,257.89 = 604.11; unbilled: Dune's
    # 300.00 ahead of billing (Carl's €50.00 apart); RPO at April's end: Acme's April to
    # December, 904.11, all within 12 months
    assert 'id="revenue-kpis"' in html
    for text in (
        "Revenue recognized in March",
        "$411.92",
        "Revenue recognized in 2026",
        "$1,257.89",
        "also €50.00 (not converted)",
        "$604.11",
        "Unbilled receivables",
        "$300.00",
        "Remaining obligations, next 12 months",
        "$904.11",
    ):
        assert text in html, text
    for name in PAGES:
        assert reverse(name) in html
    assert reverse("admin:revrec_journalentry_deferred_rollforward") in html


def test_sales_sees_no_revenue_tiles(client, books):
    login(client, "Sales")
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="revenue-kpis"' not in html
