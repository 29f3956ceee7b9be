"""AR aging over a large book: receivables.aging.ar_aging for all customers, against one raw SQL
aggregate of the same open amounts.

    .venv/bin/python bench/aging.py [--invoices N] [--repeat K]

On DATABASE_URL's server (default postgres://root@127.0.0.1:5432/postgres) it creates a scratch
database and migrates it, then makes N invoices over the two years before today for N ÷ 100
customers (at least one), one subscription each: issued every few days, due 30 days later,
totals from 50.00 to 5,049.99. Of the invoices, 70% are paid in full between 5 and 85 days
after issue (one payment each), 15% paid in part, 15% left open; every 20th has a credit note of
10% issued 10 days after it; every customer has one payment of 25.00 applied to nothing.

It then runs ar_aging as of today K times after one warm-up (and once as of a year ago) and the
raw SQL aggregate once, checks that their open totals agree to the cent, and prints them.

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

RAW_SQL = """
SELECT i.currency, SUM(GREATEST(i.total - COALESCE(cn.s, 0) - COALESCE(pa.s, 0), 0))
FROM invoicing_invoice i
LEFT JOIN (SELECT invoice_id, SUM(total) s FROM invoicing_creditnote
           WHERE issue_date <= %(d)s GROUP BY invoice_id) cn ON cn.invoice_id = i.id
LEFT JOIN (SELECT a.invoice_id, SUM(a.amount) s FROM receivables_paymentallocation a
           JOIN receivables_payment p ON p.id = a.payment_id
           WHERE p.received_on <= %(d)s GROUP BY a.invoice_id) pa ON pa.invoice_id = i.id
WHERE i.issue_date <= %(d)s
  AND (i.status IN ('finalized', 'paid') OR (i.status = 'void' AND i.voided_at::date > %(d)s))
GROUP BY i.currency ORDER BY i.currency
"""


def build(invoices: int) -> None:
    import datetime as dt
    from decimal import Decimal

    from catalog.models import Charge, Plan
    from core import clock
    from customers.models import Customer
    from invoicing.models import CreditNote, Invoice
    from receivables.models import Payment, PaymentAllocation
    from subscriptions.services import subscription_create

    today = clock.today()
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
    rows = []
    for i in range(invoices):
        issued = today - dt.timedelta(days=(i * 7919) % 730)
        total = Decimal(5000 + (i * 104729) % 500000) / 100
        paid_in_full = i % 20 < 14
        rows.append(
            Invoice(
                customer=customers[i % len(customers)],
                subscription=subs[i % len(subs)],
                billing_date=today + dt.timedelta(days=i),  # one per subscription and period
                currency="USD",
                status=Invoice.Status.PAID if paid_in_full else Invoice.Status.FINALIZED,
                number=f"INV-{i:07d}",
                issue_date=issued,
                due_date=issued + dt.timedelta(days=30),
                subtotal=total,
                total=total,
            )
        )
    made = Invoice.objects.bulk_create(rows, batch_size=2000)
    log(f"{len(made)} invoices")
    payments, parts = [], []
    for i, inv in enumerate(made):
        if i % 20 >= 17:
            continue  # open
        received = inv.issue_date + dt.timedelta(days=5 + i % 81)
        amount = inv.total if i % 20 < 14 else (inv.total / 2).quantize(Decimal("0.01"))
        payments.append(
            Payment(customer=inv.customer, amount=amount, currency="USD", received_on=received)
        )
        parts.append((inv, amount))
    payments += [
        Payment(customer=c, amount=Decimal("25.00"), currency="USD", received_on=today)
        for c in customers
    ]
    payments = Payment.objects.bulk_create(payments, batch_size=2000)
    PaymentAllocation.objects.bulk_create(
        [
            PaymentAllocation(payment=p, invoice=inv, amount=amount)
            for p, (inv, amount) in zip(payments, parts, strict=False)
        ],
        batch_size=2000,
    )
    notes = []
    for i, inv in enumerate(made):
        if i % 20 == 19:
            credit = (inv.total / 10).quantize(Decimal("0.01"))
            notes.append(
                CreditNote(
                    invoice=inv,
                    customer=inv.customer,
                    number=f"CN-{i:07d}",
                    kind=CreditNote.Kind.AMOUNT,
                    currency="USD",
                    issue_date=inv.issue_date + dt.timedelta(days=10),
                    subtotal=credit,
                    tax_amount=Decimal(0),
                    total=credit,
                )
            )
            inv.credited_amount = credit
    CreditNote.objects.bulk_create(notes, batch_size=2000)
    Invoice.objects.bulk_update([n.invoice for n in notes], ["credited_amount"], batch_size=2000)
    log(f"{len(payments)} payments, {len(parts)} allocations, {len(notes)} credit notes")


def measure(repeat: int) -> tuple[float, float, object]:
    from core import clock
    from receivables.aging import ar_aging

    today = clock.today()
    ar_aging(as_of=today)  # warm-up
    times, report = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        report = ar_aging(as_of=today)
        times.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(times, n=20, method="inclusive")[18] if repeat > 1 else times[0]
    return statistics.median(times), p95, report


def raw(as_of) -> tuple[dict, float]:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(RAW_SQL, {"d": as_of})
        figures = dict(cursor.fetchall())
    return figures, (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10_000, help="invoices (10,000)")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs (9)")
    args = parser.parse_args()
    scratch.sigterm_as_interrupt()
    log(f"load average before: {scratch.load()}")

    with scratch.scratch_database(prefix="q2c_bench_aging") as url:
        scratch.migrate(url)
        scratch.django_setup(url)
        import datetime as dt

        from core import clock
        from receivables.aging import ar_aging

        build(args.invoices)
        median, p95, report = measure(args.repeat)
        today = clock.today()
        started = time.perf_counter()
        year_ago = ar_aging(as_of=today - dt.timedelta(days=365))
        log(f"as of a year ago: {(time.perf_counter() - started) * 1000:.0f} ms")
        figures, raw_ms = raw(today)
        ours = {t.currency: t.open for t in report.totals}
        log(f"ar_aging open: {ours}, {len(report.rows)} customer rows")
        log(f"raw SQL open:  {figures} in {raw_ms:.0f} ms")
        log(f"a year ago: {[(t.currency, t.open) for t in year_ago.totals]}")
        if {c: v.quantize(ours[c]) for c, v in figures.items()} != ours:
            raise SystemExit(f"ar_aging {ours} differs from the raw SQL {figures}")
        print(f"raw SQL aggregate of the open amounts: {figures} in {raw_ms:.0f} ms")
        log(f"load after: {scratch.load()}")
    print(f"aging {median:.0f} ms median, {p95:.0f} ms p95 at {args.invoices} invoices")


if __name__ == "__main__":
    main()
