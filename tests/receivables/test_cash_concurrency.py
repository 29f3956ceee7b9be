"""Concurrency of cash application (PostgreSQL: row locks), and the database's own check that an
invoice is never settled beyond its total."""

import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from core.errors import Conflict, ValidationError
from core.money import exact_sum
from invoicing.corrections import credit_note_issue
from invoicing.models import CreditBalanceEntry, Invoice
from receivables.models import Payment
from receivables.services import (
    allocation_unapply,
    invoice_write_off,
    payment_apply,
    payment_record,
    payment_reverse,
    refund_record,
)
from tests.factories import day
from tests.receivables.cash import balance, customer, fresh, issue, open_from_rows

D = Decimal


def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT … FOR UPDATE) are tested on PostgreSQL")


def at_once(jobs) -> list[object]:
    """Run the jobs in threads released together; each outcome is "ok", or the refusal's
    class name, or repr of anything else (a deadlock, an IntegrityError: a failure)."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[object] = [None] * len(jobs)

    def run(i, job) -> None:
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():
                job()
            outcomes[i] = "ok"
        except (ValidationError, Conflict) as exc:
            outcomes[i] = type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - reported in the assertion
            outcomes[i] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_payments_write_offs_and_credit_notes_at_once_never_over_apply(round_):
    postgres_only()
    # Given an invoice of 100.00, and 30.00 of an earlier payment on account
    acme = customer(name=f"Acme {round_}")
    invoice = issue(acme, "100.00", "2026-01-01")
    earlier = payment_record(
        customer=acme,
        amount=D("30.00"),
        currency="USD",
        received_on=day("2026-01-02"),
        auto_apply=False,
    )

    def pay(amount, **kwargs):
        return lambda: payment_record(
            customer=acme,
            amount=D(amount),
            currency="USD",
            received_on=day("2026-01-20"),
            **kwargs,
        )

    # When six people act on it at the same moment (together far more than 100.00)
    outcomes = at_once(
        [
            pay("60.00", allocations={invoice.pk: D("60.00")}),
            pay("60.00", allocations={invoice.pk: D("60.00")}),
            pay("70.00"),  # oldest due first: whatever is open, the rest on account
            lambda: invoice_write_off(invoice=invoice, reason="Bad debt", amount=D("50.00")),
            lambda: credit_note_issue(invoice=invoice, amount=D("40.00"), reason="Goodwill"),
            lambda: payment_apply(payment=earlier, invoice=invoice, amount=D("30.00")),
        ]
    )

    # Then each was done or refused (no deadlock, no database error) ...
    assert set(outcomes) <= {"ok", "ValidationError", "Conflict"}, outcomes
    invoice = fresh(invoice)
    # ... the invoice is never settled beyond its total, and its sums agree with its rows
    settled = (
        invoice.paid_amount
        + invoice.written_off_amount
        + invoice.credited_amount
        - invoice.credit_to_balance
    )
    assert settled <= invoice.total
    assert invoice.open_amount == invoice.total - settled == open_from_rows(invoice) >= 0
    assert (invoice.status == Invoice.Status.PAID) == (invoice.open_amount == 0)
    # and all money came in: what is not on the invoice is in the credit balance
    received = exact_sum(Payment.objects.filter(customer=acme).values_list("amount", flat=True))
    entries = CreditBalanceEntry.objects.filter(customer=acme).values_list("amount", flat=True)
    assert balance(acme) == exact_sum(entries) >= 0
    assert received - invoice.paid_amount + invoice.credit_to_balance == balance(acme)


@pytest.mark.django_db(transaction=True)
def test_the_same_idempotency_key_at_once_records_one_payment():
    postgres_only()
    acme = customer()
    invoice = issue(acme, "100.00", "2026-01-01")
    payments: list[Payment] = []

    def record():
        payments.append(
            payment_record(
                customer=acme,
                amount=D("40.00"),
                currency="USD",
                received_on=day("2026-01-20"),
                idempotency_key="bank-0001",
            )
        )

    outcomes = at_once([record, record, record])

    assert outcomes == ["ok", "ok", "ok"]
    assert len({p.pk for p in payments}) == 1
    assert Payment.objects.count() == 1
    assert fresh(invoice).open_amount == D("60.00")


@pytest.mark.django_db
def test_the_database_refuses_an_invoice_settled_beyond_its_total():
    # Given an invoice of 100.00 with 60.00 paid
    acme = customer()
    invoice = issue(acme, "100.00", "2026-01-01")
    payment_record(customer=acme, amount=D("60.00"), currency="USD", received_on=day("2026-01-20"))

    # When its sums are written bypassing the services: 41.00 more paid, or written off
    for change in [
        {"paid_amount": D("101.00")},
        {"written_off_amount": D("40.01")},
        {"paid_amount": D("-1.00")},
    ]:
        with pytest.raises(IntegrityError), transaction.atomic():
            Invoice.objects.filter(pk=invoice.pk).update(**change)

    # Then the check invoice_open_not_negative refused each; the row is as it was
    invoice = fresh(invoice)
    assert (invoice.paid_amount, invoice.written_off_amount, invoice.open_amount) == (
        D("60.00"),
        D("0.00"),
        D("40.00"),
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_a_reversal_un_applies_refunds_and_payments_at_once_keep_every_sum_true(round_):
    postgres_only()
    # Given X and Y (100.00 each): 150.00 paid X and 50.00 of Y; 60.00 more on account, of
    # which Z (40.00) took 40.00 at its finalization: 20.00 left in the balance
    acme = customer(name=f"Acme {round_}")
    x = issue(acme, "100.00", "2026-01-01")
    y = issue(acme, "100.00", "2026-01-02")
    first = payment_record(
        customer=acme, amount=D("150.00"), currency="USD", received_on=day("2026-01-10")
    )
    second = payment_record(
        customer=acme,
        amount=D("60.00"),
        currency="USD",
        received_on=day("2026-01-11"),
        auto_apply=False,
    )
    z = issue(acme, "40.00", "2026-01-12")
    assert (fresh(z).open_amount, balance(acme)) == (D("0.00"), D("20.00"))
    on_y = first.allocations.get(invoice=y)

    # When seven things happen at once
    outcomes = at_once(
        [
            lambda: payment_reverse(payment=first, reason="Bounced"),
            lambda: allocation_unapply(allocation=on_y, reason="Meant for X"),
            lambda: payment_record(
                customer=acme,
                amount=D("100.00"),
                currency="USD",
                received_on=day("2026-01-20"),
                allocations={y.pk: D("50.00")},
            ),
            lambda: payment_apply(payment=second, invoice=y, amount=D("20.00")),
            lambda: refund_record(customer=acme, amount=D("20.00")),
            lambda: credit_note_issue(invoice=z, amount=D("10.00"), reason="Goodwill"),
            lambda: invoice_write_off(invoice=x, reason="Bad debt", amount=D("10.00")),
        ]
    )

    # Then each was done or refused, and every invoice's sums agree with its rows
    assert set(outcomes) <= {"ok", "ValidationError", "Conflict"}, outcomes
    for invoice in (x, y, z):
        invoice = fresh(invoice)
        assert invoice.open_amount == open_from_rows(invoice) >= 0, outcomes
        assert (invoice.status == Invoice.Status.PAID) == (invoice.open_amount == 0)
    entries = CreditBalanceEntry.objects.filter(customer=acme).values_list("amount", flat=True)
    assert balance(acme) == exact_sum(entries)
    # below zero only when the reversal could not take its money back (it was refunded)
    assert balance(acme) >= 0 or outcomes[0] == "ok" and outcomes[4] == "ok"
