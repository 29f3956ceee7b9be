"""Event ingestion throughput over HTTP, against the raw PostgreSQL floor.

    .venv/bin/python bench/ingest.py [--events N] [--batch 1000] [--workers 3] [--clients 3]
                                     [--subscriptions 10] [--profile]

On DATABASE_URL's server (default postgres://root@127.0.0.1:5432/postgres) it creates a scratch
database, migrates it, creates an API key, the metrics api_calls (count) and tokens (sum of
properties.tokens), a plan with standard usage charges on both and --subscriptions customers with a
subscription each (starting today), and starts gunicorn (sync workers, DEBUG=0).

Before timing, it builds the request bodies in memory: N events in batches of --batch (Lago wire
format {"events": [...]}), timestamps within the last hour (and today), half api_calls and half
tokens, spread over the subscriptions; transaction ids are unique except 10 %: copies of earlier
events, a fifth of them from earlier in the same batch and the rest from earlier batches. Then
--clients threads, each with its own HTTP/1.1 connection (http.client), POST the batches to
/api/v1/events/batch; the figure is events sent / wall time. Every answer must be 200, the answers'
`created` must add up to the unique events, and so must the stored rows and the rollups.

The raw baseline, in the same run: the events table is emptied (TRUNCATE), then one connection
COPYs the same rows (unique and duplicates, already resolved to customer and subscription ids, as
pre-built text) into a temporary staging table and runs INSERT INTO metering_event SELECT … ON
CONFLICT (customer_id, transaction_id) DO NOTHING, in one transaction, timed end to end. It keeps no
rollups and validates nothing: it is the floor the database sets.

--profile then runs a few 1,000-event batches in this process through django.test.Client (no
gunicorn, no HTTP) under cProfile and prints the top entries to stderr.

Progress goes to stderr; the last line on stdout is the result:
    ingest <E> events/s, raw <R> events/s, ratio <E/R>
The scratch database is dropped at the end, also on Ctrl-C or an error.
"""

import argparse
import collections
import cProfile
import datetime as dt
import io
import json
import pstats
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scratch as scratch  # noqa: E402
from _scratch import fmt, log  # noqa: E402

PATH = "/api/v1/events/batch"
DUPLICATES = 0.10
IN_BATCH_SHARE = 0.2  # of the duplicates: copies of an event earlier in the same batch
PROFILE_BATCHES = 6  # 1 warm-up + 5 profiled


# --- the workload ------------------------------------------------------------------------------


class Workload:
    """Events as tuples (subscription index, transaction id, code, unix seconds, tokens or None),
    grouped in batches, with the request bodies and the COPY text built from them."""

    def __init__(self, subs, *, events: int, batch: int, distance: int, seed: int = 20260601):
        self.subs = subs
        self.rng = random.Random(seed)
        now = int(time.time())
        midnight = int(dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0).timestamp())
        self.ts_low, self.ts_high = max(now - 3600, midnight), now
        self.next_id = 0
        self.distance = distance
        self.pool: list[tuple] = []  # unique events of earlier batches
        self.pool_sizes: list[int] = []  # len(pool) after each batch
        self.batches: list[list[tuple]] = []
        remaining = events
        while remaining > 0:
            size = min(batch, remaining)
            self.batches.append(self._batch(size))
            remaining -= size

    def _event(self) -> tuple:
        rng = self.rng
        self.next_id += 1
        code = "tokens" if rng.random() < 0.5 else "api_calls"
        tokens = rng.randint(1, 4000) if code == "tokens" else None
        sub = rng.randrange(len(self.subs))
        ts = rng.randint(self.ts_low, self.ts_high)
        return (sub, f"txn_{self.next_id:09d}", code, ts, tokens)

    def _batch(self, size: int) -> list[tuple]:
        rng = self.rng
        duplicates = round(size * DUPLICATES)
        # Copies across batches come from batches at least `distance` earlier (see --dup-distance).
        older = len(self.pool_sizes) - self.distance
        eligible = self.pool_sizes[older] if older >= 0 else 0
        in_batch = round(duplicates * IN_BATCH_SHARE) if eligible else duplicates
        unique = [self._event() for _ in range(size - duplicates)]
        own = {e[1] for e in unique}
        events = unique + [self.pool[rng.randrange(eligible)] for _ in range(duplicates - in_batch)]
        rng.shuffle(events)
        for _ in range(in_batch):  # a copy placed after its original
            original = rng.randrange(len(events))
            while events[original][1] not in own:  # only this batch's own events
                original = rng.randrange(len(events))
            events.insert(rng.randint(original + 1, len(events)), events[original])
        self.pool.extend(unique)
        self.pool_sizes.append(len(self.pool))
        return events

    def extra_batch(self, size: int) -> list[tuple]:
        """One more batch of the same mix (for the profile), not part of the measured run."""
        return self._batch(size)

    @property
    def sent(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def unique(self) -> int:
        return len(self.pool)

    def body(self, batch: list[tuple]) -> bytes:
        events = []
        for sub, txn, code, ts, tokens in batch:
            events.append(
                {
                    "transaction_id": txn,
                    "external_subscription_id": self.subs[sub].external_id,
                    "code": code,
                    "timestamp": ts,
                    "properties": {} if tokens is None else {"tokens": tokens},
                }
            )
        return json.dumps({"events": events}, separators=(",", ":")).encode()

    def copy_text(self, batch: list[tuple]) -> bytes:
        lines = []
        for sub, txn, code, ts, tokens in batch:
            s = self.subs[sub]
            when = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
            props = "{}" if tokens is None else f'{{"tokens": {tokens}}}'
            lines.append(f"{s.customer_id}\t{s.pk}\t{txn}\t{code}\t{when}\t{props}\n")
        return "".join(lines).encode()


# --- watching the server while it works --------------------------------------------------------


class Sampler(threading.Thread):
    """Every 100 ms, what the scratch database's backends are doing (pg_stat_activity), and the
    CPU time each has used (/proc: the server runs on this machine). Django closes a connection
    older than CONN_MAX_AGE and opens another, so the CPU is summed over every backend seen."""

    def __init__(self, url: str, database: str):
        super().__init__(daemon=True)
        self.conn = scratch.pg_connect(url, autocommit=True)
        self.database = database
        self.counts: collections.Counter = collections.Counter()
        self.first_cpu: dict[int, float] = {}
        self.last_cpu: dict[int, float] = {}
        self.stop = threading.Event()
        self.sample(count=False)
        self.first_cpu = dict(self.last_cpu)

    def sample(self, count: bool = True) -> None:
        rows = self.conn.execute(
            "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            [self.database],
        ).fetchall()
        for pid, state, wtype, wevent in rows:
            self.last_cpu[pid] = scratch.cpu_seconds(pid) or self.last_cpu.get(pid, 0.0)
            if not count:
                continue
            if state == "active":
                what = f"active, waiting on {wtype}:{wevent}" if wtype else "active on CPU"
            elif state == "idle in transaction":
                what = "idle in transaction (Python works)"
            else:
                what = f"{state} (no request in the database)"
            self.counts[what] += 1

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                self.sample()
            except Exception:  # the database went away (Ctrl-C): nothing left to watch
                return

    def finish(self) -> float:
        """Stop; the backends' CPU seconds since the start."""
        self.stop.set()
        self.join()
        self.sample(count=False)
        self.conn.close()
        return sum(cpu - self.first_cpu.get(pid, 0.0) for pid, cpu in self.last_cpu.items())

    def report(self) -> list[str]:
        total = sum(self.counts.values()) or 1
        return [
            f"{100 * n / total:5.1f} %  {what}"
            for what, n in self.counts.most_common()
            if n / total >= 0.005
        ]


# --- the measurements --------------------------------------------------------------------------


def send_all(port: int, api_key: str, bodies: list[bytes], clients: int) -> tuple:
    """POST every body with `clients` threads; (wall seconds, client CPU seconds, answers)."""
    answers: list = [None] * len(bodies)
    lock = threading.Lock()
    order = iter(range(len(bodies)))
    failures: list = []
    stop = threading.Event()  # Ctrl-C: the clients stop after their current request

    def client() -> None:
        conn = scratch.Client(port, api_key)
        try:
            while not stop.is_set():
                with lock:
                    index = next(order, None)
                if index is None:
                    return
                started = time.perf_counter()
                status, body = conn.request("POST", PATH, bodies[index])
                answers[index] = (status, body, time.perf_counter() - started)
        except Exception as exc:  # reported after the run
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    cpu, started = time.process_time(), time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed; first: {failures[0]!r}")
    return wall, cpu, answers


def check_answers(answers: list, workload: Workload) -> None:
    bad = [(i, a[0], a[1][:300]) for i, a in enumerate(answers) if a is None or a[0] != 200]
    if bad:
        i, status, body = bad[0]
        raise RuntimeError(f"{len(bad)} answers were not 200; batch {i}: {status} {body!r}")
    created = sum(json.loads(a[1])["created"] for a in answers)
    if created != workload.unique:
        raise RuntimeError(f"answers created {created:,} events, expected {workload.unique:,}")


def stored(url: str) -> tuple[int, int]:
    from metering.models import Event, UsageRollup

    with scratch.pg_connect(url) as conn:
        events = conn.execute(f"SELECT count(*) FROM {Event._meta.db_table}").fetchone()[0]
        rolled = conn.execute(
            f"SELECT coalesce(sum(events), 0) FROM {UsageRollup._meta.db_table}"
        ).fetchone()[0]
    return events, int(rolled)


def checkpoint(url: str) -> None:
    """Write dirty pages out before a timed phase, so neither pays for the other's."""
    with scratch.pg_connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def raw_baseline(url: str, chunks: list[bytes], unique: int) -> float:
    """COPY into a staging table + INSERT … SELECT … ON CONFLICT DO NOTHING; seconds."""
    from metering.models import Event

    table = Event._meta.db_table
    with scratch.pg_connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {table}")
    checkpoint(url)
    with scratch.pg_connect(url, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        cpu = scratch.cpu_seconds(backend)
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(
                "CREATE TEMP TABLE staging (customer_id bigint, subscription_id bigint, "
                "transaction_id varchar(255), code varchar(100), timestamp timestamptz, "
                "properties jsonb) ON COMMIT DROP"
            )
            with conn.cursor().copy("COPY staging FROM STDIN") as copy:
                for chunk in chunks:
                    copy.write(chunk)
            copied = time.perf_counter()
            conn.execute(
                f"INSERT INTO {table} (customer_id, subscription_id, transaction_id, code, "
                "timestamp, properties, received_at) "
                "SELECT customer_id, subscription_id, transaction_id, code, timestamp, "
                "properties, now() FROM staging "
                "ON CONFLICT (customer_id, transaction_id) DO NOTHING"
            )
        seconds = time.perf_counter() - started
        log(
            f"  raw: COPY {copied - started:.1f} s, INSERT + commit "
            f"{seconds - (copied - started):.1f} s; "
            f"backend CPU {scratch.cpu_seconds(backend) - cpu:.1f} s"
        )
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if count != unique:
        raise RuntimeError(f"raw baseline stored {count:,} events, expected {unique:,}")
    return seconds


def profile(workload: Workload, api_key: str, batch: int) -> None:
    """A few batches through django.test.Client in this process, timed, then under cProfile."""
    from django.test import Client

    client = Client(SERVER_NAME="127.0.0.1")
    headers = {"Authorization": f"Bearer {api_key}"}
    bodies = [workload.body(workload.extra_batch(batch)) for _ in range(2 * PROFILE_BATCHES)]

    def post(body: bytes) -> None:
        response = client.post(PATH, data=body, content_type="application/json", headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"profile call: {response.status_code} {response.content[:300]!r}")

    post(bodies[0])  # warm-up
    timed = bodies[1:PROFILE_BATCHES]
    started = time.perf_counter()
    for body in timed:
        post(body)
    per_call = (time.perf_counter() - started) / len(timed)
    log(
        f"in-process (no HTTP, no gunicorn, one core): {per_call * 1000:.1f} ms per "
        f"{batch:,}-event batch = {fmt(batch / per_call)} events/s (load {scratch.load()})"
    )
    profiler = cProfile.Profile()
    profiled = bodies[PROFILE_BATCHES + 1 :]
    profiler.enable()
    for body in profiled:
        post(body)
    profiler.disable()
    for sort in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort)
        stats.print_stats(30)
        log(
            f"cProfile over {len(profiled)} calls of {batch:,} events, by {sort}:\n{out.getvalue()}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events sent (1,000,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="events per request (1,000)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (3)")
    parser.add_argument("--clients", type=int, default=3, help="concurrent HTTP clients (3)")
    parser.add_argument("--subscriptions", type=int, default=10, help="customers (10)")
    parser.add_argument(
        "--dup-distance",
        type=int,
        default=20,
        help="copies across batches come from batches at least this many earlier (20); 1 lets "
        "batches in flight together share transaction ids",
    )
    parser.add_argument("--worker-class", default="sync", help="gunicorn -k (sync)")
    parser.add_argument("--profile", action="store_true", help="cProfile a few batches at the end")
    args = parser.parse_args()
    scratch.sigterm_as_interrupt()
    log(f"load average before: {scratch.load()}")

    with scratch.scratch_database() as url:
        database = url.rsplit("/", 1)[1]
        scratch.migrate(url)
        scratch.django_setup(url)
        fx = scratch.fixtures(customers=args.subscriptions)

        started = time.perf_counter()
        workload = Workload(
            fx.subscriptions, events=args.events, batch=args.batch, distance=args.dup_distance
        )
        bodies = [workload.body(b) for b in workload.batches]
        chunks = [workload.copy_text(b) for b in workload.batches]
        log(
            f"built {len(bodies):,} bodies ({sum(map(len, bodies)) / 1e6:.0f} MB): "
            f"{workload.sent:,} events, {workload.unique:,} unique, "
            f"{workload.sent - workload.unique:,} duplicates, "
            f"in {time.perf_counter() - started:.1f} s"
        )

        with scratch.gunicorn(url, workers=args.workers, worker_class=args.worker_class) as server:
            scratch.warm_up(server, fx)
            from django.db import connections

            connections.close_all()  # this process's own connection: idle from here on
            checkpoint(url)
            log(f"sending with {args.clients} clients, load {scratch.load()}")
            sampler = Sampler(url, database)
            sampler.start()
            worker_cpu = server.worker_cpu()
            try:
                wall, client_cpu, answers = send_all(server.port, fx.api_key, bodies, args.clients)
            finally:
                sampler.stop.set()
            worker_cpu = server.worker_cpu() - worker_cpu
            backend_cpu = sampler.finish()
            load_after = scratch.load()
        check_answers(answers, workload)
        events, rolled = stored(url)
        if events != workload.unique or rolled != workload.unique:
            raise RuntimeError(
                f"stored {events:,} events and {rolled:,} in rollups; expected {workload.unique:,}"
            )
        ingest_rate = workload.sent / wall
        latencies = sorted(a[2] for a in answers)
        median, p95 = scratch.median_p95(latencies)
        log(
            f"ingest: {workload.sent:,} events in {wall:.1f} s = {fmt(ingest_rate)} events/s; "
            f"stored {events:,} (= unique); load after {load_after}"
        )
        log(
            f"  per request: median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; CPU seconds: "
            f"gunicorn workers {worker_cpu:.1f}, PostgreSQL backends {backend_cpu:.1f}, "
            f"client {client_cpu:.1f} (of {2 * wall:.1f} core-seconds on 2 cores)"
        )
        log("  backends (pg_stat_activity every 100 ms):\n    " + "\n    ".join(sampler.report()))

        log("raw baseline: TRUNCATE, COPY into staging, INSERT … ON CONFLICT DO NOTHING")
        raw_seconds = raw_baseline(url, chunks, workload.unique)
        raw_rate = workload.sent / raw_seconds
        log(
            f"raw: {workload.sent:,} rows in {raw_seconds:.1f} s = {fmt(raw_rate)} events/s "
            f"(load {scratch.load()})"
        )
        if args.profile:
            profile(workload, fx.api_key, args.batch)
    print(
        f"ingest {fmt(ingest_rate)} events/s, raw {fmt(raw_rate)} events/s, "
        f"ratio {ingest_rate / raw_rate:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
