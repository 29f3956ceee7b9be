"""The billing task executed by a real Celery worker process (not eager), on each broker."""

import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from core import clock
from invoicing.models import Invoice
from subscriptions.services import subscription_create
from tests.dburl import child_database_url
from tests.factories import CustomerFactory, hybrid_plan

ROOT = Path(__file__).resolve().parents[2]


def _celery(env, *args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _brokers():
    yield pytest.param("embedded", id="embedded-sqlalchemy-broker")
    yield pytest.param("redis", id="redis-broker")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", _brokers())
def test_run_billing_is_executed_by_a_real_worker(broker, tmp_path):
    if broker == "redis":
        if not settings.REDIS_URL:
            pytest.skip("REDIS_URL is not set (CI sets it and runs this against Redis)")
        broker_url = settings.REDIS_URL
    else:
        broker_url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    # Given a subscription that starts today: its first invoice is due now
    customer = CustomerFactory(external_id="worker-co")
    subscription_create(
        customer=customer,
        plan=hybrid_plan(),
        external_id="sub_worker",
        start_date=clock.today(),
        term_months=1,
    )
    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "VAR_DIR": str(tmp_path),
    }
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "purge", "-f"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    worker = _celery(
        env, "worker", "--pool=solo", "--without-mingle", "--without-gossip", "-l", "INFO"
    )
    try:
        # When the task is sent through the broker (as beat does)
        subprocess.run(
            [sys.executable, "-m", "celery", "-A", "config", "call", "invoicing.tasks.run_billing"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        # Then the worker process bills it
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not Invoice.objects.exists():
            time.sleep(0.5)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    invoice = Invoice.objects.get()
    assert "invoicing.tasks.run_billing" in output and "succeeded" in output, output
    assert (invoice.subscription.external_id, invoice.number, invoice.status) == (
        "sub_worker",
        "INV-000001",
        Invoice.Status.FINALIZED,
    )
    assert invoice.total == Decimal("625.00")  # 500 platform fee + 5 seats × 25


def test_periodic_jobs_are_scheduled_rows_editable_in_the_admin(db):
    from django_celery_beat.models import PeriodicTask

    tasks = {t.name: (t.task, t.interval.every, t.enabled) for t in PeriodicTask.objects.all()}
    assert tasks == {
        "run-billing-hourly": ("invoicing.tasks.run_billing", 3600, True),
        "revrec-sync-hourly": ("revrec.tasks.revrec_sync", 3600, True),
        "expire-quotes-daily": ("quotes.tasks.expire_quotes", 86400, True),
        "send-dunning-daily": ("receivables.tasks.send_dunning", 86400, True),
        "run-renewals-daily": ("quotes.tasks.run_renewals", 86400, True),
        "evaluate-usage-alerts": ("metering.tasks.evaluate_alerts", 300, True),
    }
    assert settings.CELERY_BEAT_SCHEDULER.startswith("django_celery_beat")
