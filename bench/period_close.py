"""Benchmark the month-end close: N subscriptions with a month of invoices, payments and usage.

    python bench/period_close.py --subscriptions 10000

In a scratch PostgreSQL database on DATABASE_URL's server (default
postgres://root@127.0.0.1:5432/postgres), made and dropped here, it builds N subscriptions that
started on the first day of last month (monthly, 12 months: a platform fee and 5 seats billed in
advance, API calls billed in arrears) as the services leave them once last month is over:

- one subscription is made by the services themselves (subscription_create, usage events,
  subscription_bill on the 1st of last month and of this month, payment_record of the first
  invoice on the 10th of last month); it is the template;
- the N − 1 others are copies of its rows (customer, subscription, items, billing periods,
  invoices and their lines, payment and allocation), bulk-created: what the services would have
  made for each, without running them N times.

Then it runs the close of last month as finance would, timed, with the queries counted:
contracts_sync, recognize(month), journal_sync, the close checklist, the unapplied-cash review
and period_close. It checks over SQL that the period's journal balances (debits = credits),
and measures a baseline in the same run: a raw INSERT … SELECT of as many journal lines as the
close posted (into a copy of the line table, without the ledger's triggers).

Progress goes to stderr; the last line on stdout is the result:
    close <s> s for <N> subscriptions, <E> journal entries, balanced
The scratch database is dropped at the end, also on Ctrl-C or an error.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scratch as scratch  # noqa: E402
from _scratch import log  # noqa: E402

BATCH = 2000


class Counter:
    """connection.execute_wrapper counting the queries (executemany counts once)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def template(month):
    """One subscription made, billed and paid by the services: the rows every copy repeats."""
    import datetime as dt
    from decimal import Decimal

    from catalog.models import BillableMetric, Charge, Plan
    from core.periods import add_months
    from customers.models import Customer
    from invoicing.models import Invoice
    from invoicing.services import subscription_bill
    from metering.models import Event
    from receivables.services import payment_record
    from subscriptions.services import subscription_create

    metric = BillableMetric.objects.create(
        code="api_calls", name="API calls", aggregation=BillableMetric.Aggregation.COUNT
    )
    plan = Plan.objects.create(code="bench_close", name="Benchmark plan", currency="USD")
    Charge.objects.create(
        plan=plan,
        name="Platform fee",
        billing_timing=Charge.Timing.IN_ADVANCE,
        unit_price=Decimal("100.00"),
        default_quantity=Decimal("1"),
    )
    Charge.objects.create(
        plan=plan,
        name="Seats",
        billing_timing=Charge.Timing.IN_ADVANCE,
        unit_price=Decimal("25.00"),
        unit_name="seat",
        default_quantity=Decimal("5"),
        position=1,
    )
    Charge.objects.create(
        plan=plan,
        name="API calls",
        metric=metric,
        billing_timing=Charge.Timing.IN_ARREARS,
        unit_price=Decimal("0.002"),
        unit_name="call",
        default_quantity=Decimal("0"),
        position=2,
    )
    customer = Customer.objects.create(
        external_id="cus_0000000",
        name="Customer 0000000",
        currency="USD",
        billing_email="billing@bench.example",
    )
    subscription = subscription_create(
        customer=customer,
        plan=plan,
        external_id="sub_0000000",
        start_date=month,
        term_months=12,
    )
    Event.objects.bulk_create(
        Event(
            customer=customer,
            subscription=subscription,
            transaction_id=f"evt_{n}",
            code="api_calls",
            timestamp=dt.datetime.combine(month + dt.timedelta(days=n % 28), dt.time(12), dt.UTC),
            received_at=dt.datetime.combine(month + dt.timedelta(days=n % 28), dt.time(12), dt.UTC),
        )
        for n in range(1234)
    )
    subscription_bill(subscription=subscription, today=month)
    subscription_bill(subscription=subscription, today=add_months(month, 1))
    invoices = list(Invoice.objects.filter(subscription=subscription).order_by("billing_date"))
    if [i.billing_date for i in invoices] != [month, add_months(month, 1)]:
        raise SystemExit(f"the template's invoices: {invoices}")
    payment_record(
        customer=customer,
        amount=invoices[0].total,
        currency="USD",
        received_on=month + dt.timedelta(days=9),
        reference="PAY-0000000",
    )
    log(
        f"template: {subscription.external_id}, invoices "
        + ", ".join(f"{i.number} {i.total}" for i in invoices)
    )
    return customer, subscription


def copies(model, rows, n, *, fks=None, tweak=None):
    """Bulk-create n copies of `rows` (model instances); fks maps a field's attname to a dict
    {template pk: [the pk of copy 0, 1, …]}. Returns {template pk: [copy pks]}."""
    made = {}
    fks = fks or {}
    for row in rows:
        made[row.pk] = []
    objects, origin = [], []
    for i in range(n):
        for row in rows:
            obj = model(**{f.attname: getattr(row, f.attname) for f in model._meta.concrete_fields})
            obj.pk = None
            for attname, mapping in fks.items():
                value = getattr(row, attname)
                if value is not None:
                    setattr(obj, attname, mapping[value][i])
            if tweak:
                tweak(obj, i)
            objects.append(obj)
            origin.append(row.pk)
            if len(objects) >= BATCH:
                for pk, created in zip(origin, model.objects.bulk_create(objects), strict=True):
                    made[pk].append(created.pk)
                objects, origin = [], []
    if objects:
        for pk, created in zip(origin, model.objects.bulk_create(objects), strict=True):
            made[pk].append(created.pk)
    return made


def build(n: int, month):
    """The template and its n − 1 copies."""
    from invoicing.models import CreditBalanceEntry, Invoice, InvoiceLine
    from receivables.models import Payment, PaymentAllocation
    from subscriptions.models import BillingPeriod, SubscriptionItem

    customer, subscription = template(month)
    k = n - 1
    started = time.perf_counter()

    def name(obj, i):
        obj.external_id = f"cus_{i + 1:07d}"
        obj.name = f"Customer {i + 1:07d}"

    customers = copies(type(customer), [customer], k, tweak=name)

    def sub(obj, i):
        obj.external_id = f"sub_{i + 1:07d}"

    subs = copies(type(subscription), [subscription], k, fks={"customer_id": customers}, tweak=sub)
    items = list(SubscriptionItem.objects.filter(subscription=subscription).order_by("pk"))
    if any(i.change_id or i.ended_by_id for i in items):
        raise SystemExit("the template's items changed: nothing to copy")
    item_map = copies(SubscriptionItem, items, k, fks={"subscription_id": subs})
    copies(
        BillingPeriod,
        list(BillingPeriod.objects.filter(subscription=subscription)),
        k,
        fks={"subscription_id": subs},
    )
    invoices = list(Invoice.objects.filter(subscription=subscription).order_by("pk"))

    def number(obj, i):
        obj.number = f"{obj.number}-{i + 1:07d}"

    invoice_map = copies(
        Invoice,
        invoices,
        k,
        fks={"customer_id": customers, "subscription_id": subs},
        tweak=number,
    )
    copies(
        InvoiceLine,
        list(InvoiceLine.objects.filter(invoice__in=invoices)),
        k,
        fks={"invoice_id": invoice_map, "item_id": item_map},
    )
    payments = list(Payment.objects.filter(customer=customer))

    def reference(obj, i):
        obj.reference = f"PAY-{i + 1:07d}"
        obj.idempotency_key = None

    payment_map = copies(Payment, payments, k, fks={"customer_id": customers}, tweak=reference)
    allocations = list(PaymentAllocation.objects.filter(payment__in=payments))
    if any(a.credit_entry_id for a in allocations) or CreditBalanceEntry.objects.exists():
        raise SystemExit("the template has credit balance entries: not copied")
    copies(
        PaymentAllocation,
        allocations,
        k,
        fks={"payment_id": payment_map, "invoice_id": invoice_map},
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    log(
        f"{k} copies: {k * len(items)} items, {k * len(invoices)} invoices, "
        f"{k * len(payments)} payments in {time.perf_counter() - started:.1f} s"
    )


def close(month, user):
    """The close of `month`, as finance runs it. Returns (entries posted, the period)."""
    from revrec import close as closing
    from revrec import postings, recognition
    from revrec.ledger import period_for

    steps = []

    def step(what, run):
        started = time.perf_counter()
        result = run()
        steps.append((what, time.perf_counter() - started))
        log(f"  {what}: {result!r:.60} in {steps[-1][1]:.1f} s")
        return result

    step("contracts_sync", recognition.contracts_sync)
    step("recognize", lambda: recognition.recognize(month))
    step("journal_sync", postings.journal_sync)
    period = period_for(month)
    checks = step("checklist", lambda: closing.close_checklist(period))
    failing = [c for c in checks if not c.ok and c.key != "cash"]
    if failing:
        raise SystemExit(
            "checklist fails: " + "; ".join(f"{c.title}: {c.why} {c.items[:3]}" for c in failing)
        )
    step("cash review", lambda: closing.period_cash_review(period=period, by=user))
    period = step("period_close", lambda: closing.period_close(period=period, by=user))
    return steps, period


BALANCE_SQL = """
SELECT count(DISTINCT e.id), COALESCE(SUM(l.debit), 0), COALESCE(SUM(l.credit), 0)
FROM revrec_journalentry e JOIN revrec_journalline l ON l.entry_id = e.id
"""
PERIOD_SQL = BALANCE_SQL + " WHERE e.period_id = %s"


def baseline(lines: int) -> float:
    """A raw INSERT … SELECT of `lines` journal lines into a copy of the table (no triggers)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_lines (LIKE revrec_journalline INCLUDING DEFAULTS) "
            "ON COMMIT DROP"
        )
        started = time.perf_counter()
        cursor.execute(
            "INSERT INTO bench_lines (id, entry_id, account_id, debit, credit, customer_id, memo) "
            "SELECT g, l.entry_id, l.account_id, l.debit, l.credit, l.customer_id, l.memo "
            "FROM generate_series(1, %s) g "
            "JOIN LATERAL (SELECT * FROM revrec_journalline ORDER BY id "
            "OFFSET (g - 1) %% 100 LIMIT 1) l ON true",
            [lines],
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=10_000, help="subscriptions (10,000)")
    parser.add_argument(
        "--db-prefix", default="q2c_bench_close", help="scratch database name prefix"
    )
    args = parser.parse_args()
    scratch.sigterm_as_interrupt()
    log(f"load average before: {scratch.load()}")

    with scratch.scratch_database(prefix=args.db_prefix) as url:
        scratch.migrate(url)
        os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
        scratch.django_setup(url)
        from django.contrib.auth import get_user_model
        from django.db import connection

        from core import clock
        from core.periods import add_months, month_start

        month = add_months(month_start(clock.today()), -1)
        build(args.subscriptions, month)
        user = get_user_model().objects.create(username="finance", is_staff=True)
        counter = Counter()
        log(f"closing {month:%B %Y}")
        started = time.perf_counter()
        with connection.execute_wrapper(counter):
            steps, period = close(month, user)
        seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute(BALANCE_SQL)
            entries, debits, credits = cursor.fetchone()
            cursor.execute(PERIOD_SQL, [period.pk])
            _, period_debits, period_credits = cursor.fetchone()
            cursor.execute("SELECT count(*) FROM revrec_journalline")
            lines = cursor.fetchone()[0]
        if debits != credits or period_debits != period_credits:
            raise SystemExit(
                f"the journal does not balance: debits {debits}, credits {credits}; "
                f"{period}: {period_debits} / {period_credits}"
            )
        if period.status != "closed":
            raise SystemExit(f"{period} is {period.status}")
        raw = baseline(lines)
        log(f"load after: {scratch.load()}")
        print(
            "steps: "
            + ", ".join(f"{what} {s:.1f} s" for what, s in steps)
            + f" (load average after: {scratch.load()})"
        )
        print(
            f"{counter.count} queries for the close; {lines} journal lines, "
            f"{period} debits = credits = {period_debits}"
        )
        print(
            f"baseline: raw INSERT … SELECT of {lines} journal lines {raw:.2f} s; "
            f"close / baseline = {seconds / raw:.0f}"
        )
    print(
        f"close {seconds:.1f} s for {args.subscriptions} subscriptions, {entries} journal "
        "entries, balanced"
    )


if __name__ == "__main__":
    main()
