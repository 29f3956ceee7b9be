from celery import shared_task

from invoicing.services import billing_run


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def run_billing() -> int:
    """The periodic billing job (beat, hourly): invoice and finalize everything due."""
    return len(billing_run().invoices)
