"""AR aging as of past dates (later payments and credit notes do not count), its buckets at their
boundaries, its tie-out to invoices − credit notes − payments, DSO by both methods, the admin page
with its CSV, and the dashboard's DSO card."""

import csv
import datetime as dt
import io
import itertools
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db.models import F

from invoicing.models import CreditBalanceEntry, CreditNote, Invoice
from receivables.aging import DsoMethod, ar_aging, bucket_index, bucket_labels, dso
from receivables.models import Payment, PaymentAllocation
from receivables.services import payment_record
from receivables.statements import customer_statement
from tests.factories import CustomerFactory, PlanFactory, UserFactory, day, subscribe
from tests.receivables.cash import bounced_month

D = Decimal
numbers = itertools.count(1)


def customer_with_subscription(name, currency="USD"):
    customer = CustomerFactory(name=name, currency=currency)
    subscribe(
        customer=customer,
        plan=PlanFactory(currency=currency),
        external_id=f"sub_{customer.external_id}",
    )
    return customer


def invoice(customer, issued, due, total, *, status=Invoice.Status.FINALIZED, **extra):
    n = next(numbers)
    return Invoice.objects.create(
        customer=customer,
        subscription=customer.subscriptions.get(),
        billing_date=day(issued) + dt.timedelta(days=n * 1000),  # one per period
        currency=customer.currency,
        status=status,
        number=f"INV-{n:05d}",
        issue_date=day(issued),
        due_date=day(due),
        subtotal=D(total),
        total=D(total),
        **extra,
    )


def payment(customer, received, amount, *to):
    """The rows payment_record writes: allocations to invoices (dated when both the payment and
    the invoice exist), the rest on account (a credit balance entry)."""
    paid = Payment.objects.create(
        customer=customer, amount=D(amount), currency=customer.currency, received_on=day(received)
    )
    for inv, part in to:
        PaymentAllocation.objects.create(
            payment=paid, invoice=inv, amount=D(part), applied_on=max(day(received), inv.issue_date)
        )
        Invoice.objects.filter(pk=inv.pk).update(paid_amount=F("paid_amount") + D(part))
    rest = D(amount) - sum((D(part) for _, part in to), D(0))
    if rest:
        on_account(paid, rest)
    return paid


def on_account(paid, amount):
    """Money of a payment on account: in the customer's credit balance."""
    entry = CreditBalanceEntry.objects.create(
        customer=paid.customer,
        currency=paid.currency,
        amount=amount,
        kind=CreditBalanceEntry.Kind.PAYMENT,
        effective_on=paid.received_on,
    )
    PaymentAllocation.objects.create(
        payment=paid, credit_entry=entry, amount=amount, applied_on=paid.received_on
    )


def credit_note(inv, issued, total):
    """The rows credit_note_issue writes: what the note gives beyond what was open goes to the
    customer's credit balance."""
    n = next(numbers)
    inv.refresh_from_db()
    beyond = max(D(total) - inv.open_amount, D(0))
    Invoice.objects.filter(pk=inv.pk).update(
        credited_amount=inv.credited_amount + D(total),
        credit_to_balance=inv.credit_to_balance + beyond,
    )
    inv.refresh_from_db()
    note = CreditNote.objects.create(
        invoice=inv,
        customer=inv.customer,
        number=f"CN-{n:05d}",
        kind=CreditNote.Kind.AMOUNT,
        currency=inv.currency,
        issue_date=day(issued),
        subtotal=D(total),
        tax_amount=D(0),
        total=D(total),
    )
    if beyond:
        CreditBalanceEntry.objects.create(
            customer=inv.customer,
            currency=inv.currency,
            amount=beyond,
            kind=CreditBalanceEntry.Kind.CREDIT_NOTE,
            effective_on=day(issued),
            invoice=inv,
            credit_note=note,
        )
    return note


@pytest.fixture
def acme(db):
    """Acme (USD):
    A1 issued Jan 1, due Jan 31, 1,000.00: 600.00 paid on Feb 10, 100.00 credited on Mar 5.
    A2 issued Feb 1, due Mar 3, 500.00: paid in full on Mar 20.
    A3 issued Feb 15, due Mar 17, 300.00: voided on Mar 10.
    50.00 received on Feb 20, applied to nothing."""
    acme = customer_with_subscription("Acme")
    a1 = invoice(acme, "2026-01-01", "2026-01-31", "1000.00")
    a2 = invoice(acme, "2026-02-01", "2026-03-03", "500.00", status=Invoice.Status.PAID)
    invoice(
        acme,
        "2026-02-15",
        "2026-03-17",
        "300.00",
        status=Invoice.Status.VOID,
        voided_at=dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC),
    )
    payment(acme, "2026-02-10", "600.00", (a1, "600.00"))
    payment(acme, "2026-03-20", "500.00", (a2, "500.00"))
    payment(acme, "2026-02-20", "50.00")
    credit_note(a1, "2026-03-05", "100.00")
    return acme


def row_of(report, customer):
    (row,) = [r for r in report.rows if r.customer_id == customer.pk]
    return row


def test_labels_and_boundaries_of_the_default_buckets():
    assert bucket_labels((30, 60, 90, 120)) == [
        "Current",
        "1–30",
        "31–60",
        "61–90",
        "91–120",
        "Over 120",
    ]
    b = (30, 60, 90, 120)
    assert [bucket_index(d, b) for d in (-5, 0, 1, 30, 31, 60, 61, 90, 91, 120, 121, 999)] == [
        0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5,
    ]  # fmt: skip


def test_aging_on_mar_1_ignores_what_came_later_and_counts_the_invoice_voided_after(acme):
    report = ar_aging(as_of=day("2026-03-01"))
    row = row_of(report, acme)
    # A1 1,000 − 600 = 400, 29 days past due; A2 500 and A3 300 not yet due
    assert row.buckets == (D("800.00"), D("400.00"), D(0), D(0), D(0), D(0))
    assert (row.open, row.unapplied_credit, row.balance) == (D("1200.00"), D("50.00"), D("1150.00"))
    assert row.open_invoices == 3
    # ties out: issued 1,800 − credited 0 − received 650
    assert row.balance == D("1800.00") - D(0) - D("650.00")


def test_aging_on_mar_10_drops_the_voided_invoice_and_takes_the_credit_note(acme):
    row = row_of(ar_aging(as_of=day("2026-03-10")), acme)
    # A1 1,000 − 600 − 100 = 300, 38 days past due; A2 500, 7 days past due
    assert row.buckets == (D(0), D("500.00"), D("300.00"), D(0), D(0), D(0))
    assert (row.open, row.unapplied_credit, row.balance) == (D("800.00"), D("50.00"), D("750.00"))
    assert row.balance == D("1500.00") - D("100.00") - D("650.00")


def test_aging_before_anything_and_after_everything(acme):
    assert ar_aging(as_of=day("2025-12-31")).rows == []
    row = row_of(ar_aging(as_of=day("2026-01-15")), acme)
    assert row.buckets[0] == D("1000.00") and row.open == D("1000.00")
    # Mar 31: A1 300 open, 59 days past due; A2 paid on Mar 20
    row = row_of(ar_aging(as_of=day("2026-03-31")), acme)
    assert row.buckets == (D(0), D(0), D("300.00"), D(0), D(0), D(0))
    assert row.balance == D("1500.00") - D("100.00") - D("1150.00")


def test_credit_note_on_a_paid_invoice_is_unapplied_credit(db):
    beta = customer_with_subscription("Beta")
    b1 = invoice(beta, "2026-01-01", "2026-01-31", "200.00", status=Invoice.Status.PAID)
    payment(beta, "2026-01-20", "200.00", (b1, "200.00"))
    credit_note(b1, "2026-02-01", "80.00")

    assert ar_aging(as_of=day("2026-01-25")).rows == []
    row = row_of(ar_aging(as_of=day("2026-02-05")), beta)
    assert (row.open, row.unapplied_credit, row.balance) == (D(0), D("80.00"), D("-80.00"))
    assert row.balance == D("200.00") - D("80.00") - D("200.00")


def test_buckets_at_their_exact_boundaries_and_totals_per_currency(db):
    gamma = customer_with_subscription("Gamma")
    as_of = day("2026-06-30")
    for days_past_due, amount in [
        (0, "1"),
        (1, "2"),
        (30, "4"),
        (31, "8"),
        (120, "16"),
        (121, "32"),
    ]:
        due = as_of - dt.timedelta(days=days_past_due)
        invoice(gamma, "2026-01-01", due.isoformat(), amount)
    euro = customer_with_subscription("Euro GmbH", currency="EUR")
    invoice(euro, "2026-06-01", "2026-07-01", "70.00")

    report = ar_aging(as_of=as_of)
    assert row_of(report, gamma).buckets == (D(1), D(6), D(8), D(0), D(16), D(32))
    assert [(t.currency, t.open) for t in report.totals] == [("EUR", D("70.00")), ("USD", D(63))]
    assert report.open_total("USD") == D("63.00")
    # other boundaries from the setting
    narrow = ar_aging(as_of=as_of, buckets=(30,))
    assert narrow.labels == ["Current", "1–30", "Over 30"]
    assert row_of(narrow, gamma).buckets == (D(1), D(6), D(56))


@pytest.fixture
def delta(db):
    """Delta (USD): sales 9,000 on Sep 15, 15,000 on Oct 10 and 20,000 on Nov 5; 14,000 received
    on Nov 1 (9,000 to Sep's invoice, 5,000 to Oct's): 30,000 open on Nov 30."""
    delta = customer_with_subscription("Delta")
    sep = invoice(delta, "2026-09-15", "2026-10-15", "9000.00")
    oct_ = invoice(delta, "2026-10-10", "2026-11-09", "15000.00")
    invoice(delta, "2026-11-05", "2026-12-05", "20000.00")
    payment(delta, "2026-11-01", "14000.00", (sep, "9000.00"), (oct_, "5000.00"))
    return delta


def test_dso_simple_and_countback_on_a_hand_computed_fixture(delta):
    start, end = day("2026-09-01"), day("2026-11-30")  # 91 days
    simple = dso(start=start, end=end, method=DsoMethod.SIMPLE)
    assert simple.receivables == {"USD": D("30000.00")}
    assert simple.sales == {"USD": D("44000.00")}
    assert simple.days == {"USD": D("62.0")}  # 30,000 ÷ 44,000 × 91 = 62.045…

    countback = dso(start=start, end=end, method=DsoMethod.COUNTBACK)
    # November's 20,000 (30 days) leaves 10,000: 10,000 ÷ October's 15,000 × 31 = 20.67 days
    assert countback.days == {"USD": D("50.7")}


def login(client, group):
    user = UserFactory(username=group, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def test_aging_page_shows_the_table_with_links_and_the_csv(acme, client):
    login(client, "Finance")
    page = client.get("/admin/receivables/aging/?as_of=2026-03-10")
    assert page.status_code == 200
    html = page.content.decode()
    assert "AR aging" in html and "31–60" in html and "Over 120" in html
    assert "$300.00" in html and "$750.00" in html
    link = f"/admin/invoicing/invoice/?customer__id__exact={acme.pk}&amp;currency=USD"
    assert link in html
    assert client.get(link.replace("&amp;", "&")).status_code == 200

    response = client.get("/admin/receivables/aging/?as_of=2026-03-10&download=1")
    assert response["Content-Disposition"] == 'attachment; filename="ar-aging-2026-03-10.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "customer", "currency", "Current", "1–30", "31–60", "61–90", "91–120", "Over 120",
        "open", "unapplied_credit", "balance",
    ]  # fmt: skip
    assert rows[1] == ["Acme", "USD", "0.00", "500.00", "300.00", "0.00", "0.00", "0.00",
                       "800.00", "50.00", "750.00"]  # fmt: skip
    assert rows[2][:2] == ["Total", "USD"] and rows[2][-1] == "750.00"


def test_aging_page_defaults_to_today_and_is_finance_only(acme, client):
    with time_machine.travel("2026-03-01 12:00Z", tick=False):
        html = login(client, "Finance").get("/admin/receivables/aging/").content.decode()
        assert "As of Mar 1, 2026" in html and "$1,150.00" in html
        assert "/admin/receivables/aging/" in client.get("/admin/").content.decode()  # sidebar
        client.logout()
        assert login(client, "Sales").get("/admin/receivables/aging/").status_code == 403


def test_dashboard_shows_dso_by_countback(delta, client):
    with time_machine.travel("2026-11-30 12:00Z", tick=False):
        html = login(client, "Finance").get("/admin/").content.decode()
    assert "DSO (last 90 days)" in html
    assert "50.7 days" in html
    assert "countback method, on $30,000.00 open" in html


def test_a_payment_ahead_of_its_invoice_is_credit_until_the_invoice_is_issued(db):
    # Given an invoice issued on Jan 20, and a payment received on Jan 10 recorded on Jan 25
    # against it (through the service)
    eta = customer_with_subscription("Eta")
    e1 = invoice(eta, "2026-01-20", "2026-02-19", "100.00")
    with time_machine.travel("2026-01-25 12:00Z", tick=False):
        payment_record(
            customer=eta,
            amount=D("100.00"),
            currency="USD",
            received_on=day("2026-01-10"),
            allocations={e1: D("100.00")},
        )

    # Then on Jan 15 the money is Eta's credit (the invoice is not issued yet) ...
    row = row_of(ar_aging(as_of=day("2026-01-15")), eta)
    assert (row.open, row.unapplied_credit, row.balance) == (D(0), D("100.00"), D("-100.00"))
    # ... and from Jan 20 it pays the invoice: nothing open, nothing on account
    assert ar_aging(as_of=day("2026-01-20")).rows == []
    assert ar_aging(as_of=day("2026-01-25")).rows == []


def test_dso_without_sales_is_none_and_a_bad_date_is_refused(acme, client):
    figure = dso(start=day("2025-01-01"), end=day("2025-03-31"), method=DsoMethod.SIMPLE)
    assert figure.days == {}
    with pytest.raises(ValueError, match="Unknown DSO method"):
        dso(start=day("2026-01-01"), end=day("2026-03-31"), method="average")
    html = login(client, "Finance").get("/admin/receivables/aging/?as_of=31/02").content.decode()
    assert "Enter a valid date." in html and 'id="aging"' not in html


def test_aging_as_of_past_dates_ignores_the_later_reversal_write_off_and_refund(db):
    # Given Acme's January and February (tests/receivables/cash.py, bounced_month)
    acme, a, b = bounced_month()

    def figures(as_of):
        row = row_of(ar_aging(as_of=day(as_of)), acme)
        return row.buckets[:2], row.open, row.unapplied_credit, row.balance

    # Jan 31: both paid (the reversal of Feb 3 does not count yet), 30.00 on account
    assert figures("2026-01-31") == ((D(0), D(0)), D(0), D("30.00"), D("-30.00"))
    # Feb 5: reversed — A 100.00 (1 day late), B 50.00 (not due); the write-off is later
    assert figures("2026-02-05") == (
        (D("50.00"), D("100.00")),
        D("150.00"),
        D("30.00"),
        D("120.00"),
    )
    # Feb 12: 40.00 of A written off; both late now; the refund is later
    assert figures("2026-02-12") == ((D(0), D("110.00")), D("110.00"), D("30.00"), D("80.00"))
    # Feb 20: refunded: nothing on account
    assert figures("2026-02-20") == ((D(0), D("110.00")), D("110.00"), D(0), D("110.00"))
    # each balance is the statement's closing on that day
    for as_of in ["2026-01-31", "2026-02-05", "2026-02-12", "2026-02-20"]:
        statement = customer_statement(customer=acme, start=day("2026-01-01"), end=day(as_of))
        assert statement.closing == figures(as_of)[3]
