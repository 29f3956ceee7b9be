"""Journal entries from the billing and receivables documents (revrec.postings.journal_sync):
each document's entry with figures worked by hand, posted once however often the job runs, and
a month of activity through the real services whose journal ties out to the documents: per
customer, Accounts receivable = their open invoices, Customer credit balances = their credit
balance; Cash = payments − reversals − refunds; debits = credits; the aging agrees."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from core.money import exact_sum
from invoicing.balance import credit_balance
from invoicing.corrections import invoice_void
from invoicing.models import Invoice
from invoicing.services import invoice_finalize
from receivables.aging import ar_aging
from receivables.models import Payment, PaymentAllocation, Refund
from receivables.services import (
    allocation_unapply,
    invoice_write_off,
    payment_apply,
    payment_reverse,
    refund_record,
)
from revrec.models import JournalEntry, JournalLine
from revrec.postings import journal_sync
from revrec.selectors import account_balances
from tests.factories import day
from tests.receivables.cash import bounced_month, credit, customer, fresh, issue, pay
from tests.revrec.ledger import chart

D = Decimal
AR, CREDIT, CASH = "accounts_receivable", "customer_credit", "cash"
DEFERRED, TAX, BAD_DEBT = "deferred_revenue", "tax_payable", "bad_debt"


def entry(kind: str, source: str) -> JournalEntry:
    return JournalEntry.objects.get(kind=kind, source=source)


def lines(entry: JournalEntry) -> list[tuple]:
    """(role, debit, credit, customer name) in the order posted."""
    return [
        (line.account.role, line.debit, line.credit, line.customer.name)
        for line in entry.lines.select_related("account", "customer").order_by("id")
    ]


def taxed(person, subtotal: str, tax: str, issued: str) -> Invoice:
    """An invoice of `subtotal` + `tax` at 8.25 %, finalized on `issued`."""
    draft = Invoice.objects.create(
        customer=person,
        subscription=person.subscriptions.get(),
        billing_date=day(issued) + dt.timedelta(days=7000),
        currency=person.currency,
        subtotal=D(subtotal),
        tax_rate=D("8.25"),
        tax_amount=D(tax),
        total=D(subtotal) + D(tax),
    )
    with time_machine.travel(f"{issued} 12:00Z", tick=False):
        return invoice_finalize(invoice=draft, issue_date=day(issued))


def balances(**kwargs) -> dict:
    """{role: balance} in USD, zero balances left out."""
    return {
        role: amount
        for (role, currency), amount in account_balances(**kwargs).items()
        if amount and currency == "USD"
    }


def totals() -> tuple[Decimal, Decimal]:
    rows = JournalLine.objects.values_list("debit", "credit")
    return exact_sum(d for d, _ in rows), exact_sum(c for _, c in rows)


# -- each document's entry ---------------------------------------------------------------------


def test_a_finalized_invoice_posts_receivable_against_deferred_revenue_and_tax(db):
    # Given an invoice of 100.00 + 8.25 % tax (8.25) = 108.25, issued Mar 3
    acme = customer(name="Acme")
    invoice = taxed(acme, "100.00", "8.25", "2026-03-03")

    # When the job runs
    assert journal_sync(today=day("2026-03-31")) == 1

    # Then Dr AR 108.25 / Cr Deferred revenue 100.00 / Cr Sales tax 8.25, on Mar 3, Acme's
    posted = entry("invoice", f"invoice:{invoice.pk}")
    assert (posted.entry_date, posted.currency) == (day("2026-03-03"), "USD")
    assert lines(posted) == [
        (AR, D("108.25"), D("0"), "Acme"),
        (DEFERRED, D("0"), D("100.00"), "Acme"),
        (TAX, D("0"), D("8.25"), "Acme"),
    ]


def test_an_invoice_below_zero_posts_the_mirror_to_the_credit_balance(db):
    # Given an invoice of −50.00 − 4.13 tax = −54.13 (a downgrade credited more than charged)
    acme = customer(name="Acme")
    invoice = taxed(acme, "-50.00", "-4.13", "2026-03-03")
    assert credit_balance(acme) == D("54.13")

    # When the job runs
    journal_sync(today=day("2026-03-31"))

    # Then Dr Deferred revenue 50.00, Dr Sales tax 4.13 / Cr Customer credit balances 54.13
    assert lines(entry("invoice", f"invoice:{invoice.pk}")) == [
        (CREDIT, D("0"), D("54.13"), "Acme"),
        (DEFERRED, D("50.00"), D("0"), "Acme"),
        (TAX, D("4.13"), D("0"), "Acme"),
    ]
    assert balances() == {CREDIT: D("54.13"), DEFERRED: D("-50.00"), TAX: D("-4.13")}


def test_a_void_invoice_is_reversed_on_the_day_it_was_voided(db):
    # Given an invoice of 108.25 issued Mar 3, voided Mar 9 (before the job ever ran)
    acme = customer(name="Acme")
    invoice = taxed(acme, "100.00", "8.25", "2026-03-03")
    with time_machine.travel("2026-03-09 15:00Z", tick=False):
        invoice_void(invoice=invoice, reason="Billed twice")

    # When the job runs
    assert journal_sync(today=day("2026-03-31")) == 2

    # Then the invoice's entry on Mar 3 and its mirror on Mar 9, which reverses it
    posted = entry("invoice", f"invoice:{invoice.pk}")
    void = entry("invoice_void", f"invoice:{invoice.pk}")
    assert (void.entry_date, void.reverses) == (day("2026-03-09"), posted)
    assert lines(void) == [
        (AR, D("0"), D("108.25"), "Acme"),
        (DEFERRED, D("100.00"), D("0"), "Acme"),
        (TAX, D("8.25"), D("0"), "Acme"),
    ]
    # And on Mar 8 Acme owed 108.25; from Mar 9 nothing
    assert balances(as_of=day("2026-03-08"))[AR] == D("108.25")
    assert balances() == {}


def test_a_credit_note_splits_between_the_receivable_and_the_credit_balance(db):
    # Given an invoice of 108.25 (100.00 + 8.25 tax) of which 80.00 is paid: 28.25 open
    acme = customer(name="Acme")
    invoice = taxed(acme, "100.00", "8.25", "2026-03-03")
    pay(acme, "80.00", "2026-03-05")

    # When a credit note of 40.00 + 3.30 tax (8.25 % of 40.00) = 43.30 is issued Mar 10
    note = credit(invoice, "40.00", "2026-03-10")
    journal_sync(today=day("2026-03-31"))

    # Then 28.25 comes off the receivable and 43.30 − 28.25 = 15.05 goes to the credit balance
    assert (note.subtotal, note.tax_amount, note.total) == (D("40.00"), D("3.30"), D("43.30"))
    assert (fresh(invoice).open_amount, credit_balance(acme)) == (D("0.00"), D("15.05"))
    posted = entry("credit_note", f"credit_note:{note.pk}")
    assert posted.entry_date == day("2026-03-10")
    assert lines(posted) == [
        (DEFERRED, D("40.00"), D("0"), "Acme"),
        (TAX, D("3.30"), D("0"), "Acme"),
        (AR, D("0"), D("28.25"), "Acme"),
        (CREDIT, D("0"), D("15.05"), "Acme"),
    ]
    assert balances() == {
        CASH: D("80.00"),
        CREDIT: D("15.05"),
        DEFERRED: D("60.00"),
        TAX: D("4.95"),
    }


def test_a_payment_lands_in_cash_and_its_rows_move_it_to_the_invoices(db):
    # Given two invoices of 100.00 (Jan 1 and Jan 2)
    acme = customer(name="Acme")
    first = issue(acme, "100.00", "2026-01-01")
    second = issue(acme, "100.00", "2026-01-02")

    # When 250.00 comes in on Jan 20 (100.00 to each, 50.00 on account) and the job runs
    payment = pay(acme, "250.00", "2026-01-20", reference="P1")
    journal_sync(today=day("2026-01-31"))

    # Then the receipt: Dr Cash 250.00 / Cr Customer credit balances 250.00, on Jan 20
    receipt = entry("payment", f"payment:{payment.pk}")
    assert receipt.entry_date == day("2026-01-20")
    assert lines(receipt) == [
        (CASH, D("250.00"), D("0"), "Acme"),
        (CREDIT, D("0"), D("250.00"), "Acme"),
    ]
    # And each row to an invoice: Dr Customer credit 100.00 / Cr AR 100.00; none for the
    # row on account (the 50.00 stays in the customer's credit)
    for invoice in (first, second):
        row = PaymentAllocation.objects.get(invoice=invoice)
        assert lines(entry("allocation", f"allocation:{row.pk}")) == [
            (CREDIT, D("100.00"), D("0"), "Acme"),
            (AR, D("0"), D("100.00"), "Acme"),
        ]
    assert JournalEntry.objects.filter(kind="allocation").count() == 2
    assert balances() == {CASH: D("250.00"), CREDIT: D("50.00"), DEFERRED: D("200.00")}

    # When the next invoice of 100.00 (Feb 1) takes the 50.00 at finalization
    third = issue(acme, "100.00", "2026-02-01")
    journal_sync(today=day("2026-02-28"))

    # Then Dr Customer credit 50.00 / Cr AR 50.00 on Feb 1: AR 50.00 = what is open
    applied = JournalEntry.objects.get(kind="credit_applied")
    assert applied.entry_date == day("2026-02-01")
    assert lines(applied) == [
        (CREDIT, D("50.00"), D("0"), "Acme"),
        (AR, D("0"), D("50.00"), "Acme"),
    ]
    assert balances() == {CASH: D("250.00"), AR: D("50.00"), DEFERRED: D("300.00")}
    assert fresh(third).open_amount == D("50.00")


def test_a_bounced_month_reversal_write_off_and_refund(db):
    # Given bounced_month (tests/receivables/cash.py):
    #   Jan 5 A 100.00, Jan 10 B 80.00; Jan 20 P1 150.00 → A 100.00, B 50.00;
    #   Jan 25 P2 60.00 → B 30.00, 30.00 on account; Feb 3 P1 reversed (A, B open again);
    #   Feb 10 40.00 of A written off; Feb 15 the 30.00 on account refunded
    acme, a, b = bounced_month()

    # When the job runs: 2 invoices, 2 receipts, 5 rows (3 + 2 taken back), 1 reversal,
    # 1 write-off, 1 refund
    assert journal_sync(today=day("2026-02-28")) == 12

    p1 = Payment.objects.get(reference="P1")
    reversal = entry("payment_reversal", f"payment:{p1.pk}")
    assert (reversal.entry_date, reversal.reverses) == (
        day("2026-02-03"),
        entry("payment", f"payment:{p1.pk}"),
    )
    assert lines(reversal) == [
        (CREDIT, D("150.00"), D("0"), "Acme Corp"),
        (CASH, D("0"), D("150.00"), "Acme Corp"),
    ]
    taken_back = PaymentAllocation.objects.get(payment=p1, invoice=a, amount__lt=0)
    assert lines(entry("allocation", f"allocation:{taken_back.pk}")) == [
        (CREDIT, D("0"), D("100.00"), "Acme Corp"),
        (AR, D("100.00"), D("0"), "Acme Corp"),
    ]
    write_off = JournalEntry.objects.get(kind="write_off")
    assert write_off.entry_date == day("2026-02-10")
    assert lines(write_off) == [
        (BAD_DEBT, D("40.00"), D("0"), "Acme Corp"),
        (AR, D("0"), D("40.00"), "Acme Corp"),
    ]
    refund = JournalEntry.objects.get(kind="refund")
    assert (refund.source, refund.entry_date) == (
        f"refund:{Refund.objects.get().pk}",
        day("2026-02-15"),
    )
    assert lines(refund) == [
        (CREDIT, D("30.00"), D("0"), "Acme Corp"),
        (CASH, D("0"), D("30.00"), "Acme Corp"),
    ]

    # Then AR = A 100 − 40 + B 80 − 30 = 110.00; cash 150 + 60 − 150 − 30 = 30.00; no credit
    assert balances() == {
        AR: D("110.00"),
        CASH: D("30.00"),
        DEFERRED: D("180.00"),
        BAD_DEBT: D("40.00"),
    }
    assert fresh(a).open_amount + fresh(b).open_amount == D("110.00")
    # And on Feb 2, before the bounce: A and B paid 150.00, 30.00 on account
    # (AR nothing: balances() leaves zero out)
    assert balances(as_of=day("2026-02-02")) == {
        CASH: D("210.00"),
        CREDIT: D("30.00"),
        DEFERRED: D("180.00"),
    }


def test_a_document_not_dated_yet_waits_for_its_day(db):
    # Given an invoice issued Mar 3
    acme = customer(name="Acme")
    taxed(acme, "100.00", "8.25", "2026-03-03")

    # When the job runs as of Mar 2, then Mar 3
    # Then nothing on Mar 2, the invoice on Mar 3
    assert journal_sync(today=day("2026-03-02")) == 0
    assert journal_sync(today=day("2026-03-03")) == 1


def test_money_received_before_its_invoice_waits_in_the_credit_balance(db):
    # Given an invoice of 100.00 issued Mar 10, and a payment of it received Mar 5 (recorded
    # late): on account from Mar 5, applied on Mar 10
    acme = customer(name="Acme")
    invoice = issue(acme, "100.00", "2026-03-10")
    payment = pay(acme, "100.00", "2026-03-05", allocations={invoice: D("100.00")})

    # When the job runs
    journal_sync(today=day("2026-03-31"))

    # Then the cash is in Customer credit balances from Mar 5, and its row to the invoice moves
    # it to the receivable on Mar 10 (the two rows on account are not posted)
    row = PaymentAllocation.objects.get(payment=payment, invoice=invoice)
    assert entry("allocation", f"allocation:{row.pk}").entry_date == day("2026-03-10")
    assert JournalEntry.objects.filter(kind="allocation").count() == 1
    assert balances(as_of=day("2026-03-07")) == {CASH: D("100.00"), CREDIT: D("100.00")}
    assert balances(as_of=day("2026-03-10")) == {CASH: D("100.00"), DEFERRED: D("100.00")}
    for on in ("2026-03-07", "2026-03-10"):
        tie_out(day(on), [acme])


# -- idempotency -------------------------------------------------------------------------------


def snapshot() -> list[tuple]:
    return [
        (e.kind, e.source, e.entry_date, tuple(lines(e)))
        for e in JournalEntry.objects.order_by("kind", "source")
    ]


def test_running_the_job_twice_posts_each_document_once(db):
    # Given a bounced month posted once
    bounced_month()
    assert journal_sync(today=day("2026-02-28")) == 12
    before = snapshot()

    # When the job runs again
    # Then it posts nothing and the journal is the same
    assert journal_sync(today=day("2026-02-28")) == 0
    assert snapshot() == before
    assert JournalEntry.objects.count() == 12


def test_a_run_with_nothing_new_reads_once_per_kind_of_document(db, django_assert_num_queries):
    # Given a bounced month already posted
    bounced_month()
    journal_sync(today=day("2026-02-28"))

    # When beat runs the job again: one query per kind of document (10), nothing written
    with django_assert_num_queries(10):
        assert journal_sync(today=day("2026-02-28")) == 0


def test_the_celery_task_posts_the_journal_after_recognition(db):
    from revrec.tasks import revrec_sync

    # Given an invoice issued Mar 3
    acme = customer(name="Acme")
    invoice = taxed(acme, "100.00", "8.25", "2026-03-03")

    # When beat runs the task (it returns what recognition returns: lines recognized)
    with time_machine.travel("2026-03-04 03:00Z", tick=False):
        assert isinstance(revrec_sync(), int)

    # Then the invoice is in the journal
    assert JournalEntry.objects.filter(kind="invoice", source=f"invoice:{invoice.pk}").exists()


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_post_each_document_once():
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")
    chart()  # a transactional test before this one flushed the migration's chart of accounts
    bounced_month()
    barrier = threading.Barrier(3)
    results, errors = [], []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(journal_sync(today=day("2026-02-28")))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then the three runs posted the 12 entries between them, each once
    assert errors == []
    assert sum(results) == 12
    assert JournalEntry.objects.count() == 12
    assert balances()[AR] == D("110.00")


# -- a month of activity ties out --------------------------------------------------------------


def at(moment: str):
    return time_machine.travel(f"{moment} 12:00Z", tick=False)


def tie_out(as_of: dt.date, people) -> None:
    """The journal on `as_of` agrees with the documents."""
    debits, credits = totals()
    assert debits == credits
    report = ar_aging(as_of=as_of)
    whole = balances(as_of=as_of)
    assert whole.get(AR, D(0)) == report.open_total("USD")
    for person in people:
        mine = balances(as_of=as_of, customer=person)
        row = next((r for r in report.rows if r.customer_id == person.pk), None)
        assert mine.get(AR, D(0)) == (row.open if row else D(0)), person
        assert mine.get(CREDIT, D(0)) == (row.unapplied_credit if row else D(0)), person


def test_a_month_of_activity_ties_out_to_the_documents(db):
    # Given three customers and a month of billing and collections through the services
    acme, bolt, cora = (customer(name=n) for n in ("Acme", "Bolt", "Cora"))
    people = (acme, bolt, cora)
    a1 = taxed(acme, "100.00", "8.25", "2026-04-01")  # 108.25
    b1 = issue(bolt, "200.00", "2026-04-01")
    c1 = issue(cora, "50.00", "2026-04-02")
    # Acme over-pays: 108.25 to a1, 41.75 on account
    p_acme = pay(acme, "150.00", "2026-04-05", reference="ACME-1")
    # Bolt pays 120.00 on account (not applied), then applies 100.00 of it to b1
    p_bolt = pay(bolt, "120.00", "2026-04-06", reference="BOLT-1", auto_apply=False)
    with at("2026-04-07"):
        payment_apply(payment=p_bolt, invoice=b1, amount=D("100.00"))
    # Cora pays c1 in full; a credit note of 20.00 on the paid invoice goes to her balance
    pay(cora, "50.00", "2026-04-08", reference="CORA-1")
    credit(c1, "20.00", "2026-04-09")
    journal_sync(today=day("2026-04-09"))  # the job runs mid-month too
    tie_out(day("2026-04-09"), people)

    # Acme's next invoice takes the 41.75 on account at finalization
    a2 = taxed(acme, "60.00", "4.95", "2026-04-10")  # 64.95 − 41.75 = 23.20 open
    # Bolt's 100.00 was applied to the wrong invoice: un-applied (back on account)
    with at("2026-04-12"):
        allocation_unapply(
            allocation=PaymentAllocation.objects.get(payment=p_bolt, invoice=b1),
            reason="Meant for the next invoice",
        )
    b2 = issue(bolt, "90.00", "2026-04-14")  # takes 90.00 of the 120.00 on account
    # Acme's payment bounces: a1 opens again; its 41.75 on account was used by a2 → taken back
    payment_reverse(payment=p_acme, reason="Bounced", on=day("2026-04-20"))
    # Cora's 20.00 refunded; 30.00 of Bolt's b1 written off
    refund_record(customer=cora, amount=D("20.00"), refunded_on=day("2026-04-22"))
    invoice_write_off(invoice=b1, reason="Disputed", amount=D("30.00"), on=day("2026-04-25"))
    pay(bolt, "25.00", "2026-04-28", reference="BOLT-2")
    journal_sync(today=day("2026-04-30"))

    # Then the figures by hand:
    # Acme: a1 108.25 open (bounced), a2 64.95 open (its 41.75 taken back) → AR 173.20; credit 0
    # Bolt: b1 200 − 30 written off − 25 (BOLT-2, oldest due first) = 145.00; b2 paid by 90.00
    #       of credit; credit 120 − 90 = 30.00 → AR 145.00, credit 30.00
    # Cora: paid; 20.00 credited then refunded → AR 0, credit 0
    assert [fresh(i).open_amount for i in (a1, a2, b1, b2, c1)] == [
        D("108.25"),
        D("64.95"),
        D("145.00"),
        D("0.00"),
        D("0.00"),
    ]
    # (Acme's cash 150.00 − 150.00 and credit are zero: left out)
    assert balances(customer=acme) == {AR: D("173.20"), DEFERRED: D("160.00"), TAX: D("13.20")}
    assert (balances(customer=bolt)[AR], balances(customer=bolt)[CREDIT]) == (
        D("145.00"),
        D("30.00"),
    )
    assert balances(customer=cora) == {CASH: D("30.00"), DEFERRED: D("30.00")}
    for person in people:
        mine = balances(customer=person)
        open_ = exact_sum(i.open_amount for i in Invoice.objects.filter(customer=person))
        assert mine.get(AR, D(0)) == open_
        assert mine.get(CREDIT, D(0)) == credit_balance(person)
    # Cash = received 150 + 120 + 50 + 25 − reversed 150 − refunded 20 = 175.00
    assert balances()[CASH] == D("175.00")
    received = exact_sum(Payment.objects.values_list("amount", flat=True))
    reversed_ = exact_sum(
        Payment.objects.filter(reversed_on__isnull=False).values_list("amount", flat=True)
    )
    refunded = exact_sum(Refund.objects.values_list("amount", flat=True))
    assert balances()[CASH] == received - reversed_ - refunded
    # And every day of the month the journal agreed with the documents and the aging
    for offset in range(30):
        tie_out(day("2026-04-01") + dt.timedelta(days=offset), people)
