"""Customer statement: opening balance, every movement in the range with a running balance, and the
closing balance — exact to the cent; the closing of one month is the opening of the next; an
unapplied over-payment is credit in the customer's favour. Finance's admin page (PDF, email) and
the customer's portal page."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse

from core.money import exact_sum
from customers.models import Customer
from invoicing.corrections import invoice_void
from invoicing.models import CreditNote, Invoice
from receivables.models import Payment
from receivables.services import payment_record
from receivables.statements import customer_statement, last_full_month
from tests.factories import (
    CustomerFactory,
    PlanFactory,
    PortalMembershipFactory,
    UserFactory,
    day,
    subscribe,
)
from tests.receivables.cash import bounced_month

D = Decimal


def issue(customer, number: str, issued: str, total: str) -> Invoice:
    """A finalized invoice of `total` issued on `issued` (made directly: the statement reads only
    its number, dates, total and status)."""
    subscription = customer.subscriptions.first() or subscribe(
        customer=customer, plan=PlanFactory(), external_id=f"sub_{customer.external_id}"
    )
    return Invoice.objects.create(
        customer=customer,
        subscription=subscription,
        billing_date=day(issued),
        currency=customer.currency,
        status=Invoice.Status.FINALIZED,
        number=number,
        issue_date=day(issued),
        due_date=day(issued) + dt.timedelta(days=30),
        subtotal=D(total),
        total=D(total),
    )


def credit(invoice: Invoice, number: str, issued: str, total: str) -> CreditNote:
    invoice.credited_amount += D(total)
    invoice.save(update_fields=["credited_amount"])
    return CreditNote.objects.create(
        invoice=invoice,
        customer=invoice.customer,
        number=number,
        kind=CreditNote.Kind.AMOUNT,
        currency=invoice.currency,
        issue_date=day(issued),
        subtotal=D(total),
        tax_amount=D(0),
        total=D(total),
    )


def pay(customer, amount: str, received: str, invoice=None, reference="") -> Payment:
    """A payment applied to `invoice` (what it has open at most, the rest on account), or (no
    invoice) all on account."""
    allocations = None
    if invoice is not None:
        invoice.refresh_from_db()
        allocations = {invoice: min(D(amount), invoice.open_amount)}
    return payment_record(
        customer=customer,
        amount=D(amount),
        currency="USD",
        received_on=day(received),
        reference=reference,
        allocations=allocations,
        auto_apply=False,
    )


def void(invoice: Invoice, at: str) -> None:
    with time_machine.travel(at, tick=False):
        invoice_void(invoice=invoice, reason="Billed twice")


def march_customer():
    """Opening on Mar 1: 1,000.00 + 75.00 − 400.00 = 675.00; then March's movements."""
    acme = CustomerFactory(external_id="acme", name="Acme Corp")
    first = issue(acme, "INV-000001", "2026-02-10", "1000.00")
    early = issue(acme, "INV-000002", "2026-02-25", "75.00")
    pay(acme, "400.00", "2026-02-20", invoice=first)
    second = issue(acme, "INV-000003", "2026-03-02", "250.00")
    void(early, "2026-03-03 23:30Z")  # issued in February, voided in March
    pay(
        acme, "300.00", "2026-03-05", invoice=first, reference="WIRE-0305"
    )  # a partial payment: 300.00 of 600.00
    third = issue(acme, "INV-000004", "2026-03-10", "120.50")
    credit(second, "CN-000001", "2026-03-12", "50.25")
    void(third, "2026-03-20 09:00Z")  # issued and voided in March: both shown
    issue(acme, "INV-000005", "2026-04-01", "300.00")  # after the statement: not on it
    other = CustomerFactory(external_id="other")
    issue(other, "INV-000006", "2026-03-15", "999.00")  # another customer's
    return acme


def test_a_hand_computed_month(db):
    acme = march_customer()

    statement = customer_statement(customer=acme, start=day("2026-03-01"), end=day("2026-03-31"))

    assert statement.opening == D("675.00")
    assert [
        (str(line.day), line.reference, line.amount, line.balance) for line in statement.lines
    ] == [
        ("2026-03-02", "INV-000003", D("250.00"), D("925.00")),
        ("2026-03-03", "INV-000002", D("-75.00"), D("850.00")),  # the void of February's invoice
        ("2026-03-05", "WIRE-0305", D("-300.00"), D("550.00")),
        ("2026-03-10", "INV-000004", D("120.50"), D("670.50")),
        ("2026-03-12", "CN-000001", D("-50.25"), D("620.25")),
        ("2026-03-20", "INV-000004", D("-120.50"), D("499.75")),  # its void
    ]
    assert [line.kind for line in statement.lines] == [
        "invoice",
        "void",
        "payment",
        "invoice",
        "credit_note",
        "void",
    ]
    assert statement.closing == D("499.75")
    assert statement.opening_words == "You owed $675.00 on Feb 28, 2026."
    assert statement.closing_words == "You owed $499.75 on Mar 31, 2026."


def test_a_void_is_dated_by_the_utc_day_of_voided_at(db):
    # Voided at 23:30 UTC on Mar 3: the void is on Mar 3's statement, not Mar 4's.
    acme = march_customer()

    third = customer_statement(customer=acme, start=day("2026-03-03"), end=day("2026-03-03"))
    fourth = customer_statement(customer=acme, start=day("2026-03-04"), end=day("2026-03-04"))

    assert [(line.kind, line.amount) for line in third.lines] == [("void", D("-75.00"))]
    assert (third.opening, third.closing) == (D("925.00"), D("850.00"))
    assert (fourth.lines, fourth.opening, fourth.closing) == ([], D("850.00"), D("850.00"))


def test_the_closing_of_a_month_is_the_opening_of_the_next(db):
    acme = march_customer()
    pay(acme, "0.01", "2026-04-30")  # a cent on the last day of April
    months = [
        ("2026-02-01", "2026-02-28"),
        ("2026-03-01", "2026-03-31"),
        ("2026-04-01", "2026-04-30"),
    ]

    statements = [
        customer_statement(customer=acme, start=day(start), end=day(end)) for start, end in months
    ]

    assert [(s.opening, s.closing) for s in statements] == [
        (D("0.00"), D("675.00")),
        (D("675.00"), D("499.75")),
        (D("499.75"), D("799.74")),
    ]
    # The last closing is the customer's balance computed another way: what the invoices not
    # voided billed, minus credit notes, minus every payment received.
    billed = exact_sum(
        Invoice.objects.filter(customer=acme)
        .exclude(status=Invoice.Status.VOID)
        .values_list("total", flat=True)
    )
    credited = exact_sum(CreditNote.objects.filter(customer=acme).values_list("total", flat=True))
    paid = exact_sum(Payment.objects.filter(customer=acme).values_list("amount", flat=True))
    assert billed - credited - paid == D("799.74") == statements[-1].closing


def test_an_unapplied_over_payment_is_credit_in_the_customers_favour(db):
    acme = CustomerFactory(external_id="acme")
    invoice = issue(acme, "INV-000001", "2026-01-15", "100.00")
    pay(acme, "150.00", "2026-01-20", invoice=invoice)  # 100.00 applied, 50.00 left unapplied

    statement = customer_statement(customer=acme, start=day("2026-01-01"), end=day("2026-01-31"))
    february = customer_statement(customer=acme, start=day("2026-02-01"), end=day("2026-02-28"))

    assert [line.balance for line in statement.lines] == [D("100.00"), D("-50.00")]
    assert statement.closing == D("-50.00") == february.opening
    assert statement.lines[-1].balance_shown == "$50.00 credit"
    assert statement.closing_shown == "$50.00 credit"
    assert statement.closing_words == (
        "You had a credit of $50.00 in your favour on Jan 31, 2026: nothing to pay."
    )


def test_the_default_range_is_the_last_full_calendar_month():
    assert last_full_month(day("2026-03-01")) == (day("2026-02-01"), day("2026-02-28"))
    assert last_full_month(day("2026-01-31")) == (day("2025-12-01"), day("2025-12-31"))


# --- admin -----------------------------------------------------------------------------------


def finance(client):
    user = UserFactory(username="fin", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    return user


def test_finance_opens_the_statement_from_the_customer_page(client, db):
    acme = march_customer()
    finance(client)
    url = reverse("receivables-statement", args=[acme.pk])

    customer_page = client.get(reverse("admin:customers_customer_change", args=[acme.pk]))
    button = client.get(reverse("admin:customers_customer_detail_statement", args=[acme.pk]))
    with time_machine.travel("2026-04-10 12:00Z", tick=False):
        default = client.get(url).content.decode()  # March: the last full month
    february = client.get(url, {"start": "2026-02-01", "end": "2026-02-28"}).content.decode()

    assert "Statement" in customer_page.content.decode()
    assert button.status_code == 302 and button.url == url
    assert "$675.00" in default and "$499.75" in default and "CN-000001" in default
    assert "INV-000006" not in default and "INV-000005" not in default
    assert "$0.00" in february and "$675.00" in february and "INV-000003" not in february


def test_finance_downloads_the_pdf_and_emails_it_to_the_customer(client, db):
    acme = march_customer()
    finance(client)
    url = reverse("receivables-statement", args=[acme.pk])
    march = {"start": "2026-03-01", "end": "2026-03-31"}

    pdf = client.get(url, {**march, "pdf": "1"})
    sent = client.post(url, {**march, "email": "1"}, follow=True)

    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf["Content-Disposition"] == (
        'attachment; filename="statement-acme-2026-03-01-2026-03-31.pdf"'
    )
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["billing@acme.example"]
    assert "You owed $499.75 on Mar 31, 2026." in message.body
    ((name, content, mimetype),) = message.attachments
    assert (name, mimetype) == ("statement-acme-2026-03-01-2026-03-31.pdf", "application/pdf")
    assert content.startswith(b"%PDF")
    assert "The statement was emailed to billing@acme.example" in sent.content.decode()


def test_the_pdf_reads_the_statement(db):
    from receivables.statements import statement_html

    acme = march_customer()
    html = statement_html(
        customer_statement(customer=acme, start=day("2026-03-01"), end=day("2026-03-31"))
    )

    assert "Opening balance" in html and "$675.00" in html
    assert "$499.75" in html and "You owed $499.75 on Mar 31, 2026." in html
    assert "Credit note on invoice INV-000003" in html and "$50.25" in html
    assert "Invoice of Feb 25, 2026 voided" in html and "Invoice of Mar 10, 2026 voided" in html


def test_without_a_billing_email_nothing_is_sent_and_finance_is_told(client, db):
    acme = march_customer()
    acme.billing_email = ""
    acme.save()
    finance(client)
    url = reverse("receivables-statement", args=[acme.pk])

    page = client.post(url, {"start": "2026-03-01", "end": "2026-03-31", "email": "1"}, follow=True)

    assert mail.outbox == []
    assert "Acme Corp has no billing email" in page.content.decode()


@pytest.mark.parametrize("group", [None, "Sales"])
def test_only_finance_sees_statements(client, db, group):
    acme = march_customer()
    user = UserFactory(username="someone", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client.force_login(user)

    page = client.get(reverse("receivables-statement", args=[acme.pk]))

    assert page.status_code == 403


# --- portal ----------------------------------------------------------------------------------


def test_the_customer_sees_their_statement_and_its_pdf_only(client, db):
    acme = march_customer()
    client.force_login(PortalMembershipFactory(customer=acme).user)
    march = {"start": "2026-03-01", "end": "2026-03-31"}

    page = client.get("/portal/statement/", march).content.decode()
    pdf = client.get("/portal/statement/pdf/", march)

    assert "$675.00" in page and "$499.75" in page and "INV-000004" in page
    assert "You owed $499.75 on Mar 31, 2026." in page
    assert "INV-000006" not in page  # another customer's invoice
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    other = Customer.objects.get(external_id="other")
    client.force_login(PortalMembershipFactory(customer=other).user)
    theirs = client.get("/portal/statement/", march).content.decode()
    assert "$999.00" in theirs and "INV-000004" not in theirs and "$499.75" not in theirs
    # The invoices a statement links to are the customer's own: another's answers 404.
    assert client.get("/portal/invoices/INV-000004/").status_code == 404


def test_a_login_without_a_customer_account_has_no_statement(client, db):
    client.force_login(UserFactory(username="nobody"))

    assert client.get("/portal/statement/").status_code == 404
    assert client.get("/portal/statement/pdf/").status_code == 404


def test_reversal_write_off_and_refund_lines_roll_forward(db):
    # Given Acme's January and February (tests/receivables/cash.py, bounced_month)
    acme, a, b = bounced_month()

    # When the statements of January, February and March are made
    january = customer_statement(customer=acme, start=day("2026-01-01"), end=day("2026-01-31"))
    february = customer_statement(customer=acme, start=day("2026-02-01"), end=day("2026-02-28"))
    march = customer_statement(customer=acme, start=day("2026-03-01"), end=day("2026-03-31"))

    # Then January: 100 + 80 − 150 − 60 = −30.00 (credit in Acme's favour)
    assert [(line.kind, line.amount, line.balance) for line in january.lines] == [
        ("invoice", D("100.00"), D("100.00")),
        ("invoice", D("80.00"), D("180.00")),
        ("payment", D("-150.00"), D("30.00")),
        ("payment", D("-60.00"), D("-30.00")),
    ]
    # February: the bounced 150.00 is owed again, 40.00 written off, the 30.00 paid back
    assert february.opening == january.closing == D("-30.00")
    assert [(line.kind, line.reference, line.amount, line.balance) for line in february.lines] == [
        ("reversal", "P1", D("150.00"), D("120.00")),
        ("write_off", a.number, D("-40.00"), D("80.00")),
        ("refund", "R1", D("30.00"), D("110.00")),
    ]
    assert february.lines[0].description == "Payment of Jan 20, 2026 reversed: Bounced"
    assert february.lines[1].description == "Written off: Disputed"
    # March opens where February closed: what is open on A (60.00) and B (50.00)
    assert march.opening == february.closing == D("110.00") == march.closing
    assert march.lines == []
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.open_amount, b.open_amount) == (D("60.00"), D("50.00"))
