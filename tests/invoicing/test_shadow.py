"""Shadow billing (invoicing.shadow, manage.py shadow_billing, the admin page): the billing run's
invoices as of a date, built by the same code and saved nowhere."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from invoicing.models import CreditUse, Invoice, InvoiceLine, NumberSeries
from invoicing.services import billing_run
from invoicing.shadow import shadow_billing
from subscriptions.models import PrepaidCredit
from subscriptions.services import prepaid_credit_grant
from tests.factories import CustomerFactory, UserFactory, hybrid_plan, subscribe
from tests.invoicing.test_upcoming import calls, preview_plan

D = Decimal
AS_OF = dt.date(2026, 3, 1)


@pytest.fixture
def world(db):
    """acme (8.25 % tax, 50.00 prepaid) from Jan 1 on the preview plan, billed on Jan 1 only, 400
    calls in January and 700 in February; globex from Jan 15 on the hybrid plan, never billed,
    1,000 calls in its first period. As of Mar 1, due: acme Feb 1 and Mar 1, globex Jan 15 and
    Feb 15."""
    acme = CustomerFactory(external_id="acme", tax_rate=D("8.25"))
    with time_machine.travel("2026-01-01 00:00Z", tick=False):
        sub_acme = subscribe(customer=acme, plan=preview_plan(), start="2026-01-01")
        prepaid_credit_grant(subscription=sub_acme, amount=D("50.00"))
    with time_machine.travel("2026-01-01 01:00Z", tick=False):
        billing_run()
    sub_globex = subscribe(
        customer=CustomerFactory(external_id="globex"),
        plan=hybrid_plan(),
        external_id="sub_globex",
        start="2026-01-15",
    )
    calls(sub_acme, 400, "2026-01-10T12:00:00")
    calls(sub_acme, 700, "2026-02-10T12:00:00")
    calls(sub_globex, 1000, "2026-01-20T12:00:00")


def snapshot(invoice, lines) -> tuple:
    return (
        invoice.customer.external_id,
        invoice.subscription.external_id,
        invoice.billing_date,
        invoice.subtotal,
        invoice.tax_amount,
        invoice.total,
        tuple(
            (line.kind, line.description, line.period_start, line.quantity, line.amount)
            for line in lines
        ),
    )


def written() -> dict:
    return {
        "invoices": Invoice.objects.count(),
        "lines": InvoiceLine.objects.count(),
        "credit uses": CreditUse.objects.count(),
        "numbers": list(NumberSeries.objects.values_list("name", "next_value")),
        "prepaid": list(PrepaidCredit.objects.values_list("remaining", flat=True)),
    }


def test_a_shadow_run_as_of_d_is_the_billing_run_on_d_and_writes_nothing(world):
    # Given what is stored before the shadow run
    before = written()

    # When finance runs the billing as of Mar 1 in the shadow
    with CaptureQueriesContext(connection) as queries:
        shadow = shadow_billing(as_of=AS_OF)

    # Then nothing was written or locked
    assert written() == before
    # (the usage of a chunk is one SELECT that starts WITH its windows)
    statements = {q["sql"].lstrip().split()[0].upper() for q in queries.captured_queries}
    assert statements <= {"SELECT", "WITH"}
    assert not any("FOR UPDATE" in q["sql"] for q in queries.captured_queries)
    assert before["prepaid"] == [D("50")]

    # When the real billing run happens on Mar 1
    with time_machine.travel("2026-03-01 01:00Z", tick=False):
        real = billing_run(today=AS_OF).invoices

    # Then it made exactly the shadow's invoices, line for line
    assert [snapshot(b.invoice, b.lines) for b in shadow.invoices] == [
        snapshot(invoice, invoice.lines.all()) for invoice in real
    ]
    assert [
        (b.invoice.customer.external_id, str(b.invoice.billing_date), b.invoice.total)
        for b in shadow.invoices
    ] == [
        ("acme", "2026-02-01", D("1223.23")),  # 340 + 260 true-up − 50 credit + 80 + 500, + 8.25 %
        # 100 + 320 + 200 × 0.50 = 520.00 < 600: true-up 80.00; no credit left; 80 + 500 fees
        ("acme", "2026-03-01", D("1277.35")),  # 1,180.00 + 97.35 tax
        ("globex", "2026-01-15", D("625.00")),  # 500 + 5 × 25 in advance
        ("globex", "2026-02-15", D("627.00")),  # 1,000 × 0.002 + 625.00 in advance
    ]
    assert shadow.total == D("3752.58")
    assert PrepaidCredit.objects.get().remaining == D("0")  # the real run drew it, on Feb 1


def test_the_differences_report_lists_missing_extra_and_different_totals(world, tmp_path):
    # Given what finance expects: acme's Feb 1 right, its Mar 1 off by 7.35, an invoice the run
    # will not make, and no line for globex's Feb 15
    expected = tmp_path / "expected.csv"
    expected.write_text(
        "customer,subscription,billing_date,total\n"
        "acme,sub_acme,2026-02-01,1223.23\n"
        "acme,sub_acme,2026-03-01,1270.00\n"
        "globex,sub_globex,2026-01-15,625.00\n"
        "initech,sub_initech,2026-03-01,99.00\n"
    )
    out = tmp_path / "shadow.csv"
    before = written()

    # When
    with pytest.raises(CommandError, match="3 differences"):
        call_command(
            "shadow_billing",
            "--as-of",
            "2026-03-01",
            "--expected",
            str(expected),
            "--out",
            str(out),
        )

    # Then the CSV has one row per line, with the invoice totals, and nothing was saved
    rows = out.read_text().splitlines()
    assert rows[0] == (
        "customer,subscription,billing_date,period_start,period_end,kind,description,quantity,"
        "amount,invoice_subtotal,invoice_tax,invoice_total"
    )
    assert rows[1] == (
        "acme,sub_acme,2026-02-01,2026-01-01,2026-02-01,usage,API calls,400,340.00,1130.00,"
        "93.23,1223.23"
    )
    assert len(rows) == 1 + 5 + 4 + 2 + 3
    assert written() == before


def test_the_differences_are_named_with_their_delta(world, tmp_path, capsys):
    from invoicing.shadow import read_expected, shadow_differences

    run = shadow_billing(as_of=AS_OF)
    differences = shadow_differences(
        run,
        read_expected(
            "customer,subscription,billing_date,total\n"
            "acme,sub_acme,2026-02-01,1223.23\n"
            "acme,sub_acme,2026-03-01,1270.00\n"
            "globex,sub_globex,2026-01-15,625.00\n"
            "initech,sub_initech,2026-03-01,99.00\n"
        ),
    )
    assert [str(d) for d in differences] == [
        "total: acme sub_acme 2026-03-01 expected 1270, the run bills 1277.35 (+7.35)",
        "extra: globex sub_globex 2026-02-15 billed 627, not expected",
        "missing: initech sub_initech 2026-03-01 expected 99, the run bills nothing",
    ]
    assert [d.delta for d in differences] == [D("7.35"), None, None]


def test_a_bad_expected_csv_names_its_line(world, tmp_path):
    from core.errors import ValidationError
    from invoicing.shadow import read_expected

    with pytest.raises(ValidationError, match="Line 2 of the expected CSV"):
        read_expected("customer,subscription,billing_date,total\nacme,sub_acme,March,12\n")
    with pytest.raises(ValidationError, match="total missing"):
        read_expected("customer,subscription,billing_date\n")


# --- the admin page -------------------------------------------------------------------------------

URL = "/admin/invoicing/shadow-billing/"


def staff(role: str):
    user = UserFactory(username=role, is_staff=True)
    user.groups.add(Group.objects.get(name=role.capitalize()))
    return user


def test_finance_runs_it_in_the_admin_and_downloads_the_csv(world, client):
    client.force_login(staff("finance"))
    before = written()

    page = client.get(URL)
    assert page.status_code == 200
    shown = client.post(URL, {"as_of": "2026-03-01"})
    download = client.post(URL, {"as_of": "2026-03-01", "download": "1"})

    assert shown.status_code == 200
    html = shown.content.decode()
    assert "4 invoices for 2 subscriptions, nothing saved" in html
    assert "1,277.35" in html and "627.00" in html
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="shadow-billing-2026-03-01.csv"' in download["Content-Disposition"]
    assert download.content.decode().count("\n") == 1 + 14
    assert written() == before


def test_the_admin_page_shows_the_differences_of_an_uploaded_csv(world, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(staff("finance"))
    upload = SimpleUploadedFile(
        "expected.csv", b"customer,subscription,billing_date,total\nacme,sub_acme,2026-02-01,1200\n"
    )

    page = client.post(URL, {"as_of": "2026-03-01", "expected": upload})

    html = page.content.decode()
    assert "4 differences from the expected totals" in html
    assert "23.23" in html  # acme's Feb 1: 1,223.23 billed, 1,200 expected


def test_sales_cannot_open_shadow_billing_and_anonymous_goes_to_the_login(world, client):
    assert client.get(URL).status_code == 302
    client.force_login(staff("sales"))  # sales can view invoices, but billing is finance's
    assert client.get(URL).status_code == 403
