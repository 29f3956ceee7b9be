"""Credit notes: in full, by line, by amount; capped at the invoice total (in the database too);
numbered CN-000001… gaplessly; emailed with their PDF; what they do to what is owed."""

import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ValidationError
from invoicing.balance import credit_balance
from invoicing.corrections import credit_note_issue
from invoicing.models import CreditNote, CreditNoteLine, Invoice, NumberSeries
from invoicing.services import billing_run
from receivables.selectors import customer_balances, invoice_amount_due
from receivables.services import payment_on_account, payment_record
from reporting.selectors import receivables
from tests.factories import CustomerFactory, day, hybrid_plan, subscribe

D = Decimal


def first_invoice(external_id="acme", tax="8.25") -> Invoice:
    """Platform fee 500.00 + 5 seats × 25.00 = 625.00; tax 8.25 % = 51.5625 → 51.56; 676.56."""
    customer = CustomerFactory(external_id=external_id, tax_rate=D(tax))
    subscribe(customer=customer, plan=hybrid_plan(), external_id=f"sub_{external_id}")
    with time_machine.travel("2026-01-15 01:00Z", tick=False):
        billing_run()
    return Invoice.objects.get(customer=customer)


def issue(invoice, **kwargs) -> CreditNote:
    with time_machine.travel("2026-01-20 10:00Z", tick=False):
        return credit_note_issue(invoice=invoice, **kwargs)


def seats(invoice):
    return invoice.lines.get(description__startswith="Seats")


def written() -> tuple:
    series = NumberSeries.objects.filter(name="CN").values_list("next_value", flat=True)
    return CreditNote.objects.count(), CreditNoteLine.objects.count(), list(series)


def test_a_full_credit_note_credits_every_line_and_the_total(db):
    invoice = first_invoice()
    assert (invoice.subtotal, invoice.tax_amount, invoice.total) == (
        D("625"),
        D("51.56"),
        D("676.56"),
    )

    note = issue(invoice, full=True)

    assert note.number == "CN-000001"
    assert (note.kind, note.subtotal, note.tax_amount, note.total) == (
        "full",
        D("625.00"),
        D("51.56"),
        D("676.56"),
    )
    assert [(line.description, line.amount) for line in note.lines.all()] == [
        (line.description, line.amount) for line in invoice.lines.all()
    ]
    invoice.refresh_from_db()
    assert invoice.credited_amount == D("676.56")
    assert invoice_amount_due(invoice) == D("0.00")


def test_a_credit_by_line_is_taxed_at_the_invoice_rate_on_its_subtotal(db):
    invoice = first_invoice()

    note = issue(invoice, lines={seats(invoice).pk: D("40.00")})

    # 40.00 × 8.25 % = 3.30
    assert (note.kind, note.subtotal, note.tax_amount, note.total) == (
        "lines",
        D("40.00"),
        D("3.30"),
        D("43.30"),
    )
    invoice.refresh_from_db()
    assert invoice.credited_amount == D("43.30")
    assert invoice_amount_due(invoice) == D("633.26")


def test_a_line_cannot_be_credited_beyond_what_is_left_on_it(db):
    invoice = first_invoice()
    issue(invoice, lines={seats(invoice).pk: D("100.00")})
    before = written()

    with pytest.raises(ValidationError) as caught:
        issue(invoice, lines={seats(invoice).pk: D("25.01")})

    assert caught.value.message == "“Seats” has $25.00 left to credit: $25.01 is more."
    assert written() == before


def test_a_credit_by_amount_needs_a_reason_and_is_taxed(db):
    invoice = first_invoice()
    with pytest.raises(ValidationError) as caught:
        issue(invoice, amount=D("10.01"))
    assert "reason is required" in caught.value.message
    assert written() == (0, 0, [])

    note = issue(invoice, amount=D("10.01"), reason="Outage on Jan 17")

    # 10.01 × 8.25 % = 0.825825 → 0.83
    assert (note.subtotal, note.tax_amount, note.total) == (D("10.01"), D("0.83"), D("10.84"))
    assert [(line.invoice_line, line.description) for line in note.lines.all()] == [
        (None, "Outage on Jan 17")
    ]


def test_credits_may_reach_the_invoice_total_exactly_and_no_further(db):
    invoice = first_invoice()
    issue(invoice, amount=D("600.00"), reason="Goodwill")  # 600.00 + 49.50 = 649.50

    issue(invoice, amount=D("25.00"), reason="The rest")  # 25.00 + 2.0625 → 2.06 = 27.06

    invoice.refresh_from_db()
    assert invoice.credited_amount == invoice.total == D("676.56")
    with pytest.raises(ValidationError):
        issue(invoice, amount=D("0.01"), reason="One cent more")
    with pytest.raises(ValidationError) as caught:
        issue(invoice, full=True)
    assert caught.value.message == (
        "Invoice INV-000001 already has credit notes: credit what is left ($0.00) by line or "
        "as an amount."
    )


def test_more_than_what_is_left_is_refused_with_nothing_written(db):
    invoice = first_invoice()
    issue(invoice, amount=D("600.00"), reason="Goodwill")  # 649.50 credited, 27.06 left
    before = written()

    with pytest.raises(ValidationError) as caught:
        issue(invoice, amount=D("25.01"), reason="Too much")  # 25.01 + 2.06 = 27.07

    assert caught.value.message == (
        "Invoice INV-000001 has $27.06 left to credit (total $676.56); this credit note would "
        "be $27.07 with tax."
    )
    assert written() == before


def test_the_database_refuses_a_credited_amount_above_the_total(db):
    invoice = first_invoice()

    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk).update(credited_amount=D("676.57"))


def test_a_draft_invoice_takes_no_credit_note(db):
    invoice = first_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.DRAFT)

    with pytest.raises(Exception) as caught:
        issue(invoice, full=True)

    assert "only a finalized or paid invoice takes a credit note" in caught.value.message
    assert written() == (0, 0, [])


def test_credit_note_numbers_are_gapless_across_customers_and_apart_from_invoices(db):
    acme, globex = first_invoice("acme"), first_invoice("globex")
    with pytest.raises(ValidationError):
        issue(acme, amount=D("0.00"), reason="nothing")

    numbers = [
        issue(acme, amount=D("1.00"), reason="a").number,
        issue(globex, amount=D("1.00"), reason="b").number,
        issue(acme, amount=D("1.00"), reason="c").number,
    ]

    assert numbers == ["CN-000001", "CN-000002", "CN-000003"]
    assert (acme.number, globex.number) == ("INV-000001", "INV-000002")


def test_the_credit_note_is_emailed_with_its_pdf_on_commit(
    db, mailoutbox, django_capture_on_commit_callbacks
):
    invoice = first_invoice()
    mailoutbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        issue(invoice, lines={seats(invoice).pk: D("40.00")})

    (mail,) = mailoutbox
    assert mail.to == ["billing@acme.example"]
    assert mail.subject.startswith("Credit note CN-000001 from ")
    assert "credits $43.30 on invoice INV-000001" in mail.body
    ((name, content, mimetype),) = mail.attachments
    assert (name, mimetype) == ("CN-000001.pdf", "application/pdf")
    assert content.startswith(b"%PDF")


def test_what_is_owed_and_aging_after_a_credit(db):
    invoice = first_invoice()
    issue(invoice, lines={seats(invoice).pk: D("40.00")})  # 43.30 credited

    (balance,) = customer_balances(customer=invoice.customer, as_of=day("2026-03-01"))
    report = receivables(as_of=day("2026-03-01"))

    assert (balance.due, balance.overdue, balance.credit) == (D("633.26"), D("633.26"), D("0"))
    assert report.outstanding == report.overdue
    assert report.outstanding_count == 1
    assert "633.26" in str(report.outstanding)


def test_a_payment_takes_only_what_is_left_after_a_credit(db):
    invoice = first_invoice()
    issue(invoice, amount=D("100.00"), reason="Discount promised")  # 108.25 credited
    payment = payment_record(
        customer=invoice.customer,
        amount=D("1000.00"),
        currency="USD",
        received_on=day("2026-01-25"),
    )

    # The payment pays what is open (676.56 − 108.25) and the rest goes on account
    invoice.refresh_from_db()
    assert invoice.allocations.get().amount == D("568.31")
    assert invoice.status == Invoice.Status.PAID
    assert payment_on_account(payment) == D("431.69")


def test_a_credit_on_a_paid_invoice_is_customer_credit(db):
    invoice = first_invoice()
    payment_record(
        customer=invoice.customer, amount=D("676.56"), currency="USD", received_on=day("2026-01-25")
    )

    issue(invoice, lines={seats(invoice).pk: D("40.00")})

    # The paid invoice stays paid; the 43.30 credited (40.00 + 8.25 % tax) goes to the
    # customer's credit balance, which their next invoice takes at finalization
    invoice.refresh_from_db()
    assert invoice_amount_due(invoice) == D("0.00")
    assert invoice.status == Invoice.Status.PAID
    assert invoice.credit_to_balance == D("43.30")
    assert credit_balance(invoice.customer) == D("43.30")
    (balance,) = customer_balances(customer=invoice.customer, as_of=day("2026-03-01"))
    assert (balance.due, balance.open_invoices, balance.credit) == (D("0"), 0, D("43.30"))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    credits=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=1, max_value=20000)), min_size=1, max_size=8
    )
)
def test_line_credits_never_exceed_the_total_and_each_note_adds_up(db, credits):
    # Given an invoice of 625.00 + 8.25 % tax (made once per example: each runs in a savepoint)
    with transaction.atomic():
        customer_id = f"p{CreditNote.objects.count()}{Invoice.objects.count()}"
        invoice = first_invoice(customer_id)
        platform = invoice.lines.get(description__startswith="Platform")
        line_ids = [platform.pk, seats(invoice).pk]
        for on_seats, cents in credits:
            try:
                note = issue(invoice, lines={line_ids[on_seats]: D(cents) / 100})
            except ValidationError:
                continue
            assert note.total == note.subtotal + note.tax_amount
            assert note.tax_amount == (note.subtotal * D("0.0825")).quantize(
                D("0.01"), "ROUND_HALF_UP"
            )
        invoice.refresh_from_db()
        notes = list(CreditNote.objects.filter(invoice=invoice).values_list("total", flat=True))
        assert invoice.credited_amount == sum(notes, D(0)) <= invoice.total
        transaction.set_rollback(True)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_credit_notes_beyond_the_total_one_wins():
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")
    invoice = first_invoice()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def credit() -> None:
        try:
            mine = Invoice.objects.get(pk=invoice.pk)  # each thread has its own connection
            barrier.wait(timeout=10)
            with transaction.atomic():
                issue(mine, amount=D("400.00"), reason="Each alone fits, both do not")
            outcomes.append("issued")
        except ValidationError as exc:
            outcomes.append(exc.message)
        except Exception as exc:
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=credit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # 400.00 + 33.00 = 433.00 each: the second finds 243.56 left
    assert sorted(outcomes) == [
        "Invoice INV-000001 has $243.56 left to credit (total $676.56); this credit note would "
        "be $433.00 with tax.",
        "issued",
    ]
    invoice.refresh_from_db()
    assert invoice.credited_amount == D("433.00")
    assert list(CreditNote.objects.values_list("number", flat=True)) == ["CN-000001"]
    assert CreditNoteLine.objects.count() == 1
    assert NumberSeries.objects.get(name="CN").next_value == 2
