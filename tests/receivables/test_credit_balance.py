"""The customer's credit balance: over-payments, credit notes beyond what is open and invoices
below zero go to it; the next invoice takes it at finalization. And a property test: whatever
the sequence of payments, applications, un-applies, credit notes, write-offs, reversals and
refunds, every invoice's stored sums agree with its rows, nothing is open below zero, paid means
nothing open, and the aging ties to the documents."""

from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import clock
from core.errors import Conflict, ValidationError
from core.money import exact_sum
from invoicing.balance import credit_balance, credit_balance_apply
from invoicing.models import CreditBalanceEntry, CreditNote, Invoice
from receivables.aging import ar_aging
from receivables.models import Payment, PaymentAllocation, Refund, WriteOff
from receivables.selectors import customer_balances
from receivables.services import (
    allocation_net,
    allocation_unapply,
    invoice_write_off,
    payment_apply,
    payment_on_account,
    payment_reverse,
    refund_record,
)
from tests.factories import day
from tests.receivables.cash import (
    balance,
    credit,
    customer,
    figures,
    fresh,
    issue,
    open_from_rows,
    pay,
    rows_written,
)

D = Decimal
FIN, PAID = Invoice.Status.FINALIZED, Invoice.Status.PAID


def test_an_over_payment_goes_on_account_and_the_next_invoice_takes_it(db):
    # Given two invoices of 100.00 (the issue's example)
    acme = customer()
    first = issue(acme, "100.00", "2026-01-01")
    second = issue(acme, "100.00", "2026-01-02")

    # When 250.00 comes in
    payment = pay(acme, "250.00", "2026-01-20")

    # Then both are paid and 50.00 is on account
    assert figures(first)[:2] == figures(second)[:2] == (PAID, D("0.00"))
    assert payment_on_account(payment) == D("50.00")
    assert balance(acme) == D("50.00")
    (row,) = customer_balances(customer=acme, as_of=day("2026-01-25"))
    assert (row.due, row.credit) == (D("0"), D("50.00"))

    # When the next invoice of 100.00 is finalized
    third = issue(acme, "100.00", "2026-02-01")

    # Then it takes the 50.00 at finalization and shows 50.00 open
    assert figures(third)[:3] == (FIN, D("50.00"), D("50.00"))
    assert balance(acme) == D("0.00")
    taken = CreditBalanceEntry.objects.get(kind="applied")
    assert (taken.invoice_id, taken.amount, taken.effective_on) == (
        third.pk,
        D("-50.00"),
        day("2026-02-01"),
    )
    assert open_from_rows(third) == D("50.00")


def test_a_credit_note_on_a_paid_invoice_goes_to_the_balance_then_the_next_invoice(db):
    # Given a paid invoice of 100.00
    acme = customer()
    paid = issue(acme, "100.00", "2026-01-01")
    pay(acme, "100.00", "2026-01-10")

    # When it is credited 30.00
    note = credit(paid, "30.00", "2026-01-15")

    # Then it stays paid (nothing open) and the 30.00 is the customer's credit
    assert figures(paid) == (PAID, D("0.00"), D("100.00"), D("0"), D("30.00"))
    assert balance(acme) == D("30.00")
    assert CreditBalanceEntry.objects.get(kind="credit_note").credit_note_id == note.pk

    # And the next invoice of 80.00 takes it: 50.00 open
    nxt = issue(acme, "80.00", "2026-02-01")
    assert figures(nxt)[:3] == (FIN, D("50.00"), D("30.00"))
    assert balance(acme) == D("0.00")


def test_a_credit_note_beyond_what_is_open_splits(db):
    # Given 100.00 with 70.00 paid: 30.00 open
    acme = customer()
    invoice = issue(acme, "100.00", "2026-01-01")
    pay(acme, "70.00", "2026-01-10")

    # When 50.00 is credited
    credit(invoice, "50.00", "2026-01-15")

    # Then 30.00 closes what was open and 20.00 goes to the balance
    assert figures(invoice) == (PAID, D("0.00"), D("70.00"), D("0"), D("20.00"))
    assert fresh(invoice).credited_amount == D("50.00")
    assert balance(acme) == D("20.00")


def test_a_fully_credited_open_invoice_is_paid(db):
    acme = customer()
    invoice = issue(acme, "100.00", "2026-01-01")

    credit(invoice, "100.00", "2026-01-15")

    # (it used to stay "finalized" with nothing due; status now says what is left: nothing)
    assert figures(invoice) == (PAID, D("0.00"), D("0"), D("0"), D("0"))
    assert balance(acme) == D("0")


def test_an_invoice_below_zero_goes_to_the_balance(db):
    # Given a draft of −30.00 (a downgrade's proration, say)
    acme = customer()

    below = issue(acme, "-30.00", "2026-01-01")

    # Then finalizing it settles it (nothing to pay) and the customer has 30.00 of credit
    assert figures(below)[:2] == (PAID, D("0"))
    entry = CreditBalanceEntry.objects.get()
    assert (entry.kind, entry.amount, entry.invoice_id) == (
        "negative_invoice",
        D("30.00"),
        below.pk,
    )
    nxt = issue(acme, "100.00", "2026-02-01")
    assert figures(nxt)[:3] == (FIN, D("70.00"), D("30.00"))


def test_an_invoice_of_zero_is_paid_as_it_is_issued(db):
    acme = customer()
    pay(acme, "10.00", "2026-01-01")

    zero = issue(acme, "0.00", "2026-01-02")

    assert figures(zero)[:3] == (PAID, D("0"), D("0"))
    assert balance(acme) == D("10.00")  # untouched


def test_credit_applied_by_hand_and_in_its_currency_only(db):
    # Given a customer with 40.00 USD on account, then an open invoice made before it
    acme = customer()
    invoice = issue(acme, "100.00", "2026-01-01")
    pay(acme, "40.00", "2026-01-10", auto_apply=False)

    # When finance applies 15.00, then the rest of what the balance allows
    assert credit_balance_apply(invoice=invoice, amount=D("15.00"), on=day("2026-01-11")) == D(
        "15.00"
    )
    with pytest.raises(ValidationError) as caught:
        credit_balance_apply(invoice=invoice, amount=D("25.01"))
    assert credit_balance_apply(invoice=invoice) == D("25.00")

    # Then
    assert caught.value.message == f"{acme} has $25.00 of credit balance: $25.01 is more."
    assert figures(invoice)[:3] == (FIN, D("60.00"), D("40.00"))
    assert balance(acme) == D("0.00")
    assert credit_balance(acme, "EUR") == D("0")
    assert credit_balance_apply(invoice=invoice) == D("0")  # nothing left: nothing applied
    with pytest.raises(Conflict):
        credit_balance_apply(invoice=issue(acme, "0.00", "2026-01-12"))


# --- the property test --------------------------------------------------------------------------

TOTALS = ("100.00", "80.00", "50.00")
operations = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(1, 25000), st.sampled_from([None, 0, 1, 2])),
        st.tuples(st.just("apply"), st.integers(0, 9), st.sampled_from([0, 1, 2])),
        st.tuples(st.just("unapply"), st.integers(0, 9)),
        st.tuples(st.just("credit"), st.sampled_from([0, 1, 2]), st.integers(1, 12000)),
        st.tuples(st.just("write_off"), st.sampled_from([0, 1, 2]), st.integers(0, 12000)),
        st.tuples(st.just("reverse"), st.integers(0, 9)),
        st.tuples(st.just("refund"), st.integers(1, 10000)),
        st.tuples(st.just("issue"), st.integers(1, 15000)),
    ),
    min_size=1,
    max_size=12,
)


def _pick(rows, index):
    rows = list(rows)
    return rows[index % len(rows)] if rows else None


def _run(op, acme, invoices) -> None:
    kind = op[0]
    cents = lambda n: D(n) / 100  # noqa: E731
    if kind == "pay":
        amount, target = cents(op[1]), op[2]
        allocations = None
        if target is not None:
            invoice = fresh(invoices[target])
            allocations = {invoice: min(amount, invoice.open_amount)}
        pay(acme, str(amount), "2026-03-01", allocations=allocations)
    elif kind == "apply":
        payment = _pick(Payment.objects.filter(reversed_on=None).order_by("pk"), op[1])
        if payment is not None:
            payment_apply(payment=payment, invoice=invoices[op[2]])
    elif kind == "unapply":
        rows = PaymentAllocation.objects.filter(invoice__isnull=False, amount__gt=0).order_by("pk")
        row = _pick(rows, op[1])
        if row is not None:
            allocation_unapply(allocation=row, reason="Wrong invoice")
    elif kind == "credit":
        invoice = fresh(invoices[op[1]])
        left = invoice.total - invoice.credited_amount
        credit_note_amount = min(cents(op[2]), left)
        if credit_note_amount > 0:
            credit(invoice, str(credit_note_amount), "2026-03-02")
    elif kind == "write_off":
        amount = cents(op[2]) or None  # 0: all that is open
        invoice_write_off(invoice=invoices[op[1]], reason="Bad debt", amount=amount)
    elif kind == "reverse":
        payment = _pick(Payment.objects.filter(reversed_on=None).order_by("pk"), op[1])
        if payment is not None:
            payment_reverse(payment=payment, reason="Bounced")
    elif kind == "refund":
        held = balance(acme)  # up to the balance (over it is refused: tried when it is empty)
        refund_record(customer=acme, amount=min(cents(op[1]), held) if held > 0 else cents(op[1]))
    elif kind == "issue":
        invoices.append(issue(acme, str(cents(op[1])), "2026-03-03"))


def _snapshot():
    return (
        rows_written(),
        Refund.objects.count(),
        WriteOff.objects.count(),
        CreditNote.objects.count(),
        sorted(Invoice.objects.values_list("pk", "status", "paid_amount", "written_off_amount")),
    )


def _check(acme, invoices, reversed_any: bool) -> None:
    for invoice in Invoice.objects.filter(customer=acme):
        stored = invoice.open_amount
        by_sums = (
            invoice.total
            - invoice.credited_amount
            + invoice.credit_to_balance
            - invoice.paid_amount
            - invoice.written_off_amount
        )
        assert stored == by_sums == open_from_rows(invoice), invoice
        assert stored >= 0
        assert (invoice.status == PAID) == (stored == 0), invoice
        # each stored sum is its rows' sum
        allocated = exact_sum(invoice.allocations.values_list("amount", flat=True))
        applied = exact_sum(
            invoice.credit_balance_entries.filter(kind="applied").values_list("amount", flat=True)
        )
        assert invoice.paid_amount == allocated - applied
        assert invoice.written_off_amount == exact_sum(
            invoice.write_offs.values_list("amount", flat=True)
        )
        assert invoice.credited_amount == exact_sum(
            invoice.credit_notes.values_list("total", flat=True)
        )
        assert invoice.credit_to_balance == exact_sum(
            invoice.credit_balance_entries.filter(kind="credit_note").values_list(
                "amount", flat=True
            )
        )
    # every allocation taken back at most once, in full
    for row in PaymentAllocation.objects.filter(amount__gt=0, invoice__isnull=False):
        assert D(0) <= allocation_net(row) <= row.amount
    held = balance(acme)
    assert held >= 0 or reversed_any
    # the aging as of today ties to the documents
    today = clock.today()
    report = ar_aging(as_of=today)
    rows = [r for r in report.rows if r.customer_id == acme.pk]
    open_, unapplied = (rows[0].open, rows[0].unapplied_credit) if rows else (D(0), D(0))
    assert open_ == exact_sum(i.open_amount for i in Invoice.objects.filter(customer=acme))
    assert unapplied == held
    payments = Payment.objects.filter(customer=acme, reversed_on=None)
    documents = (
        exact_sum(
            Invoice.objects.filter(customer=acme)
            .exclude(status="draft")
            .values_list("total", flat=True)
        )
        - exact_sum(CreditNote.objects.filter(customer=acme).values_list("total", flat=True))
        - exact_sum(payments.values_list("amount", flat=True))
        + exact_sum(Refund.objects.filter(customer=acme).values_list("amount", flat=True))
        - exact_sum(
            WriteOff.objects.filter(invoice__customer=acme).values_list("amount", flat=True)
        )
    )
    assert open_ - unapplied == documents


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=operations)
def test_the_invoice_sums_always_agree_with_the_rows(db, ops):
    # Given three invoices (100.00, 80.00, 50.00) on Jan 1–3; every example is rolled back
    with time_machine.travel("2026-06-01 12:00Z", tick=False), transaction.atomic():
        acme = customer(name="Property")
        invoices = [issue(acme, total, f"2026-01-0{n + 1}") for n, total in enumerate(TOTALS)]
        reversed_any = False
        # When any sequence of operations runs (those refused write nothing)
        for op in ops:
            before = _snapshot()
            try:
                _run(op, acme, invoices)
            except (ValidationError, Conflict):
                assert _snapshot() == before, op
            else:
                reversed_any |= op[0] == "reverse"
            # Then after every step
            _check(acme, invoices, reversed_any)
        transaction.set_rollback(True)
