"""AR aging over a large book: receivables.aging.ar_aging for all customers, against one raw SQL
aggregate of the same open amounts.

    .venv/bin/python bench/aging.py [--invoices N] [--repeat K] [--db-prefix NAME]

On DATABASE_URL's server (default postgres://root@127.0.0.1:5432/postgres) it creates a scratch
database and migrates it, then makes N invoices over the two years before today for N ÷ 100
customers (at least one), one subscription each: issued every few days, due 30 days later,
totals from 50.00 to 5,049.99, with the rows and stored sums (paid_amount, written_off_amount,
credit_to_balance, credited_amount) and statuses the services would leave:

- 70% paid in full 5–85 days after issue (one payment each; none later than today, so the
  recent ones are still open); of them every 40th un-applied a week later (the money on
  account) and applied again from the account 13 days after that, every 20th credited 10%
  3 days after payment (all of it to the credit balance);
- 15% paid half; 15% left open, every 20th invoice credited 10% 10 days after issue;
- 10.00 of the credit balance applied to a fifth of the invoices issued in the last year;
- two in twenty (a half-paid one and an open one) written off 150 days after issue;
- every 100th voided 3 days after issue; every 1,000th below zero (−50.00, to the balance);
- every customer: 1,000.00 on account a year ago and 25.00 on account today.

It then runs ar_aging as of today K times after one warm-up, and 3 times as of a year ago, and
the raw SQL aggregate (from the dated rows alone, not the stored sums) 3 times for each date;
checks that the open totals agree to the cent on both dates, and prints them.

Progress goes to stderr; the last line on stdout is the result:
    aging <ms> ms median, <ms> ms p95 at <N> invoices
The scratch database is dropped at the end, also on Ctrl-C or an error.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scratch as scratch  # noqa: E402
from _scratch import log  # noqa: E402

# The open amounts from the dated rows alone (not the invoices' stored sums): total − credit notes
# + credit notes' parts sent to the credit balance − payments applied (net of un-applies) + credit
# applied (negative rows) − write-offs, all dated by the day, never below zero.
RAW_SQL = """
SELECT i.currency, SUM(GREATEST(
           i.total - COALESCE(cn.s, 0) + COALESCE(cb.s, 0) - COALESCE(pa.s, 0) - COALESCE(wo.s, 0),
           0))
FROM invoicing_invoice i
LEFT JOIN (SELECT invoice_id, SUM(total) s FROM invoicing_creditnote
           WHERE issue_date <= %(d)s GROUP BY invoice_id) cn ON cn.invoice_id = i.id
LEFT JOIN (SELECT invoice_id, SUM(amount) s FROM receivables_paymentallocation
           WHERE applied_on <= %(d)s AND invoice_id IS NOT NULL GROUP BY invoice_id) pa
       ON pa.invoice_id = i.id
LEFT JOIN (SELECT invoice_id, SUM(amount) s FROM invoicing_creditbalanceentry
           WHERE effective_on <= %(d)s AND kind IN ('applied', 'credit_note')
           GROUP BY invoice_id) cb ON cb.invoice_id = i.id
LEFT JOIN (SELECT invoice_id, SUM(amount) s FROM receivables_writeoff
           WHERE written_off_on <= %(d)s GROUP BY invoice_id) wo ON wo.invoice_id = i.id
WHERE i.issue_date <= %(d)s
  AND (i.status IN ('finalized', 'paid') OR (i.status = 'void' AND i.voided_at::date > %(d)s))
GROUP BY i.currency ORDER BY i.currency
"""


class Book:
    """What build() makes, as rows to bulk-create, with each invoice's stored sums kept as the
    services keep them."""

    def __init__(self):
        self.payments = []  # Payment
        self.allocations = []  # (payment index, invoice index | None, amount, on, entry index)
        self.entries = []  # dict(customer, amount, kind, effective_on, invoice index, note index)
        self.notes = []  # (invoice index, total, issue_date)
        self.write_offs = []  # (invoice index, amount, on)

    def entry(self, customer, amount, kind, on, invoice=None, note=None) -> int:
        self.entries.append(
            {"customer": customer, "amount": amount, "kind": kind, "on": on, "invoice": invoice,
             "note": note}
        )  # fmt: skip
        return len(self.entries) - 1

    def payment(self, customer, amount, on) -> int:
        from receivables.models import Payment

        self.payments.append(
            Payment(customer=customer, amount=amount, currency="USD", received_on=on)
        )
        return len(self.payments) - 1

    def apply(self, payment, inv, k, amount, on) -> None:
        """Apply (or, negative, un-apply) a payment's money to invoice k."""
        self.allocations.append((payment, k, amount, on, None))
        inv.paid_amount += amount

    def on_account(self, payment, customer, amount, on) -> None:
        entry = self.entry(customer, amount, "payment", on)
        self.allocations.append((payment, None, amount, on, entry))


def build(invoices: int) -> None:
    """N invoices over the two years before today for N ÷ 100 customers, their stored sums and
    statuses as the services leave them (see main's docstring for the mix)."""
    import datetime as dt
    from decimal import Decimal

    from catalog.models import Charge, Plan
    from core import clock
    from customers.models import Customer
    from invoicing.models import CreditBalanceEntry, CreditNote, Invoice
    from receivables.models import Payment, PaymentAllocation, WriteOff
    from subscriptions.services import subscription_create

    cent = Decimal("0.01")
    today = clock.today()
    year_ago = today - dt.timedelta(days=365)
    days = dt.timedelta
    plan = Plan.objects.create(code="bench_aging", name="Benchmark plan", currency="USD")
    Charge.objects.create(plan=plan, name="Platform fee", unit_price=Decimal("100.00"))
    customers, subs = [], []
    for n in range(max(1, invoices // 100)):
        customer = Customer.objects.create(
            external_id=f"cus_{n:06d}", name=f"Customer {n:06d}", currency="USD"
        )
        customers.append(customer)
        subs.append(
            subscription_create(
                customer=customer,
                plan=plan,
                external_id=f"sub_{n:06d}",
                start_date=today - dt.timedelta(days=730),
                term_months=24,
            )
        )
    log(f"{len(customers)} customers and subscriptions")
    book = Book()
    # Every customer: 1,000.00 on account a year ago (some of it applied to later invoices) and
    # 25.00 on account today.
    for customer in customers:
        book.on_account(book.payment(customer, Decimal("1000.00"), year_ago), customer,
                        Decimal("1000.00"), year_ago)  # fmt: skip
        book.on_account(book.payment(customer, Decimal("25.00"), today), customer,
                        Decimal("25.00"), today)  # fmt: skip
    rows = []
    for i in range(invoices):
        customer = customers[i % len(customers)]
        issued = today - days((i * 7919) % 730)
        total = Decimal(5000 + (i * 104729) % 500000) / 100
        inv = Invoice(
            customer=customer,
            subscription=subs[i % len(subs)],
            billing_date=today + dt.timedelta(days=i),  # one per subscription and period
            currency="USD",
            status=Invoice.Status.FINALIZED,
            number=f"INV-{i:07d}",
            issue_date=issued,
            due_date=issued + days(30),
            subtotal=total,
            total=total,
        )
        rows.append(inv)
        g, paid_on = i % 20, issued + days(5 + i % 81)
        if i % 100 == 98 and issued + days(3) <= today:  # void 3 days after issue
            inv.status = Invoice.Status.VOID
            inv.voided_at = dt.datetime.combine(issued + days(3), dt.time(12), tzinfo=dt.UTC)
            continue
        if i % 1000 == 500:  # below zero: to the credit balance whole
            inv.total = inv.subtotal = Decimal("-50.00")
            inv.status = Invoice.Status.PAID
            book.entry(customer, Decimal("50.00"), "negative_invoice", issued, invoice=i)
            continue
        if g < 17 and paid_on <= today:  # paid (g < 14) or half paid
            amount = total if g < 14 else (total / 2).quantize(cent)
            if g in (0, 1, 2, 16) and issued >= year_ago:  # 10.00 of it from the credit balance
                book.entry(customer, Decimal("-10.00"), "applied", paid_on, invoice=i)
                inv.paid_amount += Decimal("10.00")
                amount -= Decimal("10.00")
            payment = book.payment(customer, amount, paid_on)
            book.apply(payment, inv, i, amount, paid_on)
            if i % 40 == 5 and paid_on + days(7) <= today:  # un-applied a week later
                book.apply(payment, inv, i, -amount, paid_on + days(7))
                book.on_account(payment, customer, amount, paid_on + days(7))
                if paid_on + days(20) <= today:  # and applied again from the account
                    book.on_account(payment, customer, -amount, paid_on + days(20))
                    book.apply(payment, inv, i, amount, paid_on + days(20))
            if g == 13 and paid_on + days(3) <= today:  # credited 10% after it was paid
                credit, on = (total / 10).quantize(cent), paid_on + days(3)
                book.notes.append((i, credit, on))
                inv.credited_amount += credit
                inv.credit_to_balance += credit  # all of it beyond what was left to pay
                book.entry(customer, credit, "credit_note", on, invoice=i,
                           note=len(book.notes) - 1)  # fmt: skip
        if g == 19 and issued + days(10) <= today:  # credited 10% while open
            credit = (total / 10).quantize(cent)
            book.notes.append((i, credit, issued + days(10)))
            inv.credited_amount += credit
        if g in (16, 17) and issued + days(150) <= today:  # the rest written off
            left = inv.total - inv.credited_amount + inv.credit_to_balance - inv.paid_amount
            book.write_offs.append((i, left, issued + days(150)))
            inv.written_off_amount += left
        left = (inv.total - inv.credited_amount + inv.credit_to_balance - inv.paid_amount
                - inv.written_off_amount)  # fmt: skip
        assert left >= 0, (i, left)
        inv.status = Invoice.Status.PAID if left == 0 else Invoice.Status.FINALIZED
    made = Invoice.objects.bulk_create(rows, batch_size=2000)
    log(f"{len(made)} invoices")
    notes = CreditNote.objects.bulk_create(
        [
            CreditNote(
                invoice=made[k],
                customer=made[k].customer,
                number=f"CN-{n:07d}",
                kind=CreditNote.Kind.AMOUNT,
                currency="USD",
                issue_date=on,
                subtotal=credit,
                tax_amount=Decimal(0),
                total=credit,
            )
            for n, (k, credit, on) in enumerate(book.notes)
        ],
        batch_size=2000,
    )
    entries = CreditBalanceEntry.objects.bulk_create(
        [
            CreditBalanceEntry(
                customer=e["customer"],
                currency="USD",
                amount=e["amount"],
                kind=e["kind"],
                effective_on=e["on"],
                invoice=None if e["invoice"] is None else made[e["invoice"]],
                credit_note=None if e["note"] is None else notes[e["note"]],
            )
            for e in book.entries
        ],
        batch_size=2000,
    )
    payments = Payment.objects.bulk_create(book.payments, batch_size=2000)
    allocations = PaymentAllocation.objects.bulk_create(
        [
            PaymentAllocation(
                payment=payments[p],
                invoice=None if k is None else made[k],
                credit_entry=None if e is None else entries[e],
                amount=amount,
                applied_on=on,
            )
            for p, k, amount, on, e in book.allocations
        ],
        batch_size=2000,
    )
    write_offs = WriteOff.objects.bulk_create(
        [
            WriteOff(invoice=made[k], amount=amount, written_off_on=on, reason="Uncollectible")
            for k, amount, on in book.write_offs
        ],
        batch_size=2000,
    )
    log(
        f"{len(payments)} payments, {len(allocations)} allocations, {len(entries)} credit "
        f"balance entries, {len(notes)} credit notes, {len(write_offs)} write-offs"
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def timed(run, repeat: int) -> tuple[float, float, object]:
    """run() once to warm up, then `repeat` times: median and p95 in ms, and the last result."""
    run()
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(times, n=20, method="inclusive")[18] if repeat > 1 else times[0]
    return statistics.median(times), p95, result


def raw(as_of) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(RAW_SQL, {"d": as_of})
        return dict(cursor.fetchall())


def check(as_of, report, figures) -> dict:
    """ar_aging's open totals, which must be the raw SQL's to the cent."""
    ours = {t.currency: t.open for t in report.totals}
    if {c: v.quantize(ours.get(c, v)) for c, v in figures.items() if v} != ours:
        raise SystemExit(f"as of {as_of}: ar_aging {ours} differs from the raw SQL {figures}")
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10_000, help="invoices (10,000)")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs (9)")
    parser.add_argument(
        "--db-prefix", default="q2c_bench_aging", help="scratch database name prefix"
    )
    args = parser.parse_args()
    scratch.sigterm_as_interrupt()
    log(f"load average before: {scratch.load()}")

    with scratch.scratch_database(prefix=args.db_prefix) as url:
        scratch.migrate(url)
        scratch.django_setup(url)
        import datetime as dt

        from core import clock
        from receivables.aging import ar_aging

        build(args.invoices)
        today = clock.today()
        median, p95, report = timed(lambda: ar_aging(as_of=today), args.repeat)
        raw_ms, _, figures = timed(lambda: raw(today), 3)
        ours = check(today, report, figures)
        log(f"ar_aging open: {ours}, {len(report.rows)} customer rows")
        log(f"raw SQL open:  {figures} in {raw_ms:.0f} ms (median of 3)")
        year_ago = today - dt.timedelta(days=365)
        old_ms, _, old = timed(lambda: ar_aging(as_of=year_ago), 3)
        old_raw_ms, _, old_figures = timed(lambda: raw(year_ago), 3)
        check(year_ago, old, old_figures)
        print(
            f"as of a year ago: aging {old_ms:.0f} ms median, raw SQL {old_raw_ms:.0f} ms, "
            f"open {old_figures}"
        )
        print(
            f"raw SQL aggregate of the open amounts: {figures} in {raw_ms:.0f} ms; "
            f"aging / raw SQL = {median / raw_ms:.2f}"
        )
        log(f"load after: {scratch.load()}")
    print(f"aging {median:.0f} ms median, {p95:.0f} ms p95 at {args.invoices} invoices")


if __name__ == "__main__":
    main()
