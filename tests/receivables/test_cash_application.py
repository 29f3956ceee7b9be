"""Cash application: a payment allocated in full (to the invoices named, else oldest due date
first, the rest on account), money on account applied later, un-applied, payments reversed,
refunds, write-offs, the derived invoice state, idempotent recording. Every figure by hand."""

from decimal import Decimal

import pytest
import time_machine

from core.errors import Conflict, ValidationError
from invoicing.corrections import invoice_void
from invoicing.models import CreditBalanceEntry, Invoice
from receivables.models import Payment, PaymentAllocation, Refund, WriteOff
from receivables.selectors import InvoiceState, invoice_state
from receivables.services import (
    allocation_unapply,
    invoice_write_off,
    payment_apply,
    payment_on_account,
    payment_record,
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


def applied(payment) -> dict[str, Decimal]:
    """{invoice number: amount} of the payment's allocations to invoices, net."""
    out: dict[str, Decimal] = {}
    for row in payment.allocations.filter(invoice__isnull=False).select_related("invoice"):
        out[row.invoice.number] = out.get(row.invoice.number, D(0)) + row.amount
    return out


@pytest.fixture
def three(db):
    """Acme: A 100.00 issued Jan 1 due Mar 2; B 80.00 issued Jan 10 due Jan 25; C 50.00 issued
    Jan 5 due Feb 4. By due date: B, C, A (not by issue date A, C, B, nor by id A, B, C)."""
    acme = customer()
    a = issue(acme, "100.00", "2026-01-01", due="2026-03-02")
    b = issue(acme, "80.00", "2026-01-10", due="2026-01-25")
    c = issue(acme, "50.00", "2026-01-05", due="2026-02-04")
    return acme, a, b, c


# --- allocation ----------------------------------------------------------------------------


def test_a_payment_goes_to_the_oldest_due_date_first(three):
    acme, a, b, c = three

    # When 150.00 comes in on Feb 10 with no invoice named
    payment = pay(acme, "150.00", "2026-02-10")

    # Then B (due Jan 25) takes 80.00, C (due Feb 4) 50.00, A (due Mar 2) the last 20.00
    assert applied(payment) == {b.number: D("80.00"), c.number: D("50.00"), a.number: D("20.00")}
    assert figures(b)[:2] == (PAID, D("0.00"))
    assert figures(c)[:2] == (PAID, D("0.00"))
    assert figures(a)[:3] == (FIN, D("80.00"), D("20.00"))
    assert payment_on_account(payment) == D("0") and balance(acme) == D("0")
    # each dated when it was received (both invoices existed by then)
    assert set(payment.allocations.values_list("applied_on", flat=True)) == {day("2026-02-10")}


def test_invoices_due_the_same_day_are_paid_in_the_order_they_were_made(db):
    acme = customer()
    first = issue(acme, "40.00", "2026-01-01", due="2026-02-01")
    second = issue(acme, "40.00", "2025-12-01", due="2026-02-01")

    payment = pay(acme, "50.00", "2026-01-20")

    assert applied(payment) == {first.number: D("40.00"), second.number: D("10.00")}


def test_explicit_allocations_and_the_rest_on_account(three):
    acme, a, b, c = three

    # When 100.00 names A for 30.00 and C (by id) for 50.00
    payment = pay(acme, "100.00", "2026-02-10", allocations={a: D("30.00"), c.pk: D("50.00")})

    # Then B, the oldest due, is untouched; the 20.00 named nowhere is on account
    assert applied(payment) == {a.number: D("30.00"), c.number: D("50.00")}
    assert figures(a)[:2] == (FIN, D("70.00"))
    assert figures(b)[:2] == (FIN, D("80.00"))
    assert figures(c)[:2] == (PAID, D("0.00"))
    assert payment_on_account(payment) == D("20.00")
    assert balance(acme) == D("20.00")


def test_a_partial_payment_leaves_the_rest_open(three):
    acme, a, b, c = three

    pay(acme, "30.00", "2026-01-20")

    # B (80.00) has 50.00 open, partly paid before its due date, overdue after it
    assert figures(b)[:3] == (FIN, D("50.00"), D("30.00"))
    assert invoice_state(fresh(b), day("2026-01-25")) == InvoiceState.PARTIALLY_PAID
    assert invoice_state(fresh(b), day("2026-01-26")) == InvoiceState.OVERDUE


@pytest.mark.parametrize(
    ("named", "message"),
    [
        (
            {"a": "60.00", "b": "50.00"},
            "The amounts to apply add up to $110.00, more than the payment's $100.00.",
        ),
        ({"b": "80.01"}, "Invoice {b} has $80.00 open: $80.01 is more."),
        ({"a": "10.00", "c": "50.01"}, "Invoice {c} has $50.00 open: $50.01 is more."),
    ],
)
def test_explicit_allocations_beyond_the_payment_or_an_invoice_are_refused(three, named, message):
    acme, a, b, c = three
    invoices = {"a": a, "b": b, "c": c}

    with pytest.raises(ValidationError) as caught:
        pay(
            acme,
            "100.00",
            "2026-02-10",
            allocations={invoices[k]: D(v) for k, v in named.items()},
        )

    # Then the message says what is wrong, and nothing at all was written
    assert caught.value.message == message.format(b=b.number, c=c.number)
    assert rows_written() == (0, 0, 0)
    assert [figures(i)[1] for i in (a, b, c)] == [D("100.00"), D("80.00"), D("50.00")]


def test_a_payment_in_another_currency_says_which_one_to_use(db):
    acme = customer(currency="EUR")

    with pytest.raises(ValidationError) as caught:
        payment_record(
            customer=acme, amount=D("10.00"), currency="USD", received_on=day("2026-01-02")
        )

    assert caught.value.message == f"{acme} is billed in EUR: record the payment in EUR, not USD."
    assert rows_written() == (0, 0, 0)


# --- money on account applied later ----------------------------------------------------------


def test_money_on_account_is_applied_to_an_invoice_later(three):
    acme, a, b, c = three
    payment = pay(acme, "120.00", "2026-02-10", auto_apply=False)
    assert (payment_on_account(payment), balance(acme)) == (D("120.00"), D("120.00"))

    # When it is applied to A without an amount: as much as both allow (100.00)
    with time_machine.travel("2026-02-12 09:00Z", tick=False):
        payment_apply(payment=payment, invoice=a)

    # Then A is paid, 20.00 stays on account; the move is dated the day it was made
    assert figures(a)[:3] == (PAID, D("0.00"), D("100.00"))
    assert (payment_on_account(payment), balance(acme)) == (D("20.00"), D("20.00"))
    assert payment.allocations.get(invoice=a).applied_on == day("2026-02-12")
    assert open_from_rows(a) == D("0.00")


def test_money_on_account_that_a_new_invoice_took_cannot_be_applied_again(db):
    # Given 50.00 on account, then a 30.00 invoice that takes it at its finalization
    acme = customer()
    payment = pay(acme, "50.00", "2026-01-10")
    first = issue(acme, "30.00", "2026-01-15")
    second = issue(acme, "30.00", "2026-01-16")  # takes the 20.00 left
    assert figures(first)[:3] == (PAID, D("0.00"), D("30.00"))
    assert figures(second)[:3] == (FIN, D("10.00"), D("20.00"))
    assert balance(acme) == D("0.00")

    # When the same money is applied by hand
    with pytest.raises(ValidationError) as caught:
        payment_apply(payment=payment, invoice=second)

    # Then it is refused: the payment's money is no longer in the balance
    assert caught.value.message.startswith("Nothing to apply")
    assert figures(second)[:2] == (FIN, D("10.00"))


# --- un-apply ----------------------------------------------------------------------------------


def test_unapplying_reopens_the_invoice_and_puts_the_money_on_account(three):
    acme, a, b, c = three
    payment = pay(acme, "80.00", "2026-01-20", allocations={b: D("80.00")})
    assert figures(b)[:2] == (PAID, D("0.00"))
    allocation = payment.allocations.get(invoice=b)

    # When it turns out the money was meant for A
    with time_machine.travel("2026-01-22 09:00Z", tick=False):
        allocation_unapply(allocation=allocation, reason="Customer meant invoice A")
        payment_apply(payment=payment, invoice=a)

    # Then B is open again, A has 80.00 of its 100.00 paid, nothing is left on account
    assert figures(b)[:3] == (FIN, D("80.00"), D("0.00"))
    assert fresh(b).paid_at is None
    assert figures(a)[:3] == (FIN, D("20.00"), D("80.00"))
    assert (payment_on_account(payment), balance(acme)) == (D("0.00"), D("0.00"))
    assert allocation.reversals.get().amount == D("-80.00")
    assert (open_from_rows(a), open_from_rows(b)) == (D("20.00"), D("80.00"))

    # An application taken back is not taken back twice; a reason is required
    with pytest.raises(Conflict):
        allocation_unapply(allocation=allocation, reason="Again")
    with pytest.raises(ValidationError) as caught:
        allocation_unapply(allocation=payment.allocations.get(invoice=a, amount__gt=0), reason=" ")
    assert caught.value.message == "Say why the payment is un-applied (the reason is required)."
    assert figures(a)[:2] == (FIN, D("20.00"))


# --- reversal ----------------------------------------------------------------------------------


def test_a_reversal_reopens_what_it_paid_and_takes_back_its_money_on_account(db):
    # Given 150.00 that paid A (100.00) and left 50.00 on account, of which D took 40.00 at
    # its finalization
    acme = customer()
    a = issue(acme, "100.00", "2026-01-01")
    payment = pay(acme, "150.00", "2026-01-20")
    d = issue(acme, "40.00", "2026-02-01")
    assert figures(d)[:3] == (PAID, D("0.00"), D("40.00"))
    assert balance(acme) == D("10.00")

    # When the payment bounces on Feb 5
    reopened = payment_reverse(payment=payment, reason="Bounced", on=day("2026-02-05"))

    # Then A owes its 100.00 again, the 10.00 still in the balance leaves it, and the 40.00 D
    # took is reclaimed: D owes 40.00 again; the balance is back to zero
    assert {i.number for i in reopened} == {a.number, d.number}
    assert figures(a)[:3] == (FIN, D("100.00"), D("0.00"))
    assert figures(d)[:3] == (FIN, D("40.00"), D("0.00"))
    assert balance(acme) == D("0.00")
    payment.refresh_from_db()
    assert (payment.reversed_on, payment.reversal_reason) == (day("2026-02-05"), "Bounced")
    assert payment_on_account(payment) == D("0.00")
    assert (open_from_rows(a), open_from_rows(d)) == (D("100.00"), D("40.00"))

    # Not twice, not before it was received, not without a reason
    with pytest.raises(Conflict):
        payment_reverse(payment=payment, reason="Bounced")
    other = pay(acme, "10.00", "2026-02-10", auto_apply=False)
    with pytest.raises(ValidationError):
        payment_reverse(payment=other, reason="Bounced", on=day("2026-02-09"))
    with pytest.raises(ValidationError):
        payment_reverse(payment=other, reason="")
    assert Payment.objects.get(pk=other.pk).reversed_on is None


def test_a_reversal_reclaims_credit_from_the_newest_invoice_first(db):
    # Given 60.00 on account taken by D (Mar 1, 30.00) and E (Apr 1, 30.00), then 20.00 more
    acme = customer()
    first = pay(acme, "60.00", "2026-02-15")
    d = issue(acme, "30.00", "2026-03-01")
    e = issue(acme, "30.00", "2026-04-01")
    pay(acme, "20.00", "2026-04-10")
    assert balance(acme) == D("20.00")

    # When the 60.00 is reversed: the balance holds 20.00, 40.00 more is reclaimed
    payment_reverse(payment=first, reason="Chargeback", on=day("2026-04-15"))

    # Then E (the newest) gives back all 30.00 and D 10.00
    assert figures(e)[:3] == (FIN, D("30.00"), D("0.00"))
    assert figures(d)[:3] == (FIN, D("10.00"), D("20.00"))
    assert balance(acme) == D("0.00")
    taken_back = CreditBalanceEntry.objects.filter(kind="applied", amount__gt=0)
    assert sorted(taken_back.values_list("invoice__number", "amount")) == [
        (d.number, D("10.00")),
        (e.number, D("30.00")),
    ]


def test_a_reversal_of_money_already_refunded_leaves_the_customer_owing_it(db):
    # Given 100.00 on account, refunded
    acme = customer()
    payment = pay(acme, "100.00", "2026-01-10")
    refund_record(customer=acme, amount=D("100.00"), refunded_on=day("2026-01-12"))

    # When the payment bounces: nothing in the balance and no invoice to reclaim from
    payment_reverse(payment=payment, reason="Bounced", on=day("2026-01-15"))

    # Then the balance is below zero: the customer owes the 100.00
    assert balance(acme) == D("-100.00")


# --- refunds -----------------------------------------------------------------------------------


def test_a_refund_only_up_to_the_credit_balance(db):
    acme = customer()
    pay(acme, "50.00", "2026-01-10")

    with pytest.raises(ValidationError) as caught:
        refund_record(customer=acme, amount=D("50.01"), refunded_on=day("2026-01-12"))
    assert caught.value.message == f"{acme} has $50.00 of credit balance: $50.01 is more."
    assert (Refund.objects.count(), balance(acme)) == (0, D("50.00"))

    refund = refund_record(
        customer=acme, amount=D("20.00"), refunded_on=day("2026-01-12"), reference="TR-1"
    )

    assert balance(acme) == D("30.00")
    assert (refund.credit_entry.amount, refund.credit_entry.kind) == (D("-20.00"), "refund")
    with pytest.raises(ValidationError):
        refund_record(customer=acme, amount=D("0"), refunded_on=day("2026-01-12"))


# --- write-offs --------------------------------------------------------------------------------


def test_writing_off_part_then_the_rest(three):
    acme, a, b, c = three
    pay(acme, "30.00", "2026-01-20", allocations={a: D("30.00")})

    # When 20.00 of A's 70.00 open is written off, then the rest
    invoice_write_off(
        invoice=a, reason="Disputed setup fee", amount=D("20.00"), on=day("2026-04-01")
    )
    assert figures(a)[:4] == (FIN, D("50.00"), D("30.00"), D("20.00"))
    assert invoice_state(fresh(a), day("2026-04-01")) == InvoiceState.OVERDUE
    invoice_write_off(invoice=a, reason="Customer went bankrupt", on=day("2026-05-01"))

    # Then nothing is open: settled, shown as written off (not paid)
    assert figures(a)[:4] == (PAID, D("0.00"), D("30.00"), D("70.00"))
    assert invoice_state(fresh(a), day("2026-05-01")) == InvoiceState.WRITTEN_OFF
    assert list(WriteOff.objects.order_by("pk").values_list("amount", "written_off_on")) == [
        (D("20.00"), day("2026-04-01")),
        (D("50.00"), day("2026-05-01")),
    ]
    assert open_from_rows(a) == D("0.00")


def test_a_write_off_needs_a_reason_and_no_more_than_is_open(three):
    acme, a, b, c = three

    with pytest.raises(ValidationError) as no_reason:
        invoice_write_off(invoice=b, reason="  ")
    with pytest.raises(ValidationError) as too_much:
        invoice_write_off(invoice=b, reason="Bad debt", amount=D("80.01"))
    pay(acme, "80.00", "2026-01-20", allocations={b: D("80.00")})
    with pytest.raises(ValidationError) as paid:
        invoice_write_off(invoice=b, reason="Bad debt")

    assert no_reason.value.message == "Say why the invoice is written off (the reason is required)."
    assert too_much.value.message == f"Invoice {b.number} has $80.00 open: $80.01 is more."
    assert paid.value.message == f"Invoice {b.number} has nothing left to write off."
    assert WriteOff.objects.count() == 0
    assert figures(b)[:4] == (PAID, D("0.00"), D("80.00"), D("0"))


def test_a_payment_skips_a_written_off_invoice(three):
    acme, a, b, c = three
    invoice_write_off(invoice=b, reason="Bad debt", on=day("2026-03-01"))

    payment = pay(acme, "60.00", "2026-03-05")

    assert applied(payment) == {c.number: D("50.00"), a.number: D("10.00")}


# --- the derived state -------------------------------------------------------------------------


def test_invoice_state_for_every_state(db):
    acme = customer()
    today = day("2026-02-15")
    opened = issue(acme, "100.00", "2026-02-01", due="2026-03-01")
    partly = issue(acme, "100.00", "2026-02-01", due="2026-03-01")
    paid = issue(acme, "100.00", "2026-02-01", due="2026-03-01")
    late = issue(acme, "100.00", "2026-01-01", due="2026-02-14")
    gone = issue(acme, "100.00", "2026-01-01", due="2026-02-14")
    voided = issue(acme, "100.00", "2026-02-01", due="2026-03-01")
    credited = issue(acme, "100.00", "2026-02-01", due="2026-03-01")
    # (a zero allocation is skipped)
    pay(acme, "40.00", "2026-02-10", allocations={partly: D("40.00"), late: D("0")})
    pay(acme, "100.00", "2026-02-10", allocations={paid: D("100.00")})
    invoice_write_off(invoice=gone, reason="Bankrupt", on=today)
    credit(credited, "100.00", "2026-02-10")
    with time_machine.travel("2026-02-12 12:00Z", tick=False):
        invoice_void(invoice=voided, reason="Billed twice")
    draft = Invoice.objects.create(
        customer=acme,
        subscription=acme.subscriptions.get(),
        billing_date=day("2030-01-01"),
        currency="USD",
        total=D("100.00"),
    )

    states = {
        name: invoice_state(fresh(invoice), today)
        for name, invoice in [
            ("opened", opened),
            ("partly", partly),
            ("paid", paid),
            ("late", late),
            ("gone", gone),
            ("voided", voided),
            ("credited", credited),
            ("draft", draft),
        ]
    }

    assert states == {
        "opened": "open",
        "partly": "partially paid",
        "paid": "paid",
        "late": "overdue",
        "gone": "written off",
        "voided": "void",
        "credited": "paid",  # a fully credited invoice has nothing left to pay
        "draft": "draft",
    }
    # the due date itself is not late yet; the day after is
    assert invoice_state(fresh(opened), day("2026-03-01")) == "open"
    assert invoice_state(fresh(opened), day("2026-03-02")) == "overdue"
    assert fresh(credited).status == PAID


# --- idempotency -------------------------------------------------------------------------------


def test_a_repeated_idempotency_key_returns_the_first_payment(three):
    acme, a, b, c = three
    first = pay(acme, "90.00", "2026-02-10", idempotency_key="bank-2026-02-10-0001")

    again = pay(acme, "90.00", "2026-02-10", idempotency_key="bank-2026-02-10-0001")

    assert again.pk == first.pk
    assert Payment.objects.count() == 1
    assert PaymentAllocation.objects.count() == 2  # B 80.00, C 10.00, once
    assert figures(c)[:2] == (FIN, D("40.00"))


@pytest.mark.parametrize(
    "change",
    [{"amount": "90.01"}, {"on": "2026-02-11"}, {"other_customer": True}],
)
def test_an_idempotency_key_used_for_another_payment_is_a_conflict(three, change):
    acme, a, b, c = three
    first = pay(acme, "90.00", "2026-02-10", idempotency_key="k-1")
    before = rows_written()
    who = customer(name="Globex") if change.get("other_customer") else acme

    with pytest.raises(Conflict) as caught:
        pay(
            who,
            change.get("amount", "90.00"),
            change.get("on", "2026-02-10"),
            idempotency_key="k-1",
        )

    assert caught.value.message == (
        f"This idempotency key was used for another payment ({first}): use a new key for a new "
        "payment."
    )
    assert rows_written() == before


def test_reversals_refunds_and_write_offs_are_not_dated_in_the_future_or_before_the_invoice(
    three,
):
    # Given Acme's invoices (B issued Jan 10) and a payment of 80.00 on B, then 20.00 on account
    acme, a, b, c = three
    payment = pay(acme, "100.00", "2026-01-20", allocations={b: D("80.00")})

    # When each is dated where it cannot be
    with time_machine.travel("2026-02-01 12:00Z", tick=False):
        with pytest.raises(ValidationError) as reversal:
            payment_reverse(payment=payment, reason="Bounced", on=day("2026-02-02"))
        with pytest.raises(ValidationError) as refund:
            refund_record(customer=acme, amount=D("20.00"), refunded_on=day("2026-02-03"))
        with pytest.raises(ValidationError) as write_off:
            invoice_write_off(invoice=a, reason="Bad debt", on=day("2025-12-31"))

    # Then each says why, and nothing was written
    assert reversal.value.message == "The reversal cannot be in the future (Feb 2, 2026)."
    assert refund.value.message == "The refund cannot be in the future (Feb 3, 2026)."
    assert write_off.value.message == ("The write-off (Dec 31, 2025) cannot be before Jan 1, 2026.")
    payment.refresh_from_db()
    assert payment.reversed_on is None
    assert (Refund.objects.count(), WriteOff.objects.count(), balance(acme)) == (0, 0, D("20.00"))
