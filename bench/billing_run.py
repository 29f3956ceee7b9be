"""Benchmark the month's billing run: N hybrid subscriptions and M usage events, against the floor.

    DATABASE_URL=postgres://root@127.0.0.1:5432/postgres python bench/billing_run.py \
        --subscriptions N --events M [--workers K] [--growth] [--profile [FILE]]

In scratch PostgreSQL databases on DATABASE_URL's server (default
postgres://root@127.0.0.1:5432/postgres), made and dropped here, it builds N subscriptions that
started on the first day of last month (monthly, 12 months) on one hybrid plan: a platform fee
(flat, 500.00) and 5 seats at 25.00, both in advance; API calls (a count metric) and tokens (a
sum of the events' `tokens` property), both graduated, in arrears. As the services leave them on
the 1st of this month, before the run:

- one subscription is made by the services (subscription_create, then subscription_bill on its
  start: its first invoice, the fees in advance); it is the template;
- the N − 1 others are copies of its rows (customer, subscription, items, billing periods, first
  invoice and its lines), bulk-created, with their own external ids;
- M events in last month, spread over the subscriptions and the two metrics (about half each;
  tokens 1–50 an event), loaded with one INSERT … SELECT generate_series (the table's indexes
  and constraints made again after it, as pg_restore does), with the daily rollups ingestion
  would have kept beside them; then ANALYZE.

That database is the template of one copy per measured run (CREATE DATABASE … TEMPLATE), so every
run starts from the same state. On a copy it runs the billing for the 1st of this month as the
beat task would, in process, on one worker: `invoicing.services.billing_run(today)`, timed, its
queries counted (connection.execute_wrapper). With `--workers K` it bills a second copy with K
processes (forked, each its own connection), each billing a share of the chunks of
`invoicing.run.billing_plan` (chunk i to process i mod K) with `invoicing.run.bill_chunk`, as K
Celery workers would; timed from the plan to the last process done, and the speed-up over one
worker printed. Celery is pointed at an in-memory broker: what billing queues on commit (PDFs,
emails) is queued, never run.

After each run it checks over SQL: every usage line's quantity equals the count or the sum of its
subscription's events of the metric in last month; exactly one new invoice per subscription, all
finalized; their numbers one gapless block following the series. Anything else: an error, exit 1.

The floor, measured in the same run on the same data (one connection, psycopg, parallel workers
off): one aggregate query per subscription and metric over the same events (count, or sum of the
property), plus one INSERT … SELECT of as many rows as invoice lines were written (the lines
themselves) into a plain copy of the line table (CREATE TABLE … (LIKE … INCLUDING DEFAULTS)):
what the database has to do whatever the code around it. floor = the two summed.

`--growth` also builds and bills N/10 subscriptions with M/10 events first and prints the time per
subscription at both sizes and the ratio of the times (linear: about 10). `--profile [FILE]`
runs the one-worker billing under cProfile (its time is then about doubled) and prints to stderr
the project's 15 functions of most cumulative time and the 15 of most own time, and writes the
stats to FILE for pstats.

Progress goes to stderr; the last line on stdout is the result (for N):
    billing_run <N> subscriptions, <M> events: <s> s, floor <s> s, ratio <r>, <q> queries per
    subscription
The scratch databases are dropped at the end, also on Ctrl-C or an error.
"""

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scratch as scratch  # noqa: E402
from _scratch import log  # noqa: E402

BATCH = 2000
PREFIX = "q2c_bench_h"


class Counter:
    """connection.execute_wrapper counting the queries (executemany counts once)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


class Failed(Exception):
    """A check failed: printed as an error, exit code 1."""


# --- the databases -----------------------------------------------------------------------------


@contextlib.contextmanager
def database_copy(name: str, template: str):
    """CREATE DATABASE name TEMPLATE template (nobody may be connected to it); drop it at the
    end. Yields its URL."""
    from django.db import connections

    server = os.environ.get("SERVER_URL") or scratch.DEFAULT_SERVER
    connections.close_all()
    started = time.perf_counter()
    with scratch.pg_connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    log(f"copied {template} to {name} in {time.perf_counter() - started:.1f} s")
    try:
        yield scratch._with_database(server, name)
    finally:
        with scratch.uninterrupted():
            with contextlib.suppress(Exception):
                connections.close_all()
            with scratch.pg_connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log(f"dropped database {name}")


def use_database(name: str) -> None:
    """Point Django's connection at another database of the same server (as the test runner
    does for its test database)."""
    from django.db import connections

    connections.close_all()
    connections["default"].settings_dict["NAME"] = name


# --- the build ---------------------------------------------------------------------------------


def template(month):
    """One subscription made and billed on its start by the services: the rows every copy
    repeats."""
    from decimal import Decimal

    from catalog.models import BillableMetric, Charge, ChargeTier, Plan
    from customers.models import Customer
    from invoicing.models import Invoice
    from invoicing.services import subscription_bill
    from subscriptions.services import subscription_create

    calls = BillableMetric.objects.create(
        code="api_calls", name="API calls", aggregation=BillableMetric.Aggregation.COUNT
    )
    tokens = BillableMetric.objects.create(
        code="tokens",
        name="Tokens",
        aggregation=BillableMetric.Aggregation.SUM,
        field_name="tokens",
    )
    plan = Plan.objects.create(code="bench_billing", name="Benchmark plan", currency="USD")
    advance, arrears = Charge.Timing.IN_ADVANCE, Charge.Timing.IN_ARREARS
    Charge.objects.create(
        plan=plan, name="Platform fee", charge_model=Charge.Model.FLAT, billing_timing=advance,
        unit_price=Decimal("500.00"), default_quantity=Decimal("1"), position=0,
    )  # fmt: skip
    Charge.objects.create(
        plan=plan, name="Seats", charge_model=Charge.Model.STANDARD, billing_timing=advance,
        unit_price=Decimal("25.00"), unit_name="seat", default_quantity=Decimal("5"), position=1,
    )  # fmt: skip
    tiers = {
        calls: [(0, 100, "0"), (100, 1_000, "0.01"), (1_000, None, "0.005")],
        tokens: [(0, 10_000, "0.0001"), (10_000, None, "0.00005")],
    }
    for position, (metric, steps) in enumerate(tiers.items(), start=2):
        charge = Charge.objects.create(
            plan=plan, name=metric.name, metric=metric, charge_model=Charge.Model.GRADUATED,
            billing_timing=arrears, unit_name=metric.code, default_quantity=Decimal("0"),
            position=position,
        )  # fmt: skip
        for lower, up_to, price in steps:
            ChargeTier.objects.create(
                charge=charge, from_units=lower, up_to=up_to, unit_price=Decimal(price)
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
        billing_interval_months=1,
    )
    subscription_bill(subscription=subscription, today=month)
    invoices = list(Invoice.objects.filter(subscription=subscription))
    if [i.billing_date for i in invoices] != [month]:
        raise Failed(f"the template's invoices: {invoices}")
    log(f"template: {subscription.external_id}, invoice {invoices[0].number} {invoices[0].total}")
    return customer, subscription


def copies(model, rows, n, *, fks=None, tweak=None):
    """Bulk-create n copies of `rows` (model instances); fks maps a field's attname to a dict
    {template pk: [the pk of copy 0, 1, …]}. Returns {template pk: [copy pks]}."""
    made = {row.pk: [] for row in rows}
    fks = fks or {}
    objects, origin = [], []

    def flush():
        for pk, created in zip(origin, model.objects.bulk_create(objects), strict=True):
            made[pk].append(created.pk)
        objects.clear()
        origin.clear()

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
                flush()
    if objects:
        flush()
    return made


def build(n: int, month) -> None:
    """The template and its n − 1 copies."""
    from invoicing.models import CreditBalanceEntry, CreditUse, Invoice, InvoiceLine
    from subscriptions.models import (
        BillingPeriod,
        PrepaidCredit,
        SubscriptionChange,
        SubscriptionItem,
    )

    customer, subscription = template(month)
    if (
        CreditBalanceEntry.objects.exists()
        or CreditUse.objects.exists()
        or PrepaidCredit.objects.exists()
        or SubscriptionChange.objects.exists()
    ):
        raise Failed("the template has credits or changes: not copied")
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
        Invoice, invoices, k, fks={"customer_id": customers, "subscription_id": subs}, tweak=number
    )
    lines = list(InvoiceLine.objects.filter(invoice__in=invoices))
    copies(InvoiceLine, lines, k, fks={"invoice_id": invoice_map, "item_id": item_map})
    log(
        f"{k} copies: {k * len(items)} items, {k * len(invoices)} invoices, "
        f"{k * len(lines)} lines in {time.perf_counter() - started:.1f} s"
    )


EVENTS_SQL = """
INSERT INTO metering_event
    (customer_id, subscription_id, transaction_id, code, timestamp, properties, received_at)
SELECT s.customer_id, s.id, 'evt_' || x.g,
       CASE WHEN x.h %% 2 = 0 THEN 'api_calls' ELSE 'tokens' END,
       x.ts,
       CASE WHEN x.h %% 2 = 0 THEN '{}'::jsonb
            ELSE jsonb_build_object('tokens', 1 + (x.h / 2) %% 50) END,
       x.ts + interval '1 minute'
FROM (
    SELECT g,
           (g::bigint * 2654435761) %% 4294967291 AS h,  -- the metric and tokens, scrambled
           %(start)s::timestamptz + ((g::bigint * 104729) %% %(seconds)s) * interval '1 second'
               AS ts
    FROM generate_series(0, %(events)s - 1) g
) x
JOIN (
    SELECT id, customer_id, row_number() OVER (ORDER BY id) - 1 AS n
    FROM subscriptions_subscription
) s ON s.n = x.g %% %(subscriptions)s
"""

ROLLUPS_SQL = """
INSERT INTO metering_usagerollup
    (subscription_id, metric_id, day, group_value, events, total, maximum)
SELECT e.subscription_id, m.id, (e.timestamp AT TIME ZONE 'UTC')::date, '', count(*),
       coalesce(sum((e.properties ->> m.field_name)::numeric), 0),
       max((e.properties ->> m.field_name)::numeric)
FROM metering_event e JOIN catalog_billablemetric m ON m.code = e.code
GROUP BY 1, 2, 3
"""


def load_events(url: str, events: int, subscriptions: int, month, end) -> None:
    """M events in [month, end), spread over the subscriptions (event g goes to the g % N-th)
    and the two metrics; the daily rollups ingestion keeps beside them (count, sum and max per
    subscription, metric and UTC day: the metrics have no filters and no group-by); ANALYZE."""
    from core.periods import day_start

    started = time.perf_counter()
    start = day_start(month)
    seconds = int((day_start(end) - start).total_seconds())
    with scratch.pg_connect(url) as conn:
        # As pg_restore does: the event table's indexes and constraints (but its primary key)
        # made again after the load, in one pass each, instead of 1,000,000 inserts into each.
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'metering_event'::regclass AND contype IN ('u', 'f')"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'metering_event' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'metering_event'::regclass)"
        ).fetchall()
        for name, _ in constraints:
            conn.execute(f'ALTER TABLE metering_event DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute(
            EVENTS_SQL,
            {"start": start, "seconds": seconds, "events": events, "subscriptions": subscriptions},
        )
        for name, definition in constraints:
            conn.execute(f'ALTER TABLE metering_event ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            conn.execute(definition)
        loaded = time.perf_counter() - started
        conn.execute(ROLLUPS_SQL)
        conn.commit()
    with scratch.pg_connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        stored = conn.execute("SELECT count(*) FROM metering_event").fetchone()[0]
    if stored != events:
        raise Failed(f"{stored:,} events stored, expected {events:,}")
    log(
        f"{events:,} events loaded in {loaded:.1f} s; rollups and ANALYZE: "
        f"{time.perf_counter() - started:.1f} s in all"
    )


# --- the runs ----------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    queries: int
    invoices: int
    lines: int = 0


def bill_in_process(today, *, profile: str | None = None) -> Run:
    """invoicing.services.billing_run(today): one worker, in this process, timed and counted."""
    from django.db import connection

    from invoicing.services import billing_run

    counter = Counter()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        if profiler:
            profiler.enable()
        result = billing_run(today=today)
        if profiler:
            profiler.disable()
    seconds = time.perf_counter() - started
    if result.failed:
        raise Failed(
            f"{len(result.failed)} subscriptions failed: {list(result.failed.items())[:3]}"
        )
    if profiler:
        report_profile(profiler, profile)
    return Run(seconds, counter.count, len(result.invoices))


def report_profile(profiler, path: str) -> None:
    """Top 15 by cumulative time of the project's own functions, top 15 by own time of all, on
    stderr; the whole profile dumped to `path` (pstats) unless it is "-"."""
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    apps = r"/(invoicing|metering|subscriptions|catalog|customers|core|receivables)/.*\.py"
    stats.sort_stats("cumulative").print_stats(apps, 15)
    stats.sort_stats("tottime").print_stats(15)
    print(out.getvalue(), file=sys.stderr)
    if path != "-":
        profiler.dump_stats(path)
        log(f"profile written to {path}")


def _bill_share(chunks, today, sender) -> None:
    """In a worker process: its share of the plan, chunk after chunk, as the Celery task bills
    each. Sends (invoices, queries, failed) or ("error", the traceback) back."""
    import traceback

    from django.db import connection, connections

    from invoicing.run import bill_chunk

    try:
        counter, invoices, failed = Counter(), 0, {}
        with connection.execute_wrapper(counter):
            for ids in chunks:
                result = bill_chunk(ids, today)
                invoices += len(result.invoices)
                failed.update(result.failed)
        sender.send((invoices, counter.count, failed))
    except BaseException:
        sender.send(("error", traceback.format_exc(), None))
    finally:
        connections.close_all()
        sender.close()


def bill_with_workers(today, workers: int) -> Run:
    """The plan's chunks shared out over `workers` forked processes (chunk i to process i mod
    K), each its own connection, as K Celery workers would take them. Timed from the plan to
    the last process done."""
    import multiprocessing

    from django.db import connection, connections

    from invoicing.run import billing_plan

    context = multiprocessing.get_context("fork")
    counter = Counter()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        chunks = billing_plan(today)
    connections.close_all()  # before forking: each child opens its own
    processes, pipes = [], []
    for k in range(workers):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_bill_share, args=(chunks[k::workers], today, sender), name=f"biller-{k}"
        )
        process.start()
        sender.close()
        processes.append(process)
        pipes.append(receiver)
    invoices, queries, failed, errors = 0, counter.count, {}, []
    for k, (process, receiver) in enumerate(zip(processes, pipes, strict=True)):
        try:
            made, counted, broken = receiver.recv()
        except EOFError:
            made, counted, broken = "error", "exited without an answer", None
        process.join()
        if made == "error" or process.exitcode:
            errors.append(f"worker {k} (exit code {process.exitcode}): {counted}")
            continue
        invoices, queries = invoices + made, queries + counted
        failed.update(broken)
    seconds = time.perf_counter() - started
    if errors:
        raise Failed("; ".join(errors))
    if failed:
        raise Failed(f"{len(failed)} subscriptions failed: {list(failed.items())[:3]}")
    log(f"{len(chunks)} chunks of up to {len(chunks[0]) if chunks else 0} over {workers} processes")
    return Run(seconds, queries, invoices)


# --- the checks and the floor ------------------------------------------------------------------

QUANTITIES_SQL = """
WITH ev AS (
    SELECT subscription_id, code, count(*) AS n,
           coalesce(sum((properties ->> 'tokens')::numeric), 0) AS total
    FROM metering_event WHERE timestamp >= %(start)s AND timestamp < %(end)s
    GROUP BY 1, 2
), expected AS (
    SELECT s.id AS subscription_id, m.code,
           CASE m.aggregation WHEN 'count' THEN coalesce(ev.n, 0) ELSE coalesce(ev.total, 0) END
               AS quantity
    FROM subscriptions_subscription s CROSS JOIN catalog_billablemetric m
    LEFT JOIN ev ON ev.subscription_id = s.id AND ev.code = m.code
), billed AS (
    SELECT i.subscription_id, m.code, l.quantity
    FROM invoicing_invoiceline l
    JOIN invoicing_invoice i ON i.id = l.invoice_id
    JOIN subscriptions_subscriptionitem it ON it.id = l.item_id
    JOIN catalog_billablemetric m ON m.id = it.metric_id
    WHERE i.billing_date = %(today)s AND l.kind = 'usage'
)
SELECT count(*),
       count(*) FILTER (WHERE b.quantity IS DISTINCT FROM e.quantity),
       (array_agg(ARRAY[coalesce(e.subscription_id, b.subscription_id)::text,
                        coalesce(e.code, b.code), e.quantity::text, b.quantity::text])
            FILTER (WHERE b.quantity IS DISTINCT FROM e.quantity))[1:3],
       sum(e.quantity) FILTER (WHERE e.code = 'api_calls'),
       sum(e.quantity) FILTER (WHERE e.code = 'tokens')
FROM expected e FULL JOIN billed b USING (subscription_id, code)
"""

INVOICES_SQL = """
SELECT count(*), count(DISTINCT subscription_id),
       count(*) FILTER (WHERE status <> 'finalized'),
       min(substring(number FROM '^INV-(\\d+)$')::bigint),
       max(substring(number FROM '^INV-(\\d+)$')::bigint),
       count(substring(number FROM '^INV-(\\d+)$')),
       coalesce(sum(total), 0)
FROM invoicing_invoice WHERE billing_date = %(today)s
"""


def check(url: str, *, subscriptions: int, month, end, today, first_number: int) -> int:
    """Raise Failed unless the run billed what the events say, once, with gapless numbers.
    Returns the number of lines written."""
    from core.periods import day_start

    params = {"start": day_start(month), "end": day_start(end), "today": today}
    with scratch.pg_connect(url) as conn:
        pairs, wrong, sample, calls, tokens = conn.execute(QUANTITIES_SQL, params).fetchone()
        invoices, billed_subs, not_final, low, high, numbered, total = conn.execute(
            INVOICES_SQL, params
        ).fetchone()
        next_value = conn.execute(
            "SELECT next_value FROM invoicing_numberseries WHERE name = 'INV'"
        ).fetchone()[0]
        lines = conn.execute(
            "SELECT count(*) FROM invoicing_invoiceline l JOIN invoicing_invoice i "
            "ON i.id = l.invoice_id WHERE i.billing_date = %(today)s",
            params,
        ).fetchone()[0]
    problems = []
    if wrong or pairs != 2 * subscriptions:
        problems.append(
            f"usage quantities: {wrong} of {pairs} (subscription, metric) pairs differ from the "
            f"events (expected {2 * subscriptions} pairs); e.g. [id, metric, events, billed]: "
            f"{sample}"
        )
    if invoices != subscriptions or billed_subs != subscriptions:
        problems.append(
            f"{invoices} invoices dated {today} for {billed_subs} subscriptions, expected one "
            f"for each of {subscriptions}"
        )
    if not_final:
        problems.append(f"{not_final} invoices dated {today} are not finalized")
    if (
        numbered != invoices
        or low != first_number
        or high != first_number + invoices - 1
        or next_value != high + 1
    ):
        problems.append(
            f"numbers not gapless: {numbered} of {invoices} numbered INV-{low}…INV-{high}, "
            f"series from {first_number}, next {next_value}"
        )
    if problems:
        raise Failed("; ".join(problems))
    log(
        f"checked: {invoices} invoices (INV-{low:06d}…INV-{high:06d}, total {total}), {lines} "
        f"lines, usage = events ({calls} API calls, {tokens} tokens)"
    )
    return lines


def next_invoice_number() -> int:
    from invoicing.models import NumberSeries

    series = NumberSeries.objects.filter(name="INV").first()
    return series.next_value if series else 1


def floor(url: str, *, month, end, today, lines: int) -> tuple[float, float]:
    """(seconds of one aggregate per subscription and metric, seconds of one bulk insert of
    `lines` invoice lines), over one connection, parallel workers off."""
    from core.periods import day_start

    start, stop = day_start(month), day_start(end)
    aggregates = {
        "api_calls": "SELECT count(*) FROM metering_event WHERE subscription_id = %s "
        "AND code = %s AND timestamp >= %s AND timestamp < %s",
        "tokens": "SELECT sum((properties ->> 'tokens')::numeric) FROM metering_event "
        "WHERE subscription_id = %s AND code = %s AND timestamp >= %s AND timestamp < %s",
    }
    with scratch.pg_connect(url, autocommit=True) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 0")
        ids = [r[0] for r in conn.execute("SELECT id FROM subscriptions_subscription ORDER BY id")]
        cursor = conn.cursor()
        started = time.perf_counter()
        for pk in ids:
            for code, sql in aggregates.items():
                cursor.execute(sql, (pk, code, start, stop), prepare=True)
                cursor.fetchone()
        read = time.perf_counter() - started
        conn.execute("CREATE TABLE bench_lines (LIKE invoicing_invoiceline INCLUDING DEFAULTS)")
        started = time.perf_counter()
        inserted = conn.execute(
            "INSERT INTO bench_lines SELECT l.* FROM invoicing_invoiceline l "
            "JOIN invoicing_invoice i ON i.id = l.invoice_id WHERE i.billing_date = %s",
            (today,),
        ).rowcount
        write = time.perf_counter() - started
        conn.execute("DROP TABLE bench_lines")
    if inserted != lines:
        raise Failed(f"the floor inserted {inserted} lines, expected {lines}")
    log(
        f"floor: {2 * len(ids)} aggregates {read:.3f} s, INSERT … SELECT of {lines} lines "
        f"{write:.3f} s"
    )
    return read, write


# --- one size ----------------------------------------------------------------------------------


@dataclass
class Size:
    subscriptions: int
    events: int
    one: Run
    floor: float
    workers: dict  # K → Run


def measure(schema: str, n: int, m: int, *, workers: int, profile: str | None) -> Size:
    """Build n subscriptions and m events from the migrated `schema` database, then bill copies
    of it: once on one worker, and with `workers` processes when above 1."""
    from core import clock
    from core.periods import add_months, month_start

    today = month_start(clock.today())
    month = add_months(today, -1)
    base = f"{schema}_n{n}"
    with database_copy(base, schema) as url:
        use_database(base)
        started = time.perf_counter()
        build(n, month)
        load_events(url, m, n, month, today)
        log(f"built {n} subscriptions and {m:,} events in {time.perf_counter() - started:.1f} s")

        log(f"billing {today} on one worker (load average {scratch.load()})")
        with database_copy(f"{base}_w1", base) as run_url:
            use_database(f"{base}_w1")
            first = next_invoice_number()
            one = bill_in_process(today, profile=profile)
            log(
                f"one worker: {one.invoices} invoices in {one.seconds:.2f} s, {one.queries} "
                f"queries (load average {scratch.load()})"
            )
            one.lines = check(
                run_url, subscriptions=n, month=month, end=today, today=today, first_number=first
            )
            read, write = floor(run_url, month=month, end=today, today=today, lines=one.lines)
        runs = {}
        if workers > 1:
            with database_copy(f"{base}_w{workers}", base) as run_url:
                use_database(f"{base}_w{workers}")
                first = next_invoice_number()
                log(f"billing {today} on {workers} worker processes")
                run = bill_with_workers(today, workers)
                run.lines = check(
                    run_url,
                    subscriptions=n,
                    month=month,
                    end=today,
                    today=today,
                    first_number=first,
                )
                log(
                    f"{workers} workers: {run.invoices} invoices in {run.seconds:.2f} s, "
                    f"{run.queries} queries (load average {scratch.load()})"
                )
                runs[workers] = run
        use_database(schema)
    return Size(n, m, one, read + write, runs)


def secs(s: float) -> str:
    return f"{s:.2f}" if s < 10 else f"{s:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=1_000, help="subscriptions (1,000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events (1,000,000)")
    parser.add_argument("--workers", type=int, default=1, help="also bill with K processes")
    parser.add_argument(
        "--growth", action="store_true", help="also run at N/10 and M/10; print the growth"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="-",
        metavar="FILE",
        help="cProfile the one-worker billing: top 15 on stderr (and the stats to FILE)",
    )
    parser.add_argument("--db-prefix", default=PREFIX, help="scratch database name prefix")
    args = parser.parse_args()
    if args.subscriptions < 1 or args.events < 0:
        parser.error("at least one subscription, and no fewer than 0 events")
    if args.growth and args.subscriptions < 10:
        parser.error("--growth needs at least 10 subscriptions")
    scratch.sigterm_as_interrupt()
    os.environ["SERVER_URL"] = os.environ.get("DATABASE_URL") or scratch.DEFAULT_SERVER
    log(f"load average before: {scratch.load()}")

    try:
        with scratch.scratch_database(prefix=args.db_prefix) as url:
            scratch.migrate(url)
            os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
            os.environ["CELERY_BROKER_URL"] = "memory://"  # queued on commit, never run
            scratch.django_setup(url)
            from django.db import connections

            schema = connections["default"].settings_dict["NAME"]
            sizes = []
            if args.growth:
                sizes.append(
                    measure(
                        schema,
                        args.subscriptions // 10,
                        args.events // 10,
                        workers=1,
                        profile=None,
                    )
                )
            sizes.append(
                measure(
                    schema,
                    args.subscriptions,
                    args.events,
                    workers=args.workers,
                    profile=args.profile,
                )
            )
    except Failed as exc:
        print(f"billing_run: ERROR: {exc}", file=sys.stderr)
        print(f"billing_run: ERROR: {exc}")
        sys.exit(1)

    for size in sizes:
        print(
            f"{size.subscriptions} subscriptions, {size.events} events: one worker "
            f"{secs(size.one.seconds)} s ({size.one.seconds / size.subscriptions * 1000:.1f} ms a "
            f"subscription), {size.one.invoices} invoices, {size.one.lines} lines, "
            f"{size.one.queries} queries; floor {size.floor:.2f} s"
        )
        for k, run in size.workers.items():
            print(
                f"{size.subscriptions} subscriptions, {k} workers: {secs(run.seconds)} s, "
                f"speed-up {size.one.seconds / run.seconds:.2f}× over one worker, "
                f"{run.queries} queries"
            )
    if args.growth:
        small, large = sizes
        print(
            f"growth: {small.subscriptions} → {large.subscriptions} subscriptions: "
            f"{small.one.seconds / small.subscriptions * 1000:.1f} → "
            f"{large.one.seconds / large.subscriptions * 1000:.1f} ms a subscription; time × "
            f"{large.one.seconds / small.one.seconds:.1f} for × "
            f"{large.subscriptions / small.subscriptions:.0f} subscriptions (linear: ×10)"
        )
    print(f"load average after: {scratch.load()}")
    last = sizes[-1]
    print(
        f"billing_run {last.subscriptions} subscriptions, {last.events} events: "
        f"{secs(last.one.seconds)} s, floor {secs(last.floor)} s, "
        f"ratio {last.one.seconds / last.floor:.1f}, "
        f"{last.one.queries / last.subscriptions:.1f} queries per subscription"
    )


if __name__ == "__main__":
    main()
