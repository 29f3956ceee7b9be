"""Latency of the live current-usage read over HTTP, with N events in one customer's period.

    .venv/bin/python bench/current_usage.py [--events N] [--requests K] [--workers 2]

On DATABASE_URL's server (default postgres://root@127.0.0.1:5432/postgres) it creates a scratch
database, migrates it, creates an API key, the metrics api_calls (count) and tokens (sum of
properties.tokens), a plan with standard usage charges on both, and one customer with a
subscription starting today, so the current billing period covers now.

Loading is fast and skips the API: N events (half api_calls, half tokens, timestamps from today's
UTC midnight to now) are COPYed straight into metering_event, then the usage rollups that ingestion
would have kept are computed from them in one INSERT … SELECT … GROUP BY (count, sum and max per
subscription, metric and UTC day), and the tables are ANALYZEd. Before timing, the script checks in
this process that the live read (rollups) and the billing read (the events themselves) give the
same quantities, and logs how long the billing read takes.

Then gunicorn (sync workers, DEBUG=0) serves GET /api/v1/customers/<id>/current_usage
?external_subscription_id=<id>; one client sends 10 warm-up requests and then K timed ones, one
after another, each of which must answer 200 with N events in its charges.

Progress goes to stderr; the last line on stdout is the result:
    current_usage median <ms> ms, p95 <ms> ms at <N> events
The scratch database is dropped at the end, also on Ctrl-C or an error.
"""

import argparse
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scratch as scratch  # noqa: E402
from _scratch import fmt, log  # noqa: E402

WARM_UPS = 10
COPY_CHUNK = 100_000


def load_events(url: str, sub: scratch.Sub, events: int, seed: int = 20260602) -> None:
    """COPY `events` events of one subscription into metering_event (timestamps today, UTC)."""
    from metering.models import Event

    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    span = max(1, int((now - midnight).total_seconds() * 1_000_000))
    received = now.isoformat()
    columns = (
        "customer_id, subscription_id, transaction_id, code, timestamp, properties, received_at"
    )
    started = time.perf_counter()
    with scratch.pg_connect(url) as conn:
        with conn.cursor().copy(f"COPY {Event._meta.db_table} ({columns}) FROM STDIN") as copy:
            for first in range(0, events, COPY_CHUNK):
                lines = []
                for n in range(first, min(events, first + COPY_CHUNK)):
                    when = (midnight + dt.timedelta(microseconds=rng.randrange(span))).isoformat()
                    if n % 2:
                        code, props = "tokens", f'{{"tokens": {rng.randint(1, 4000)}}}'
                    else:
                        code, props = "api_calls", "{}"
                    lines.append(
                        f"{sub.customer_id}\t{sub.pk}\tevt_{n:09d}\t{code}\t{when}\t{props}\t"
                        f"{received}\n"
                    )
                copy.write("".join(lines).encode())
        conn.commit()
    log(f"COPYed {events:,} events in {time.perf_counter() - started:.1f} s")


def build_rollups(url: str) -> None:
    """The rollups ingestion keeps (metering.rollups.rollups_add), computed from the events:
    count, sum and max of the metric's property per subscription, metric and UTC day. The
    benchmark's metrics have no filters and no group-by, so the group value is ''; a count metric
    reads no property, so its total is 0 and its maximum NULL, as ingestion writes them."""
    from catalog.models import BillableMetric
    from metering.models import Event, UsageRollup

    started = time.perf_counter()
    with scratch.pg_connect(url) as conn:
        conn.execute(
            f"INSERT INTO {UsageRollup._meta.db_table} "
            "(subscription_id, metric_id, day, group_value, events, total, maximum) "
            "SELECT e.subscription_id, m.id, (e.timestamp AT TIME ZONE 'UTC')::date, '', "
            "count(*), coalesce(sum((e.properties ->> m.field_name)::numeric), 0), "
            "max((e.properties ->> m.field_name)::numeric) "
            f"FROM {Event._meta.db_table} e JOIN {BillableMetric._meta.db_table} m "
            "ON m.code = e.code WHERE m.aggregation IN ('count', 'sum', 'max') "
            "GROUP BY 1, 2, 3"
        )
        conn.commit()
    with scratch.pg_connect(url, autocommit=True) as conn:
        conn.execute(f"ANALYZE {Event._meta.db_table}")
        conn.execute(f"ANALYZE {UsageRollup._meta.db_table}")
        rows = conn.execute(f"SELECT count(*) FROM {UsageRollup._meta.db_table}").fetchone()[0]
    log(f"rolled up into {rows} rows and analyzed in {time.perf_counter() - started:.1f} s")


def check_reads(sub: scratch.Sub, events: int) -> None:
    """The live read (rollups) equals the billing read (events); log the billing read's time."""
    from metering import selectors
    from subscriptions.models import Subscription

    subscription = Subscription.objects.get(pk=sub.pk)
    period = selectors.current_period(subscription=subscription)
    if period is None:
        raise RuntimeError("the subscription has no billing period in progress today")
    timings = {}
    results = {}
    for live in (True, False):
        started = time.perf_counter()
        usage = selectors.usage_for_period(subscription=subscription, period=period, live=live)
        timings[live] = time.perf_counter() - started
        results[live] = [(u.item.pk, u.quantity, u.events_count, u.amount) for u in usage]
    if results[True] != results[False]:
        raise RuntimeError(f"rollups {results[True]} differ from events {results[False]}")
    counted = sum(r[2] for r in results[True])
    if counted != events:
        raise RuntimeError(f"the reads count {counted:,} events, expected {events:,}")
    log(
        f"in-process check: rollups = events; usage_for_period live (rollups) "
        f"{timings[True] * 1000:.1f} ms, billing read (events) {timings[False] * 1000:.0f} ms "
        f"(first call each, load {scratch.load()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events (1,000,000)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests (200)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    args = parser.parse_args()
    scratch.sigterm_as_interrupt()
    log(f"load average before: {scratch.load()}")

    with scratch.scratch_database() as url:
        scratch.migrate(url)
        scratch.django_setup(url)
        fx = scratch.fixtures(customers=1)
        sub = fx.subscriptions[0]
        load_events(url, sub, args.events)
        build_rollups(url)
        check_reads(sub, args.events)
        from django.db import connections

        connections.close_all()

        path = (
            f"/api/v1/customers/{sub.customer_external_id}/current_usage"
            f"?external_subscription_id={sub.external_id}"
        )
        with scratch.gunicorn(url, workers=args.workers) as server:
            client = scratch.Client(server.port, fx.api_key)
            latencies = []
            log(f"{WARM_UPS} warm-ups, then {args.requests} timed requests, load {scratch.load()}")
            for n in range(WARM_UPS + args.requests):
                started = time.perf_counter()
                status, body = client.request("GET", path)
                elapsed = time.perf_counter() - started
                if status != 200:
                    raise RuntimeError(f"answer {status}: {body[:300]!r}")
                charges = json.loads(body)["customer_usage"]["charges_usage"]
                counted = sum(c["events_count"] for c in charges)
                if counted != args.events:
                    raise RuntimeError(f"the answer counts {counted:,} events, not {args.events:,}")
                if n >= WARM_UPS:
                    latencies.append(elapsed * 1000)
            client.close()
            load_after = scratch.load()
        median, p95 = scratch.median_p95(latencies)
        log(
            f"{len(latencies)} requests: min {min(latencies):.1f} ms, median {median:.1f} ms, "
            f"p95 {p95:.1f} ms, max {max(latencies):.1f} ms; load after {load_after}"
        )
    print(f"current_usage median {median:.1f} ms, p95 {p95:.1f} ms at {fmt(args.events)} events")


if __name__ == "__main__":
    main()
