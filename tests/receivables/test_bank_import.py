"""Bank statement import: parsing (every bad row by its line number, nothing imported), matching by
the invoice number in the reference then by customer and exact open amount, the same file or an
overlapping one recorded once, confirming once, and the admin pages (finance only)."""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile

from core.errors import ValidationError
from invoicing.models import Invoice
from receivables.bank import line_confirm, line_ignore, statement_import, statement_parse
from receivables.models import BankLine, BankStatement, Payment, PaymentAllocation
from tests.factories import CustomerFactory, PlanFactory, UserFactory, day, subscribe

D = Decimal
numbers = itertools.count(1)

pytestmark = pytest.mark.usefixtures("today")


@pytest.fixture
def today():
    with time_machine.travel("2026-03-31 12:00Z", tick=False):
        yield


def customer(name, currency="USD"):
    c = CustomerFactory(name=name, currency=currency, external_id=name.lower().replace(" ", "-"))
    subscribe(customer=c, plan=PlanFactory(currency=currency), external_id=f"sub_{c.external_id}")
    return c


def invoice(cust, total, *, number=None, due="2026-03-15"):
    n = next(numbers)
    return Invoice.objects.create(
        customer=cust,
        subscription=cust.subscriptions.get(),
        billing_date=day("2026-03-01") + dt.timedelta(days=n * 1000),  # one per period
        currency=cust.currency,
        status=Invoice.Status.FINALIZED,
        number=number or f"INV-{n + 900:06d}",
        issue_date=day("2026-03-01"),
        due_date=day(due),
        subtotal=D(total),
        total=D(total),
    )


def csv_file(*rows, header="date,amount,reference,payer"):
    return ("\n".join([header, *rows]) + "\n").encode()


def do_import(content, name="march.csv"):
    return statement_import(file_name=name, content=content, currency="USD")


# --- parsing ------------------------------------------------------------------------------------


def test_parsing_tolerant_headers_both_date_forms_thousands_and_outgoing(db):
    # Given a bank's own header names, an ISO and a day-first date, a thousands separator and
    # an outgoing line
    content = csv_file(
        '2026-03-05,"1,250.00",Invoice INV-000123,Acme Corp',
        "06/03/2026,99.50,,Globex",
        "07/03/2026,-40.00,Bank fee,Our bank",
        header="Booking Date;Amount;Description;Name".replace(";", ","),
    )

    # When it is parsed
    parsed = statement_parse(content, currency="USD")

    # Then the two incoming lines are read, the outgoing one skipped (line 4)
    assert parsed.errors == []
    assert [(p.row, p.booked_on, p.amount, p.reference, p.payer) for p in parsed.lines] == [
        (2, dt.date(2026, 3, 5), D("1250.00"), "Invoice INV-000123", "Acme Corp"),
        (3, dt.date(2026, 3, 6), D("99.50"), "", "Globex"),
    ]
    assert parsed.outgoing == [4]


def test_every_bad_row_is_reported_with_its_line_number_and_nothing_is_imported(db):
    # Given a file with a good line and four bad ones
    content = csv_file(
        "2026-03-05,100.00,INV-000001,Acme",
        "2026-13-05,100.00,INV-000002,Acme",
        "2026-03-06,12,50,INV-000003,Acme",
        "2026-03-07,abc,INV-000004,Acme",
        "2026-03-08,0.005,x,Acme",
        "2026-04-30,10.00,x,Acme",
    )

    # When it is imported
    with pytest.raises(ValidationError) as caught:
        do_import(content)

    # Then each bad row is named with what is wrong, and nothing was recorded
    assert caught.value.details == [
        'Line 3: the date "2026-13-05" is not YYYY-MM-DD or DD/MM/YYYY.',
        "Line 4: 5 field(s), the header has 4 (a comma in an amount or reference: put the field "
        "in quotes).",
        'Line 5: the amount "abc" is not a number like 1250.00 or 1,250.00.',
        'Line 6: the amount "0.005" has more decimals than USD allows.',
        "Line 7: the date 2026-04-30 is in the future.",
    ]
    assert "march.csv was not imported: 5 problem(s)" in caught.value.message
    assert BankStatement.objects.count() == BankLine.objects.count() == 0


def test_a_missing_column_is_named():
    parsed = statement_parse(b"date,amount,memo\n2026-03-05,10.00,x\n", currency="USD")
    assert parsed.errors == [
        "Line 1: no column for payer (the header has 'date', 'amount', 'memo'). The columns are "
        "date, amount, reference and payer, optionally currency."
    ]
    assert statement_parse(b"", currency="USD").errors == [
        "The file is empty: it needs a header row and at least one line."
    ]
    header = b"date,amount,reference,payer\n"
    assert statement_parse(header + b"12,50\n", currency="USD").errors == [
        "Line 2: 2 field(s), the header has 4."
    ]
    assert statement_parse(header + b"2026-03-05,12,50\n", currency="USD").errors == [
        "Line 2: 3 field(s), the header has 4."
    ]
    assert statement_parse(header + b"2026-03-05,10,5,x,y\n", currency="USD").errors == [
        "Line 2: 5 field(s), the header has 4 (a comma in an amount or reference: put the "
        "field in quotes)."
    ]


# --- matching -----------------------------------------------------------------------------------


def test_matching_by_number_then_customer_and_exact_amount_else_unmatched(db):
    # Given Acme with INV-000101 (500.00) and INV-000102 (120.00); Globex with two invoices
    # of 80.00; Initech paid up
    acme, globex = customer("Acme"), customer("Globex")
    customer("Initech")
    inv101 = invoice(acme, "500.00", number="INV-000101")
    inv102 = invoice(acme, "120.00", number="INV-000102")
    invoice(globex, "80.00", number="INV-000201")
    invoice(globex, "80.00", number="INV-000202")

    # When a statement with five lines is imported
    result = do_import(
        csv_file(
            "2026-03-20,450.00,Payment inv 101 thanks,ACME LTD",  # number (short form), partial
            "2026-03-21,120.00,March services,acme",  # payer + exact amount
            "2026-03-22,80.00,Globex March,Globex",  # two invoices of 80.00: ambiguous
            "2026-03-23,10.00,INV-000999,Initech",  # unknown number, no open invoice
            "2026-03-24,5.00,Interest,",  # nothing to go on
        )
    )

    # Then two are proposed with their rule, three wait unmatched with the reason
    lines = list(result.statement.lines.order_by("row"))
    assert [(x.status, x.customer, x.invoice, x.rule) for x in lines] == [
        ("proposed", acme, inv101, "number"),
        ("proposed", acme, inv102, "amount"),
        ("unmatched", globex, None, ""),
        ("unmatched", Customer_named("Initech"), None, ""),
        ("unmatched", None, None, ""),
    ]
    assert lines[2].note == (
        "No invoice number in the reference; Globex has 2 invoices open for this amount "
        "(INV-000201, INV-000202)"
    )
    assert lines[3].note == "Initech has no invoice open for exactly this amount"
    assert lines[4].note == "No invoice number in the reference and no payer"
    assert result.message == "march.csv: 5 new lines recorded."


def Customer_named(name):
    from customers.models import Customer

    return Customer.objects.get(name=name)


def test_a_paid_or_foreign_currency_invoice_in_the_reference_is_not_proposed(db):
    # Given INV-000301 paid in full, and a euro customer's INV-000302
    acme, euro = customer("Acme"), customer("Euro GmbH", currency="EUR")
    paid = invoice(acme, "50.00", number="INV-000301")
    paid.paid_amount = D("50.00")
    paid.status = Invoice.Status.PAID
    paid.save()
    invoice(euro, "70.00", number="INV-000302")

    # When lines name them
    result = do_import(csv_file("2026-03-20,50.00,INV-000301,", "2026-03-20,70.00,INV-000302,"))

    # Then both wait, saying why
    assert [(x.status, x.note) for x in result.statement.lines.order_by("row")] == [
        ("unmatched", "INV-000301 has nothing left to pay"),
        ("unmatched", "INV-000302 is in EUR, not USD"),
    ]


# --- the same file, an overlapping file ---------------------------------------------------------


def test_the_same_file_twice_records_nothing_twice_and_says_so(db):
    # Given a statement imported once (with two identical lines: two real payments)
    coffee = "2026-03-20,10.00,Coffee club,Bob"
    content = csv_file(coffee, coffee, "2026-03-21,-3.00,Fee,Bank")
    first = do_import(content)
    assert first.message == (
        "march.csv: 2 new lines recorded; 1 outgoing (negative) skipped: line(s) 4."
    )

    # When the same file is uploaded again
    again = do_import(content, name="march-again.csv")

    # Then nothing is recorded and it says so
    assert again.already_imported and again.statement == first.statement
    assert again.message.startswith("march.csv was already imported on Mar 31, 2026")
    assert (BankStatement.objects.count(), BankLine.objects.count()) == (1, 2)


def test_an_overlapping_statement_adds_only_the_new_lines(db):
    # Given March 1–20 imported (one 10.00 from Bob on the 20th)
    do_import(csv_file("2026-03-10,25.00,A,Ann", "2026-03-20,10.00,Coffee club,Bob"))

    # When March 15–31 arrives: the 20th again, plus a second identical 10.00 and a new line
    result = do_import(
        csv_file(
            "2026-03-20,10.00,Coffee club,Bob",
            "2026-03-20,10.00,Coffee club,Bob",
            "2026-03-28,40.00,B,Cid",
        ),
        name="late-march.csv",
    )

    # Then only the second 10.00 and the 40.00 are new
    assert result.message == (
        "late-march.csv: 2 new lines recorded; 1 already recorded from an earlier statement."
    )
    assert sorted(result.statement.lines.values_list("row", "amount")) == [
        (3, D("10.00")),
        (4, D("40.00")),
    ]
    assert BankLine.objects.count() == 4


# --- confirming ---------------------------------------------------------------------------------


def test_confirming_records_one_payment_and_marks_the_invoice_paid_once(db):
    # Given a line proposed for INV-000401 (300.00 open)
    acme = customer("Acme")
    inv = invoice(acme, "300.00", number="INV-000401")
    (line,) = do_import(csv_file("2026-03-20,300.00,INV-000401,Acme")).statement.lines.all()
    finance = UserFactory(username="fiona")

    # When it is confirmed, twice
    confirmed = line_confirm(line=line, by=finance)
    again = line_confirm(line=line, by=finance)

    # Then one payment of 300.00 on Mar 20 paid the invoice
    payment = Payment.objects.get()
    assert (payment.customer, payment.amount, payment.received_on, payment.reference) == (
        acme,
        D("300.00"),
        dt.date(2026, 3, 20),
        "INV-000401",
    )
    assert payment.method == Payment.Method.BANK_TRANSFER and payment.created_by == finance
    assert confirmed.payment == again.payment == payment
    assert confirmed.status == again.status == BankLine.Status.CONFIRMED
    inv.refresh_from_db()
    assert (inv.status, inv.paid_amount, inv.open_amount) == (Invoice.Status.PAID, D("300.00"), 0)
    assert list(PaymentAllocation.objects.values_list("invoice__number", "amount")) == [
        ("INV-000401", D("300.00"))
    ]


def test_more_than_the_invoice_goes_on_account_and_a_manual_assignment_pays_oldest_first(db):
    # Given INV-000501 (100.00) and INV-000502 (60.00, due later) for Acme
    acme = customer("Acme")
    inv1 = invoice(acme, "100.00", number="INV-000501", due="2026-03-10")
    inv2 = invoice(acme, "60.00", number="INV-000502", due="2026-03-20")
    statement = do_import(
        csv_file("2026-03-20,130.00,INV-000501,Acme", "2026-03-21,45.00,Wire 8812,ACME HOLDING")
    ).statement
    over, unknown = statement.lines.order_by("row")
    assert unknown.status == BankLine.Status.UNMATCHED

    # When the 130.00 is confirmed, and the unmatched 45.00 is assigned to Acme (no invoice)
    line_confirm(line=over)
    line_confirm(line=unknown, customer=acme)

    # Then 100.00 paid INV-000501 and 30.00 went on account — which the 45.00 does not touch:
    # the 45.00 goes to INV-000502 (the oldest still open)
    inv1.refresh_from_db(), inv2.refresh_from_db()
    assert (inv1.status, inv2.open_amount) == (Invoice.Status.PAID, D("15.00"))
    rows = PaymentAllocation.objects.values_list("payment__amount", "invoice__number", "amount")
    assert sorted(rows, key=lambda r: (r[0], r[1] or "")) == [
        (D("45.00"), "INV-000502", D("45.00")),
        (D("130.00"), None, D("30.00")),
        (D("130.00"), "INV-000501", D("100.00")),
    ]
    unknown.refresh_from_db()
    assert (unknown.status, unknown.rule, unknown.customer) == ("confirmed", "manual", acme)


def test_a_line_is_ignored_with_a_reason_and_then_records_nothing(db):
    (line,) = do_import(csv_file("2026-03-24,5.00,Interest,")).statement.lines.all()
    with pytest.raises(ValidationError, match="Say why"):
        line_ignore(line=line, reason=" ")
    line_ignore(line=line, reason="Interest from the bank")
    line.refresh_from_db()
    assert (line.status, line.note) == ("ignored", "Interest from the bank")
    assert Payment.objects.count() == 0


# --- admin --------------------------------------------------------------------------------------


def login(client, group):
    user = UserFactory(username=group, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return user


def upload(client, content, name="march.csv"):
    return client.post(
        "/admin/receivables/bankstatement/add/",
        {"file": SimpleUploadedFile(name, content, content_type="text/csv"), "currency": "USD"},
        follow=True,
    )


def test_finance_uploads_confirms_and_works_the_queue(client, db):
    # Given finance, and Acme with INV-000601 (200.00) and INV-000602 (75.00)
    login(client, "Finance")
    acme = customer("Acme")
    inv601 = invoice(acme, "200.00", number="INV-000601")
    inv602 = invoice(acme, "75.00", number="INV-000602")
    content = csv_file(
        "2026-03-20,200.00,INV-000601,Acme",
        "2026-03-21,75.00,Transfer,Acme",
        "2026-03-22,9.99,?,Zed",
    )

    # When the file is uploaded
    page = upload(client, content)

    # Then the statement page shows the lines grouped, with their rule
    html = page.content.decode()
    assert page.status_code == 200
    assert "march.csv: 3 new lines recorded." in html
    assert "Proposed (2)" in html and "Unmatched (1)" in html and "Confirmed (0)" in html
    assert "Invoice number in reference" in html and "Customer and exact open amount" in html
    statement = BankStatement.objects.get()
    first, second, third = statement.lines.order_by("row")

    # When one line is confirmed, then "Confirm all proposed"
    url = f"/admin/receivables/bankstatement/{statement.pk}/change/"
    page = client.post(url, {"confirm": first.pk}, follow=True)
    assert "Recorded $200.00 from Acme" in page.content.decode()
    page = client.post(url, {"confirm_all": "1"}, follow=True)
    assert "1 line(s) confirmed." in page.content.decode()
    page = client.post(url, {"confirm": first.pk}, follow=True)  # a second click: nothing more
    assert "Line 2 was confirmed already." in page.content.decode()

    # Then two payments paid both invoices
    assert Payment.objects.count() == 2
    inv601.refresh_from_db(), inv602.refresh_from_db()
    assert inv601.status == inv602.status == Invoice.Status.PAID

    # When the unmatched line is ignored from the queue
    queue = client.get("/admin/receivables/bankline/")
    assert queue.status_code == 200 and "Zed" in queue.content.decode()
    page = client.post(
        f"/admin/receivables/bankline/{third.pk}/decide/",
        {"action": "ignore", "reason": "Test transfer"},
        follow=True,
    )
    third.refresh_from_db()
    assert third.status == "ignored"
    assert "Zed" not in client.get("/admin/receivables/bankline/").content.decode()

    # And the same file again records nothing, and says so
    page = upload(client, content, name="again.csv")
    assert "march.csv was already imported on Mar 31, 2026: nothing was recorded twice." in (
        page.content.decode()
    )
    assert BankLine.objects.count() == 3


def test_an_unmatched_line_is_assigned_to_a_customer_and_invoice(client, db):
    login(client, "Finance")
    acme = customer("Acme")
    inv = invoice(acme, "90.00", number="INV-000701")
    (line,) = do_import(csv_file("2026-03-22,90.00,Wire,J Smith")).statement.lines.all()
    page = client.get(f"/admin/receivables/bankline/{line.pk}/decide/")
    assert page.status_code == 200 and "J Smith" in page.content.decode()
    page = client.post(
        f"/admin/receivables/bankline/{line.pk}/decide/",
        {"action": "confirm", "customer": acme.pk, "invoice": inv.pk},
        follow=True,
    )
    assert "Recorded $90.00 from Acme" in page.content.decode()
    inv.refresh_from_db()
    assert inv.status == Invoice.Status.PAID


def test_a_bad_file_shows_every_problem_and_records_nothing(client, db):
    login(client, "Finance")
    page = upload(client, csv_file("2026-03-05,12;50,x,Acme", "yesterday,10.00,x,Acme"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "march.csv was not imported: 2 problem(s)" in html
    assert "Line 2: the amount" in html and "Line 3: the date" in html
    assert BankStatement.objects.count() == 0


def test_sales_may_not_see_bank_statements(client, db):
    login(client, "Sales")
    for url in (
        "/admin/receivables/bankstatement/",
        "/admin/receivables/bankstatement/add/",
        "/admin/receivables/bankline/",
    ):
        assert client.get(url).status_code == 403, url
