"""AR aging's two ways to the same figures: AGING_SQL on PostgreSQL (the invoices' stored sums, less
the rows dated after the as-of date) and the Python path (every dated row on or before it), on a
book made by the services: payments applied, on account, applied from the account, un-applied and
reversed; the credit balance applied; credit notes before and after payment; a write-off; a void.
The paths are compared on PostgreSQL; the figures worked by hand hold on both databases."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from invoicing.balance import credit_balance_apply
from invoicing.corrections import credit_note_issue
from invoicing.models import Invoice
from receivables.aging import _figures_in_python, _figures_in_sql, ar_aging
from receivables.models import PaymentAllocation
from receivables.services import (
    allocation_unapply,
    invoice_write_off,
    payment_apply,
    payment_record,
    payment_reverse,
)
from tests.factories import day
from tests.receivables.test_aging import customer_with_subscription, invoice, row_of

D = Decimal
BUCKETS = (30, 60, 90, 120)


def on(date):
    return time_machine.travel(f"{date} 12:00Z", tick=False)


@pytest.fixture
def zeta(db):
    """Zeta (USD), invoices finalized with nothing paid:
    Z1 Jan 1, due Jan 31, 1,000.00   Z2 Jan 10, due Feb 9, 400.00   Z3 Feb 1, due Mar 3, 300.00
    Z4 Feb 15, due Mar 17, 200.00    Z5 Mar 1, due Mar 31, 150.00, voided Mar 12.
    Jan 20  P1 600.00 to Z1
    Feb 5   P2 500.00 on account
    Feb 10  400.00 of P2 applied to Z2 from the account
    Feb 20  that application un-applied (Z2 open again, 400.00 back on account)
    Feb 25  250.00 of the credit balance applied to Z3
    Mar 5   credit note 100.00 on Z1 (300.00 left)
    Mar 8   P3 400.00: 300.00 to Z1 (paid), 100.00 on account
    Mar 9   credit note 50.00 on Z1, paid: all 50.00 to the credit balance
    Mar 15  Z4 written off (200.00)
    Mar 20  the credit balance (400.00) applied to Z2 (paid)
    Apr 1   P1 reversed: Z1 open again for 600.00"""
    zeta = customer_with_subscription("Zeta")
    z1 = invoice(zeta, "2026-01-01", "2026-01-31", "1000.00")
    z2 = invoice(zeta, "2026-01-10", "2026-02-09", "400.00")
    z3 = invoice(zeta, "2026-02-01", "2026-03-03", "300.00")
    z4 = invoice(zeta, "2026-02-15", "2026-03-17", "200.00")
    invoice(
        zeta,
        "2026-03-01",
        "2026-03-31",
        "150.00",
        status=Invoice.Status.VOID,
        voided_at=dt.datetime(2026, 3, 12, 12, tzinfo=dt.UTC),
    )

    def pay(date, amount, allocations=None):
        with on(date):
            return payment_record(
                customer=zeta,
                amount=D(amount),
                currency="USD",
                received_on=day(date),
                allocations=allocations,
                auto_apply=False,
            )

    p1 = pay("2026-01-20", "600.00", {z1: D("600.00")})
    p2 = pay("2026-02-05", "500.00")
    with on("2026-02-10"):
        payment_apply(payment=p2, invoice=z2, amount=D("400.00"))
    with on("2026-02-20"):
        applied = PaymentAllocation.objects.get(payment=p2, invoice=z2, amount__gt=0)
        allocation_unapply(allocation=applied, reason="Meant for Z3")
    with on("2026-02-25"):
        credit_balance_apply(invoice=z3, amount=D("250.00"))
    with on("2026-03-05"):
        credit_note_issue(invoice=z1, amount=D("100.00"), reason="Discount")
    pay("2026-03-08", "400.00", {z1: D("300.00")})
    with on("2026-03-09"):
        credit_note_issue(invoice=z1, amount=D("50.00"), reason="Late delivery")
    with on("2026-03-15"):
        invoice_write_off(invoice=z4, reason="Customer disputes it")
    with on("2026-03-20"):
        assert credit_balance_apply(invoice=z2) == D("400.00")
    with on("2026-04-01"):
        payment_reverse(payment=p1, reason="Bounced")
    return zeta


def figures(rows):
    return sorted((c, str(cur), b, amount, n) for c, cur, b, amount, n in rows if amount or n)


DATES = [
    "2025-12-31", "2026-01-01", "2026-01-15", "2026-01-20", "2026-01-31", "2026-02-09",
    "2026-02-10", "2026-02-12", "2026-02-20", "2026-02-25", "2026-02-28", "2026-03-05",
    "2026-03-08", "2026-03-09", "2026-03-11", "2026-03-12", "2026-03-15", "2026-03-16",
    "2026-03-20", "2026-03-31", "2026-04-01", "2026-04-30", "2026-11-30",
]  # fmt: skip


@pytest.mark.skipif(connection.vendor != "postgresql", reason="AGING_SQL is PostgreSQL's")
@pytest.mark.parametrize("buckets", [BUCKETS, (30,)])
def test_sql_and_python_paths_agree_on_every_date(zeta, buckets):
    # Given the book above, when both paths age it as of each date, they give the same rows
    for date in DATES:
        as_of = day(date)
        assert figures(_figures_in_sql(as_of, buckets)) == figures(
            _figures_in_python(as_of, buckets)
        ), date


def test_the_figures_on_four_dates_worked_by_hand(zeta):
    # Feb 12: Z1 1,000 − 600 = 400 (12 days past due); Z2 paid from the account; Z3 300 current
    row = row_of(ar_aging(as_of=day("2026-02-12")), zeta)
    assert row.buckets == (D("300.00"), D("400.00"), D(0), D(0), D(0), D(0))
    assert (row.open, row.unapplied_credit) == (D("700.00"), D("100.00"))  # 500 − 400

    # Mar 11: Z1 settled (900 paid, 150 credited, 50 of it to the balance); Z2 400 open again
    # (30 days past due), Z3 300 − 250 = 50 (8 days), Z4 200 and Z5 150 current (Z5 void Mar 12)
    row = row_of(ar_aging(as_of=day("2026-03-11")), zeta)
    assert row.buckets == (D("350.00"), D("450.00"), D(0), D(0), D(0), D(0))
    # credit balance: 500 − 400 + 400 − 250 + 100 + 50
    assert (row.open, row.unapplied_credit, row.balance) == (D("800.00"), D("400.00"), D("400.00"))
    assert row.open_invoices == 4

    # Mar 16: Z5 void, Z4 written off; Z2 400 (35 days), Z3 50 (13 days)
    row = row_of(ar_aging(as_of=day("2026-03-16")), zeta)
    assert row.buckets == (D(0), D("50.00"), D("400.00"), D(0), D(0), D(0))
    assert (row.open, row.unapplied_credit, row.balance) == (D("450.00"), D("400.00"), D("50.00"))

    # Apr 30: P1 reversed, Z1 1,000 − 150 + 50 − 300 = 600 (89 days); Z2 paid from the balance
    row = row_of(ar_aging(as_of=day("2026-04-30")), zeta)
    assert row.buckets == (D(0), D(0), D("50.00"), D("600.00"), D(0), D(0))
    assert (row.open, row.unapplied_credit, row.balance) == (D("650.00"), D(0), D("650.00"))
    assert row.open_invoices == 2
