import datetime as dt

from celery import group, shared_task
from django.db import OperationalError

from core import clock
from invoicing.run import bill_chunk, billing_plan


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def run_billing(today: str | None = None) -> int:
    """The periodic billing job (beat, hourly): plan the run and send one task per chunk.
    Returns the number of chunks sent."""
    day = dt.date.fromisoformat(today) if today else clock.today()
    chunks = billing_plan(day)
    if chunks:
        group(bill_billing_chunk.si(ids, day.isoformat()) for ids in chunks).apply_async()
    return len(chunks)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,  # a worker killed mid-chunk: the chunk goes back to the queue
    autoretry_for=(OperationalError, OSError),
    retry_backoff=True,
    max_retries=8,
)
def bill_billing_chunk(subscription_ids: list[int], today: str) -> int:
    """Bill one chunk of the plan (its own transaction: a chunk is billed whole or not at all,
    and re-running it bills nothing twice). Returns the number of invoices made."""
    return len(bill_chunk(subscription_ids, dt.date.fromisoformat(today)).invoices)
