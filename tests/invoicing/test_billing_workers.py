"""The billing run fanned out to real Celery worker processes on Redis, against PostgreSQL.

Two workers bill the chunks of one run; a worker's pool process killed with SIGKILL in the
middle of a chunk leaves a run that the redelivered chunk completes. What both tests compare
with is the single-process run (invoicing.services.billing_run) on the same data, made in the
test process inside a transaction that is then rolled back: the same code, one process, and the
expected figures it gives are checked against the plan's prices too (625.00 a month of fees,
0.002 a call). Only the task interface (invoicing.tasks.run_billing) and the database are used,
so the tests hold whatever bill_chunk does inside.

PostgreSQL and Redis only: the point is concurrent processes on a shared database and broker
(SQLite serialises writers; the embedded broker is tested in test_worker.py). CI sets both.
"""

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.db import connection, transaction

from invoicing.models import Invoice, NumberSeries
from invoicing.services import billing_run
from metering.services import events_ingest
from subscriptions.services import subscription_create
from tests.dburl import child_database_url
from tests.factories import CustomerFactory, hybrid_plan

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIPTIONS = 40
CHUNK_SIZE = 5  # 8 chunks of 5 subscriptions
CHUNKS = SUBSCRIPTIONS // CHUNK_SIZE
START = dt.date(2026, 1, 1)
RUN_ON = dt.date(2026, 2, 1)  # bills Jan 1 (fees in advance) and Feb 1 (January's usage + fees)
DATES = [START, RUN_ON]
WAIT_SECONDS = 120

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pg_and_redis(settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (concurrent worker processes on one database; CI runs it)")
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set (CI sets it and runs this against Redis)")
    settings.BILLING_CHUNK_SIZE = CHUNK_SIZE


def _calls(index: int) -> int:
    return 10 * (index + 1)  # 10, 20, … 400 calls in January: 0.02 … 0.80 at 0.002 a call


def _population() -> None:
    """40 hybrid subscriptions from Jan 1, made through the services, with January's usage
    ingested as the API does (events and rollups)."""
    with time_machine.travel("2026-01-01 00:00Z", tick=False):
        plan = hybrid_plan()
        for i in range(SUBSCRIPTIONS):
            subscription_create(
                customer=CustomerFactory(external_id=f"cust_{i:02d}"),
                plan=plan,
                external_id=f"sub_{i:02d}",
                start_date=START,
                term_months=3,
            )
    with time_machine.travel("2026-01-20 13:00Z", tick=False):
        events_ingest(
            raw_events=[
                {
                    "transaction_id": f"sub_{i:02d}-{n}",
                    "external_subscription_id": f"sub_{i:02d}",
                    "code": "api_calls",
                    "timestamp": "2026-01-20T12:00:00Z",
                }
                for i in range(SUBSCRIPTIONS)
                for n in range(_calls(i))
            ]
        )


def _billed() -> dict[tuple[str, dt.date], Decimal]:
    """(subscription, billing date) → total of every non-void invoice (a double would raise)."""
    totals = {}
    for external_id, billing_date, total in Invoice.objects.exclude(
        status=Invoice.Status.VOID
    ).values_list("subscription__external_id", "billing_date", "total"):
        assert (external_id, billing_date) not in totals, f"doubled: {external_id} {billing_date}"
        totals[(external_id, billing_date)] = total
    return totals


def _single_process_totals() -> dict[tuple[str, dt.date], Decimal]:
    """What the single-process run bills on RUN_ON, undone: the expected figures."""
    NumberSeries.objects.get_or_create(name="INV")  # outside the rollback: the lock test's row
    with transaction.atomic():
        result = billing_run(today=RUN_ON)
        assert not result.failed
        totals = _billed()
        transaction.set_rollback(True)
    assert not Invoice.objects.exists() and NumberSeries.objects.get(name="INV").next_value == 1
    # the same figures from the plan's prices: 500 platform fee + 5 seats × 25 every month in
    # advance; January's calls at 0.002 on Feb 1
    assert totals == {
        (f"sub_{i:02d}", billing_date): Decimal("625.00")
        + (Decimal("0.002") * _calls(i) if billing_date == RUN_ON else 0)
        for i in range(SUBSCRIPTIONS)
        for billing_date in DATES
    }
    return totals


def _worker_env(tmp_path) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "BILLING_CHUNK_SIZE": str(CHUNK_SIZE),
        "VAR_DIR": str(tmp_path),
    }
    _celery_run(env, "purge", "-f")
    return env


def _celery_run(env, *args) -> None:
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def _start_worker(env, name: str, log: Path, *pool: str) -> subprocess.Popen:
    """A worker process logging to a file (see _wait_ready)."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-n", f"{name}@%h"]
            + [*pool, "--without-mingle", "--without-gossip", "-l", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_ready(worker: subprocess.Popen, log: Path) -> None:
    """Until the worker consumes from the broker (it logs "… ready.")."""
    _wait(lambda: " ready." in log.read_text() or worker.poll() is not None, f"{log.name} ready")
    assert worker.poll() is None, log.read_text()


def _stop(worker: subprocess.Popen) -> None:
    """Warm shutdown (the task at hand finishes), or a kill if it hangs."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _wait(done, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting for: {what}"
        time.sleep(0.3)


def _run_billing(env) -> None:
    """Send the run through the broker, as beat does, with the run's date (the workers' clock
    is the real one)."""
    _celery_run(env, "call", "invoicing.tasks.run_billing", "--args", json.dumps([str(RUN_ON)]))


def _chunks(log: Path, event: str) -> list[str]:
    """The ids of the chunk tasks the worker's log shows `event` (received, succeeded) for."""
    return re.findall(
        rf"invoicing\.tasks\.bill_billing_chunk\[([0-9a-f-]+)\] {event}", log.read_text()
    )


def _all_billed(logs) -> bool:
    finished = sum(len(_chunks(log, "succeeded")) for log in logs)
    return finished >= CHUNKS and Invoice.objects.count() >= SUBSCRIPTIONS * len(DATES)


def _assert_billed_once_gapless(expected) -> None:
    # nothing doubled, nothing lost: one invoice per subscription per date, as one process bills
    assert _billed() == expected
    invoices = Invoice.objects.all()
    assert {invoice.status for invoice in invoices} == {Invoice.Status.FINALIZED}
    assert sorted(invoice.number for invoice in invoices) == [
        f"INV-{n:06d}" for n in range(1, len(expected) + 1)
    ]
    assert NumberSeries.objects.get(name="INV").next_value == len(expected) + 1


def test_two_workers_bill_the_chunks_as_one_process_would(pg_and_redis, tmp_path):
    # Given 40 subscriptions due on Feb 1 for two dates each, and what one process bills for them
    _population()
    expected = _single_process_totals()
    env = _worker_env(tmp_path)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = []
    try:
        for name, log in zip(["billing-a", "billing-b"], logs, strict=True):
            workers.append(_start_worker(env, name, log, "--pool=solo"))
        for worker, log in zip(workers, logs, strict=True):
            _wait_ready(worker, log)

        # When the run is sent: 8 chunks of 5 for the two workers
        _run_billing(env)
        _wait(lambda: _all_billed(logs), "8 chunks billed")
    finally:
        for worker in workers:
            _stop(worker)

    # Then everything is billed once, numbered without a gap, with the single process's totals
    _assert_billed_once_gapless(expected)
    # and both workers billed chunks, each chunk once
    done = [_chunks(log, "succeeded") for log in logs]
    assert all(done), [log.read_text() for log in logs]
    assert sorted(id for ids in done for id in ids) == sorted(set(done[0] + done[1]))
    assert len(done[0]) + len(done[1]) == CHUNKS


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a prefork worker's pool processes)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _lock_waiters() -> list[tuple[int, str]]:
    """Backends of the test database waiting for a lock: (pid, query)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchall()


def test_a_worker_killed_mid_chunk_leaves_a_run_the_redelivered_chunk_completes(
    pg_and_redis, tmp_path
):
    import psycopg

    # Given 40 subscriptions due on Feb 1, what one process bills for them, and the invoice
    # number series locked by another session: the first chunk will wait inside its transaction
    _population()
    expected = _single_process_totals()
    env = _worker_env(tmp_path)
    log = tmp_path / "worker.log"
    holder = psycopg.connect(child_database_url())
    worker = None
    try:
        holder.execute(
            "SELECT next_value FROM invoicing_numberseries WHERE name = 'INV' FOR UPDATE"
        )
        worker = _start_worker(env, "billing", log, "--pool=prefork", "--concurrency=1")
        _wait_ready(worker, log)
        _run_billing(env)
        _wait(_lock_waiters, "a chunk waiting for the number series")
        ((_, query),) = _lock_waiters()
        assert "invoicing_numberseries" in query
        assert not Invoice.objects.exists()  # nothing of the chunk is committed

        # When the pool process billing it is killed with SIGKILL, in the middle of the chunk
        (pool_process,) = _children(worker.pid)
        os.kill(pool_process, signal.SIGKILL)
        _wait(lambda: "WorkerLostError" in log.read_text(), "the worker to see its process lost")
        # and the lock is let go (the killed process's session ends: its transaction rolls back)
        holder.rollback()

        # Then the chunk goes back to the queue and the worker's new process bills the run
        _wait(lambda: _all_billed([log]), "8 chunks billed")
    finally:
        holder.close()
        if worker is not None:
            _stop(worker)

    output = log.read_text()
    assert f"pid:{pool_process} exited with 'signal 9 (SIGKILL)'" in output, output
    received = Counter(_chunks(log, "received"))
    assert len(received) == CHUNKS and sorted(received.values()) == [1] * (CHUNKS - 1) + [2]
    assert sorted(_chunks(log, "succeeded")) == sorted(received)  # the killed one too, once
    _assert_billed_once_gapless(expected)
