"""manage.py audit_ledger (revrec.audit): a month of activity built through the services audits
clean; each kind of corruption is reported naming the document and the two figures, exit 1."""

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from invoicing.models import Invoice, InvoiceLine
from invoicing.services import invoice_finalize
from receivables.models import PaymentAllocation
from receivables.services import (
    allocation_unapply,
    invoice_write_off,
    payment_apply,
    payment_reverse,
    refund_record,
)
from revrec.audit import audit
from revrec.models import JournalEntry, JournalLine, RecognitionLine
from revrec.postings import journal_sync
from revrec.recognition import contracts_sync, recognize
from tests.factories import day
from tests.receivables.cash import credit, customer, pay
from tests.revrec.ledger import chart
from tests.revrec.test_recognition import annual_platform_fee

D = Decimal


def at(moment: str):
    return time_machine.travel(f"{moment} 12:00Z", tick=False)


def invoice(person, subtotal: str, issued: str, rate: str = "0", lines=None) -> Invoice:
    """An invoice with its lines (`lines`: amounts, default one line of `subtotal`), tax at
    `rate` % on the subtotal, finalized on `issued` (it takes the credit balance then)."""
    amounts = [D(a) for a in (lines or [subtotal])]
    tax = (D(subtotal) * D(rate) / 100).quantize(D("0.01"))
    draft = Invoice.objects.create(
        customer=person,
        subscription=person.subscriptions.get(),
        billing_date=day(issued) + dt.timedelta(days=9000 + Invoice.objects.count()),
        currency=person.currency,
        subtotal=D(subtotal),
        tax_rate=D(rate),
        tax_amount=tax,
        total=D(subtotal) + tax,
    )
    for n, amount in enumerate(amounts):
        InvoiceLine.objects.create(
            invoice=draft,
            kind=InvoiceLine.Kind.FEE,
            description=f"Fee {n}",
            period_start=day(issued),
            period_end=day(issued) + dt.timedelta(days=30),
            quantity=1,
            unit_price=amount,
            amount=amount,
            position=n,
        )
    with at(issued):
        return invoice_finalize(invoice=draft, issue_date=day(issued))


def run(*args) -> tuple[int, str]:
    """(exit code, output) of manage.py audit_ledger."""
    out = StringIO()
    try:
        call_command("audit_ledger", *args, stdout=out)
    except SystemExit as exit:
        return exit.code, out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def month(db):
    """April 2026 through the services (the month of test_postings, with invoice lines and tax),
    a year's contract recognized through April, and the journal posted."""
    chart()
    acme, bolt, cora = (customer(name=n) for n in ("Acme", "Bolt", "Cora"))
    a1 = invoice(acme, "100.00", "2026-04-01", rate="8.25", lines=["60.00", "40.00"])  # 108.25
    b1 = invoice(bolt, "200.00", "2026-04-01")
    c1 = invoice(cora, "50.00", "2026-04-02")
    p_acme = pay(acme, "150.00", "2026-04-05", reference="ACME-1")  # 108.25 to a1, 41.75 over
    p_bolt = pay(bolt, "120.00", "2026-04-06", reference="BOLT-1", auto_apply=False)
    with at("2026-04-07"):
        payment_apply(payment=p_bolt, invoice=b1, amount=D("100.00"))
    pay(cora, "50.00", "2026-04-08", reference="CORA-1")
    credit(c1, "20.00", "2026-04-09")  # on a paid invoice: 20.00 to Cora's credit balance
    invoice(acme, "60.00", "2026-04-10", rate="8.25")  # 64.95, takes Acme's 41.75
    with at("2026-04-12"):
        allocation_unapply(
            allocation=PaymentAllocation.objects.get(payment=p_bolt, invoice=b1), reason="Wrong"
        )
    invoice(bolt, "90.00", "2026-04-14")  # takes 90.00 of Bolt's 120.00 on account
    payment_reverse(payment=p_acme, reason="Bounced", on=day("2026-04-20"))
    refund_record(customer=cora, amount=D("20.00"), refunded_on=day("2026-04-22"))
    invoice_write_off(invoice=b1, reason="Disputed", amount=D("30.00"), on=day("2026-04-25"))
    pay(bolt, "25.00", "2026-04-28", reference="BOLT-2")
    annual_platform_fee()  # 1,200.00 for 2026, recognized ratably by days
    contracts_sync()
    recognize(day("2026-04-01"))
    journal_sync(today=day("2026-04-30"))
    return {"a1": a1, "b1": b1, "c1": c1, "bolt": bolt}


def test_a_month_of_activity_audits_clean(month):
    # Given the month posted; When audited; Then nothing differs, exit 0
    assert audit() == []
    code, out = run()
    assert code == 0
    assert out == "Ledger audit: clean (0 difference(s)).\n"


def test_an_invoice_line_changed_behind_the_services(month):
    # Given a1's 60.00 line made 60.01 directly
    line = InvoiceLine.objects.get(invoice=month["a1"], amount=D("60.00"))
    InvoiceLine.objects.filter(pk=line.pk).update(amount=D("60.01"))
    # Then subtotal 100.00 vs 100.01 and total 108.25 vs 108.26 (tax 8.25 either way)
    code, out = run()
    number = month["a1"].number
    assert code == 1
    assert out.splitlines() == [
        f"[invoice_totals] invoice {number}: subtotal 100.00 stored, 100.01 from its lines",
        f"[invoice_totals] invoice {number}: total 108.25 stored, 108.26 from its lines",
        "Ledger audit: 2 difference(s).",
    ]


def test_a_stored_paid_amount_off_by_a_cent(month):
    # Given Bolt's b1 (200.00: 30.00 written off, 25.00 paid) with paid_amount 25.01
    b1 = month["b1"]
    Invoice.objects.filter(pk=b1.pk).update(paid_amount=D("25.01"))
    # Then paid_amount differs, and the receivable no longer ties out (145.00 vs 144.99)
    code, out = run()
    assert code == 1
    assert out.splitlines() == [
        f"[invoice_sums] invoice {b1.number}: paid_amount 25.01 stored, 25.00 from payment "
        "allocations and credit applied",
        "[tie_out] customer Bolt USD: Accounts receivable 145.00 in the journal, "
        "144.99 from the open amounts of invoices",
        "Ledger audit: 2 difference(s).",
    ]


def test_a_recognition_line_changed(month):
    # Given January's line of the year's 1,200.00 made 1.00 more (101.92 → 102.92)
    line = RecognitionLine.objects.get(month=day("2026-01-01"))
    assert line.amount == D("101.92")
    RecognitionLine.objects.filter(pk=line.pk).update(amount=D("102.92"))
    code, out = run()
    obligation = line.obligation
    assert code == 1
    assert out.splitlines() == [
        f"[recognition] obligation {obligation.pk} (Platform fee, contract "
        f"{obligation.contract_id}): allocated 1200.00 stored, 1201.00 from its recognition lines",
        "Ledger audit: 1 difference(s).",
    ]


@pytest.mark.skipif(
    connection.vendor == "postgresql", reason="PostgreSQL refuses an unbalanced entry"
)
def test_an_unbalanced_journal_entry(month):
    # Given one line of a posted entry made a cent bigger, bypassing post_entry
    entry = JournalEntry.objects.get(kind="refund")
    debit = JournalLine.objects.get(entry=entry, credit=0)
    JournalLine.objects.filter(pk=debit.pk).update(debit=D("20.01"))
    code, out = run()
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"[entry_balanced] journal entry {entry.pk}: debits 20.01 ≠ credits 20.00"
    assert lines[1] == "[trial_balance] journal in USD: debits " + lines[1].split("debits ")[1]
    assert lines[-1].startswith("Ledger audit: ")


def test_documents_not_posted_yet_fail_only_in_strict_mode(month):
    # Given a payment received after the last run
    payment = pay(month["bolt"], "5.00", "2026-05-02", reference="BOLT-3", auto_apply=False)
    code, out = run()
    assert code == 0
    assert out.splitlines()[0] == f"[not_posted] payment {payment.pk}: not posted yet"
    assert "1 document(s) not posted yet" in out.splitlines()[-1]
    assert run("--strict")[0] == 1
    # And once posted the audit is clean again
    journal_sync(today=day("2026-05-02"))
    assert run("--strict") == (0, "Ledger audit: clean (0 difference(s)).\n")


def test_the_audit_reads_a_fixed_number_of_queries(month, django_assert_max_num_queries):
    # Given the month: 7 queries for invoices, 2 credit notes, 2 payments, 2 recognition, 1 the
    # journal, 10 unposted documents (one per kind), 6 the tie-out (1 for the usage accruals) =
    # 30, however many rows
    with django_assert_max_num_queries(30):
        assert audit() == []
